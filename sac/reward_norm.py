"""SimbaV2's reward scaling (Lee et al. 2025; reference code github.com/dojeon-ai/SimbaV2,
scale_rl/agents/wrappers/normalization.py, RewardNormalizer): rewards are divided by the
running standard deviation of each env's discounted return, raised where needed so that the
largest return seen scales to g_max. The statistics follow every collected transition (the
warm-up's too); the replay buffer keeps raw rewards, and each update scales its batch by the
statistics of its own time. The maths is in sac/losses.py.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from sac import losses


class RewardNormalizer:
    """`update(reward, done)` after each vector step (one entry per env); `scale` (a 0-d
    float32 tensor on the device, updated in place) is what the updates divide rewards by."""

    def __init__(self, gamma: float, g_max: float, device: torch.device) -> None:
        self.gamma, self.g_max = gamma, g_max
        f64 = {"dtype": torch.float64, "device": device}
        # As the reference's RunningMeanStd: mean 0, variance 1, count 1e-4 before any data.
        self.mean = torch.zeros((), **f64)
        self.var = torch.ones((), **f64)
        self.count = torch.full((), 1e-4, **f64)
        self.abs_max = torch.zeros((), **f64)  # the largest |G| seen
        self.returns = torch.zeros(0, **f64)  # each env's running G, sized at the first update
        self.scale = torch.ones((), device=device)

    @torch.no_grad()
    def update(self, reward: Tensor, done: Tensor) -> None:
        """Add one vector step: each env's reward and whether its episode ended (terminated
        or truncated)."""
        r = reward.to(self.mean.device, torch.float64).reshape(-1)
        d = done.to(self.mean.device, torch.float64).reshape(-1)
        if self.returns.shape != r.shape:
            self.returns = torch.zeros_like(r)
        self.returns = losses.discounted_return(self.returns, r, d, self.gamma)
        batch_var, batch_mean = torch.var_mean(self.returns, correction=0)
        mean, var, count = losses.merged_moments(
            self.mean, self.var, self.count, batch_mean, batch_var, r.shape[0]
        )
        self.mean.copy_(mean)
        self.var.copy_(var)
        self.count.copy_(count)
        self.abs_max.copy_(torch.maximum(self.abs_max, self.returns.abs().max()))
        self.scale.copy_(losses.return_scale(self.var, self.abs_max, self.g_max))

    def state_dict(self) -> dict[str, Tensor]:
        names = ("mean", "var", "count", "abs_max", "returns", "scale")
        return {name: getattr(self, name).clone() for name in names}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Copied into the tensors in place (compiled graphs read `scale` where it is)."""
        for name in ("mean", "var", "count", "abs_max", "scale"):
            getattr(self, name).copy_(state[name])
        self.returns = state["returns"].to(self.mean.device, torch.float64).clone()
