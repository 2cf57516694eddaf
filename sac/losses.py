"""The SAC maths as pure functions of tensors (Haarnoja et al. 2018, "Soft Actor-Critic
Algorithms and Applications"), in the order of the algorithm. The agent computes the networks'
outputs and calls these; every execution path (eager, compiled, CUDA graphs) runs the same code.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor


class Batch(NamedTuple):
    """A batch of transitions; actions in the policy's [-1, 1] space."""

    obs: Tensor
    action: Tensor
    reward: Tensor
    next_obs: Tensor
    terminated: Tensor  # 1.0 where the episode ended in a terminal state (no bootstrap)


def td_target(
    reward: Tensor,
    terminated: Tensor,
    next_q: Tensor,
    next_log_prob: Tensor,
    alpha: Tensor,
    gamma: float,
) -> Tensor:
    """y = r + gamma * (1 - terminated) * (min_i Q'_i(s', a') - alpha * log pi(a'|s')), with a'
    sampled fresh from the current policy; `next_q` has shape (N, B).

    Only `terminated` stops bootstrapping: a time-limit truncation is stored with terminated = 0
    and its real final observation (paper, eq. 3 with the clipped double-Q of its section 5)."""
    next_v = next_q.min(dim=0).values - alpha * next_log_prob
    return reward + gamma * (1.0 - terminated) * next_v


def random_subset(q: Tensor, m: int | None) -> Tensor:
    """`m` of the N critics' rows of `q`, drawn at random for each update (REDQ, Chen et al.
    2021: the target's min runs over such a subset); all of them if m is None or >= N."""
    if m is None or m >= q.shape[0]:
        return q
    return q[torch.randperm(q.shape[0], device=q.device)[:m]]


def critic_loss(q: Tensor, target: Tensor) -> Tensor:
    """J_Q: the sum over the N critics of the mean squared error to y; `q` is (N, B)."""
    return (q - target).pow(2).mean(dim=1).sum()


def combine_critics(q: Tensor, how: str) -> Tensor:
    """The critics' (N, B) values reduced for the actor: min (SAC) or mean (REDQ)."""
    return q.mean(dim=0) if how == "mean" else q.min(dim=0).values


def actor_loss(q_pi: Tensor, log_prob: Tensor, alpha: Tensor) -> Tensor:
    """J_pi = E[alpha * log pi(a|s) - Q(s, a)] with a = rsample'd, so the gradient reaches the
    actor through a (the reparameterisation trick, paper eq. 7)."""
    return (alpha * log_prob - q_pi).mean()


def temperature(
    log_prob: Tensor, log_alpha: Tensor, target_entropy: float
) -> tuple[Tensor, Tensor, Tensor]:
    """The entropy estimate, the gradient of J(alpha) with respect to log alpha, and J(alpha).

    J(alpha) = E[-log_alpha * (log pi(a|s) + target_entropy)] (paper eq. 18, optimised in
    log alpha) is linear in log_alpha, so its gradient -E[log pi(a|s) + target_entropy] is
    given directly instead of a backward pass for one scalar."""
    entropy = -log_prob.detach().mean()
    grad = entropy - target_entropy
    return entropy, grad, log_alpha.detach() * grad


@torch.no_grad()
def polyak_(targets: list[Tensor], sources: list[Tensor], tau: float) -> None:
    """theta' <- (1 - tau) theta' + tau theta, in place for all target tensors at once."""
    torch._foreach_lerp_(targets, sources, tau)
