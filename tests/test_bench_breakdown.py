"""experiments/bench_breakdown.py: its FLOP count is the update's; the script runs end to end."""

import importlib.util
import subprocess
import sys

import pytest
import torch
from conftest import REPO

from sac.agent import SAC
from sac.buffer import ReplayBuffer
from sac.compiled import PROBATION_STEPS, make_updater
from sac.config import AgentConfig

SCRIPT = REPO / "experiments" / "bench_breakdown.py"


def _module(monkeypatch):
    monkeypatch.syspath_prepend(str(SCRIPT.parent))  # as when run as a script (bench_speed)
    spec = importlib.util.spec_from_file_location("bench_breakdown", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _update_macs(obs: int, act: int, h: int, q_matmul: bool) -> int:
    """Matmul multiply-adds per sample of one SAC update with 2 critics and 2 hidden layers of
    h. Eager on CPU the critics' one-output layer is a multiply and a sum (sac.kernels), which
    FlopCounterMode does not count (`q_matmul` False)."""
    q = h if q_matmul else 0  # the Q layer of one critic
    actor = obs * h + h * h + h * 2 * act  # outputs mean and log-std
    critic = 2 * ((obs + act) * h + h * h + q)  # both critics
    critic_update = (
        actor  # a' ~ pi(s'), no gradient
        + critic  # target critics at (s', a')
        + critic  # Q(s, a)
        + critic  # its weight gradients
        + 2 * (h * h + q)  # input gradients of layers 2 and 3 (the input needs none)
    )
    actor_update = (
        actor  # a ~ pi(s)
        + critic  # Q(s, a), critics frozen
        + critic  # gradient to a through every critic layer, no weight gradients
        + actor  # actor weight gradients
        + h * h + h * 2 * act  # actor input gradients of layers 2 and 3
    )  # fmt: skip
    return critic_update + actor_update


@pytest.mark.parametrize("compile", [False, pytest.param(True, marks=pytest.mark.slow, id="True")])
def test_update_flops_count_every_matmul_of_forward_and_backward(monkeypatch, compile):
    torch.manual_seed(0)
    obs, act, h, batch = 3, 1, 32, 64
    cfg = AgentConfig(hidden_sizes=[h, h], batch_size=batch)
    agent = make_updater(SAC(obs, act, cfg), compile=compile)
    buffer = ReplayBuffer(500, obs, act, "cpu")
    buffer.add(
        torch.randn(500, obs).numpy(),
        torch.rand(500, act).numpy(),
        torch.randn(500).numpy(),
        torch.randn(500, obs).numpy(),
        torch.zeros(500).numpy(),
    )
    if compile:  # counted after compilation, as bench_breakdown.py --compile does
        for _ in range(PROBATION_STEPS):
            agent.update(buffer.sample(batch))
        assert agent.compiled
    flops = _module(monkeypatch).update_flops(agent, buffer, batch)
    assert flops == 2 * batch * _update_macs(obs, act, h, q_matmul=compile)


@pytest.mark.slow
def test_script_writes_every_phase_and_the_floor(tmp_path):
    out = tmp_path / "breakdown.md"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--env", "Pendulum-v1", "--warmup", "300", "--steps", "30",
         "--hidden", "32", "--batch-size", "64", "--buffer-size", "1000", "--out", str(out)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    for row in ("| act |", "| env |", "| buffer add |", "| sample |", "| update |"):
        assert row in text
    assert "update floor (FLOPs / matmul rate)" in text
    assert text in proc.stdout
