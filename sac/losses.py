"""The SAC maths as pure functions of tensors (Haarnoja et al. 2018, "Soft Actor-Critic
Algorithms and Applications"), in the order of the algorithm. The agent computes the networks'
outputs and calls these; every execution path (eager, compiled, CUDA graphs) runs the same code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, TypeVar

import torch
from torch import Tensor

T = TypeVar("T", float, Tensor)

# The keys of an observation of frames beside the state: the uint8 frame stack and the state.
PIXELS, STATE = "pixels", "state"
Obs = Tensor | dict[str, Tensor]


class Batch(NamedTuple):
    """A batch of transitions; actions in the policy's [-1, 1] space. Observations are
    tensors, or for frames beside the state dicts {PIXELS: frames, STATE: states}."""

    obs: Obs
    action: Tensor
    reward: Tensor
    next_obs: Obs
    terminated: Tensor  # 1.0 where the episode ended in a terminal state (no bootstrap)


def map_obs(fn: Callable[[Tensor], Tensor], obs: Obs) -> Obs:
    """`fn` applied to an observation tensor, or to each tensor of a dict observation."""
    return {k: fn(v) for k, v in obs.items()} if isinstance(obs, dict) else fn(obs)


def map_batch(fn: Callable[[Tensor], Tensor], batch: Batch) -> Batch:
    """`fn` applied to every tensor of `batch` (e.g. taking batch k of K stacked ones)."""
    return Batch(*(map_obs(fn, x) for x in batch))


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


# ----------------------------------------------------------------------------- SimbaV2
# The distributional critic, reward scaling and learning-rate decay of SimbaV2 (Lee et al.
# 2025, "Hyperspherical Normalization for Scalable Deep Reinforcement Learning"; reference code
# github.com/dojeon-ai/SimbaV2, scale_rl/agents/simbaV2/simbaV2_update.py and
# scale_rl/agents/wrappers/normalization.py). Its networks are in sac/simbav2.py.


def min_mean_distribution(q: Tensor, probs: Tensor) -> Tensor:
    """Per sample, the distribution of the critic with the smallest mean: `q` (N, B) are the
    critics' means, `probs` (N, B, K) their distributions; returns (B, K). The clipped double-Q
    of a categorical critic, as SimbaV2's code takes it (the argmin of the means)."""
    idx = q.argmin(dim=0).view(1, -1, 1).expand(1, *probs.shape[1:])
    return probs.gather(0, idx).squeeze(0)


def categorical_projection(values: Tensor, probs: Tensor, v_min: float, v_max: float) -> Tensor:
    """Project masses `probs` (B, K) sitting at `values` (B, K) onto the K atoms evenly spaced
    on [v_min, v_max]: each value is clipped to that range and its mass split between the two
    atoms around it, in proportion to closeness (Bellemare et al. 2017, C51, algorithm 1).
    The total mass of each row is kept."""
    k = probs.shape[-1]
    b = (values.clamp(v_min, v_max) - v_min) * ((k - 1) / (v_max - v_min))  # in atom units
    lower = b.floor().clamp(max=k - 1)
    upper_share = b - lower  # 0 where b falls on an atom: all of it stays there
    lower_idx = lower.long()
    upper_idx = (lower_idx + 1).clamp(max=k - 1)
    out = torch.zeros_like(probs)
    out.scatter_add_(-1, lower_idx, probs * (1.0 - upper_share))
    return out.scatter_add_(-1, upper_idx, probs * upper_share)


def categorical_td_target(
    reward: Tensor,
    terminated: Tensor,
    next_probs: Tensor,
    next_log_prob: Tensor,
    alpha: Tensor,
    gamma: float,
    v_min: float,
    v_max: float,
) -> Tensor:
    """The target distribution (B, K) of a categorical critic: every atom z_j of the next
    state's distribution `next_probs` (B, K) moves to its soft TD target
    r + gamma (1 - terminated) (z_j - alpha log pi(a'|s')), then projected back onto the atoms."""
    k = next_probs.shape[-1]
    support = torch.linspace(v_min, v_max, k, device=next_probs.device)
    # td_target with Q'(s', a') = z_j for each atom j at once: shapes (B, 1) and (1, 1, K)
    values = td_target(
        reward.unsqueeze(-1),
        terminated.unsqueeze(-1),
        support.view(1, 1, k),
        next_log_prob.unsqueeze(-1),
        alpha,
        gamma,
    )
    return categorical_projection(values, next_probs, v_min, v_max)


def categorical_critic_loss(log_probs: Tensor, target: Tensor) -> Tensor:
    """The sum over the N critics of the mean cross-entropy between the target distribution
    (B, K) and each critic's, given as log-probabilities (N, B, K)."""
    return -(target * log_probs).sum(dim=-1).mean(dim=-1).sum()


def discounted_return(running: Tensor, reward: Tensor, done: Tensor, gamma: float) -> Tensor:
    """Each env's running discounted return, G <- gamma (1 - done) G + r, with `done` this
    step's terminated or truncated flag: as SimbaV2's RewardNormalizer (and Gymnasium's
    NormalizeReward) write it, an episode's G restarts one step after its end."""
    return gamma * (1.0 - done) * running + reward


def return_scale(var: Tensor, abs_max: Tensor, g_max: float, eps: float = 1e-8) -> Tensor:
    """What rewards are divided by: the running standard deviation of the discounted return,
    raised where needed so that the largest |G| seen scales to at most g_max (SimbaV2: the scaled
    returns then fit the categorical critic's support [-g_max, g_max])."""
    return torch.maximum((var + eps).sqrt(), abs_max / g_max)


def linear_decay(start: float, end: float, t: T, steps: float) -> T:
    """start + (end - start) * min(t / steps, 1): a learning rate decayed linearly from start
    to end over `steps` (optax.linear_schedule, SimbaV2's); t a number or a tensor."""
    frac = t / steps
    frac = frac.clamp(max=1.0) if isinstance(frac, Tensor) else min(frac, 1.0)
    return start + (end - start) * frac  # type: ignore[return-value]


def merged_moments(
    mean: Tensor, var: Tensor, count: Tensor, batch_mean: Tensor, batch_var: Tensor, n: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Mean, (population) variance and count of two samples from each one's own (Chan, Golub
    and LeVeque 1979, the parallel form): exact for any split, with no pass over old data."""
    total = count + n
    delta = batch_mean - mean
    new_mean = mean + delta * (n / total)
    m2 = var * count + batch_var * n + delta.square() * (count * n / total)
    return new_mean, m2 / total, total
