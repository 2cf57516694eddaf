"""Networks: an MLP, the tanh-squashed Gaussian actor and N critics as one batched module."""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Normal

_LOG2 = math.log(2.0)


def mlp(in_dim: int, hidden_sizes: list[int], out_dim: int) -> nn.Sequential:
    """ReLU MLP with a linear output layer."""
    layers: list[nn.Module] = []
    last = in_dim
    for h in hidden_sizes:
        layers += [nn.Linear(last, h), nn.ReLU()]
        last = h
    layers.append(nn.Linear(last, out_dim))
    return nn.Sequential(*layers)


def squashed_log_prob(normal: Normal, u: Tensor) -> Tensor:
    """log pi(tanh(u)) for u ~ normal, summed over action dimensions.

    Change of variables for a = tanh(u): log pi(a) = log N(u) - sum log(1 - tanh(u)^2), with
    log(1 - tanh(u)^2) = 2 * (log 2 - u - softplus(-2u)), which stays finite where tanh(u)
    rounds to +-1 (SAC paper, appendix C; the stable form is from TensorFlow Probability).
    """
    log_det = 2.0 * (_LOG2 - u - F.softplus(-2.0 * u))
    return (normal.log_prob(u) - log_det).sum(-1)


class SquashedGaussianActor(nn.Module):
    """pi(a|s) = tanh(N(mu(s), std(s))), acting in [-1, 1]^dim(A)."""

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden_sizes: list[int],
        log_std_min: float = -5.0,
        log_std_max: float = 2.0,
    ) -> None:
        super().__init__()
        self.net = mlp(obs_dim, hidden_sizes, 2 * act_dim)
        self.log_std_min = log_std_min
        self.log_std_max = log_std_max

    def distribution(self, obs: Tensor) -> Normal:
        """The Gaussian before squashing."""
        mu, raw_log_std = self.net(obs).chunk(2, dim=-1)
        # Soft bound instead of a hard clamp, so log_std keeps a gradient near its limits.
        log_std = self.log_std_min + 0.5 * (self.log_std_max - self.log_std_min) * (
            torch.tanh(raw_log_std) + 1.0
        )
        return Normal(mu, log_std.exp(), validate_args=False)

    def forward(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        """Sample a ~ pi(.|s) with the reparameterisation trick; return (a, log pi(a|s)).

        `rsample()` draws u = mu + std * eps with eps outside the graph, so gradients of a loss
        on `a` reach the actor's parameters. `sample()` would run under no_grad and cut them.
        """
        normal = self.distribution(obs)
        u = normal.rsample()
        return torch.tanh(u), squashed_log_prob(normal, u)

    def deterministic(self, obs: Tensor) -> Tensor:
        """The evaluation action tanh(mu(s))."""
        return torch.tanh(self.distribution(obs).loc)


class EnsembleLinear(nn.Module):
    """N independent linear layers applied as one batched matmul: (N, B, in) -> (N, B, out)."""

    def __init__(self, num: int, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num, in_dim, out_dim))
        self.bias = nn.Parameter(torch.empty(num, 1, out_dim))
        # Same distribution as nn.Linear's default init, per member.
        bound = 1.0 / math.sqrt(in_dim)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class EnsembleCritic(nn.Module):
    """N Q-functions Q_i(s, a) evaluated together; forward returns shape (N, B)."""

    def __init__(self, obs_dim: int, act_dim: int, hidden_sizes: list[int], num: int = 2) -> None:
        super().__init__()
        if num < 1:
            raise ValueError(f"num_critics must be >= 1, got {num}")
        self.num = num
        dims = [obs_dim + act_dim, *hidden_sizes, 1]
        self.layers = nn.ModuleList(
            EnsembleLinear(num, d_in, d_out) for d_in, d_out in itertools.pairwise(dims)
        )

    def forward(self, obs: Tensor, act: Tensor) -> Tensor:
        x = torch.cat([obs, act], dim=-1).expand(self.num, -1, -1)
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x.squeeze(-1)
