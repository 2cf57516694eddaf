"""compile=true and cudagraphs=true give the eager update's numbers, on CPU and (where there is
one) on a CUDA GPU. On CPU, cudagraphs=true is plain compilation in mode "reduce-overhead": the
test there checks the plumbing; the CUDA graphs themselves run only on a GPU."""

import pytest
import torch
import torch._inductor.config as inductor_config
from torch._dynamo.utils import counters

from sac.agent import SAC, Batch
from sac.config import AgentConfig

OBS, ACT = 5, 2

DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
    ),
]


def _batch(g: torch.Generator, device: str, n: int = 64) -> Batch:
    return Batch(
        torch.randn(n, OBS, generator=g).to(device),
        (torch.rand(n, ACT, generator=g) * 2 - 1).to(device),
        torch.randn(n, generator=g).to(device),
        torch.randn(n, OBS, generator=g).to(device),
        (torch.rand(n, generator=g) < 0.1).float().to(device),
    )


@pytest.mark.slow
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("flag", ["compile", "cudagraphs"])
def test_compiled_update_matches_eager(device, flag):
    # A target update every other step and a delayed actor: both Python branches get taken.
    cfg = AgentConfig(hidden_sizes=[32, 32], target_update_interval=2, actor_update_interval=2)
    counters.clear()
    torch.manual_seed(0)
    eager = SAC(OBS, ACT, cfg, device)
    fast = SAC(OBS, ACT, cfg, device, **{flag: True})
    fast.load_state_dict(eager.state_dict())
    g = torch.Generator().manual_seed(1)
    metrics: dict[str, list[torch.Tensor]] = {"eager": [], "fast": []}
    # Inductor draws its own random numbers unless told to call eager's generator: this makes
    # the compiled update use the very noise the eager one uses.
    with inductor_config.patch(fallback_random=True):
        for step in range(8):
            batch = _batch(g, device)
            for name, agent in (("eager", eager), ("fast", fast)):
                torch.manual_seed(100 + step)  # the same policy noise for both
                metrics[name].append(agent.update(batch))

    assert fast.compiled  # it did not fall back to eager
    if flag == "cudagraphs" and device == "cuda":
        # Inductor counts each graph it ran without CUDA graphs (and logs why).
        assert counters["inductor"]["cudagraph_skips"] == 0
    tol = {"rtol": 1e-4, "atol": 1e-5}
    # Every update's metrics, read only now: with CUDA graphs, a tensor that aliased a graph's
    # output would have been overwritten by the later updates (or refuse to be read).
    torch.testing.assert_close(torch.stack(metrics["fast"]), torch.stack(metrics["eager"]), **tol)
    for mine, theirs in (
        (fast.actor, eager.actor),
        (fast.critic, eager.critic),
        (fast.critic_target, eager.critic_target),
    ):
        for p, q in zip(mine.parameters(), theirs.parameters(), strict=True):
            torch.testing.assert_close(p, q, **tol)
    torch.testing.assert_close(fast.log_alpha, eager.log_alpha, **tol)
    assert not torch.equal(fast.log_alpha, torch.zeros_like(fast.log_alpha))  # it did move
