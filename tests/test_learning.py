"""One real learning run: SAC must clearly improve on Pendulum-v1 in a few thousand steps.

Calibration (default hyperparameters, 5000 steps with 1000 of warm-up, 10 eval episodes):
a uniform random policy scores about -1200 to -1400; a working agent reaches about -150 to -400
by then; an agent whose actor gets no gradient through its action stays near random. The bar
sits well between the two.
"""

import pytest

from sac.trainer import Trainer

pytestmark = pytest.mark.slow

BAR = -700.0


def test_pendulum_learns(make_cfg, tmp_path):
    cfg = make_cfg(
        "total_steps=5000",
        "agent.warmup_steps=1000",
        "eval_every=0",
        "eval_episodes=10",
        "checkpoint_every=0",
        "device=cpu",
        "seed=0",
    )
    summary = Trainer(cfg, tmp_path).train()
    assert summary["eval_return"] > BAR, summary
