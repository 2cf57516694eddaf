"""Running observation normalisation: the statistics of every observation collected so far, and
the map `clip((obs - mean) / sqrt(var + eps), -clip, clip)` every network input goes through.

The moments accumulate in float64 (a float32 count stops growing at 2^24 observations, and its
mean drifts long before); the networks read float32 copies of the mean and the standard
deviation, refreshed at each update, so the compiled graphs and exported files see only float32
tensors. All are buffers: in the agent's state_dict, checkpoints and exports.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from sac import losses

# Added to the variance as in Stable-Baselines3's VecNormalize: a constant feature maps to 0.
EPS = 1e-8


class ObsNormalizer(nn.Module):
    """`forward(obs)`: observations normalised by the running statistics, clipped to
    [-clip, clip] (None: not clipped); `update(obs)` adds a batch of raw observations.

    Before any update it is the identity (mean 0, variance 1), clipped."""

    def __init__(self, obs_dim: int, clip: float | None = 10.0) -> None:
        super().__init__()
        self.clip = clip
        f64 = {"dtype": torch.float64}
        self.register_buffer("mean", torch.zeros(obs_dim, **f64))
        self.register_buffer("var", torch.ones(obs_dim, **f64))
        self.register_buffer("count", torch.zeros((), **f64))
        # What forward reads: float32, derived from the moments above at each update.
        self.register_buffer("loc", torch.zeros(obs_dim))
        self.register_buffer("scale", torch.ones(obs_dim))

    def forward(self, obs: Tensor) -> Tensor:
        x = (obs - self.loc) / self.scale
        return x if self.clip is None else x.clamp(-self.clip, self.clip)

    @torch.no_grad()
    def update(self, obs: Tensor) -> None:
        """Add the rows of `obs` (n, obs_dim) to the statistics, in place (the tensors compiled
        graphs and CUDA graphs read keep their memory)."""
        x = obs.detach().to(self.mean.device, torch.float64).reshape(-1, self.mean.shape[0])
        if x.shape[0] == 0:
            return
        batch_var, batch_mean = torch.var_mean(x, dim=0, correction=0)
        mean, var, count = losses.merged_moments(
            self.mean, self.var, self.count, batch_mean, batch_var, x.shape[0]
        )
        self.mean.copy_(mean)
        self.var.copy_(var)
        self.count.copy_(count)
        self.loc.copy_(mean)
        self.scale.copy_((var + EPS).sqrt())

    def extra_repr(self) -> str:
        return f"obs_dim={self.mean.shape[0]}, clip={self.clip}"
