"""The SAC agent: acting and one gradient update. Knows nothing of Gymnasium, Hydra or files."""

from __future__ import annotations

import copy
from typing import Any, NamedTuple

import torch
from torch import Tensor

from sac.config import AgentConfig
from sac.networks import EnsembleCritic, SquashedGaussianActor

# Order of the values in the tensor that `SAC.update` returns.
METRIC_NAMES = (
    "losses/critic",
    "losses/actor",
    "losses/alpha",
    "train/alpha",
    "train/entropy",
    "train/q_mean",
    "train/target_q_mean",
)


class Batch(NamedTuple):
    """A batch of transitions; actions in the policy's [-1, 1] space."""

    obs: Tensor
    action: Tensor
    reward: Tensor
    next_obs: Tensor
    terminated: Tensor  # 1.0 where the episode ended in a terminal state (no bootstrap)


def _adam(params: Any, lr: float, device: torch.device) -> torch.optim.Adam:
    # The fused kernel is the fastest Adam on CUDA and CPU (PyTorch >= 2.4); foreach elsewhere.
    if device.type in ("cuda", "cpu"):
        return torch.optim.Adam(params, lr=lr, fused=True)
    return torch.optim.Adam(params, lr=lr, foreach=True)


class SAC:
    """Soft Actor-Critic (Haarnoja et al. 2018) with N critics and automatic temperature."""

    def __init__(
        self, obs_dim: int, act_dim: int, cfg: AgentConfig, device: torch.device | str = "cpu"
    ) -> None:
        self.obs_dim = obs_dim
        self.act_dim = act_dim
        self.cfg = cfg
        self.device = torch.device(device)
        self.actor = SquashedGaussianActor(
            obs_dim, act_dim, list(cfg.hidden_sizes), cfg.log_std_min, cfg.log_std_max
        ).to(self.device)
        self.critic = EnsembleCritic(obs_dim, act_dim, list(cfg.hidden_sizes), cfg.num_critics).to(
            self.device
        )
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = (
            torch.tensor(float(cfg.alpha), device=self.device)
            .log_()
            .requires_grad_(cfg.autotune_alpha)
        )
        self.target_entropy = (
            float(cfg.target_entropy) if cfg.target_entropy is not None else -float(act_dim)
        )
        self.actor_optim = _adam(self.actor.parameters(), cfg.actor_lr, self.device)
        self.critic_optim = _adam(self.critic.parameters(), cfg.critic_lr, self.device)
        self.alpha_optim = _adam([self.log_alpha], cfg.alpha_lr, self.device)
        self.num_updates = 0
        self._critic_params = list(self.critic.parameters())
        self._target_params = list(self.critic_target.parameters())

    # ----------------------------------------------------------------------------- acting
    @torch.inference_mode()
    def act(self, obs: Tensor, deterministic: bool = False) -> Tensor:
        """Actions in [-1, 1] for a batch of observations (no graph is built)."""
        if deterministic:
            return self.actor.deterministic(obs)
        return self.actor(obs)[0]

    # ----------------------------------------------------------------------------- learning
    def update(self, batch: Batch) -> Tensor:
        """One gradient step on critics, actor and temperature; then the Polyak update.

        Returns the metrics named in METRIC_NAMES as one tensor on the device: reading it is
        left to the caller, so the update itself never waits for the device.
        """
        cfg = self.cfg
        alpha = self.log_alpha.detach().exp()

        target_q = self.td_target(batch, alpha)
        q = self.critic(batch.obs, batch.action)  # (N, B)
        critic_loss = (q - target_q).pow(2).mean(dim=1).sum()  # sum over critics of the MSE
        self.critic_optim.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_optim.step()

        # Actor: minimise E[alpha * log pi(a|s) - min_i Q_i(s, a)] with a = rsample'd, critics
        # frozen so this loss moves only the actor.
        action, log_prob = self.actor(batch.obs)
        for p in self._critic_params:
            p.requires_grad_(False)
        q_pi = self.critic(batch.obs, action).min(dim=0).values
        for p in self._critic_params:
            p.requires_grad_(True)
        actor_loss = (alpha * log_prob - q_pi).mean()
        self.actor_optim.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_optim.step()

        # Temperature: J(alpha) = E[-log_alpha * (log pi(a|s) + target_entropy)].
        log_prob = log_prob.detach()
        alpha_loss = -(self.log_alpha * (log_prob + self.target_entropy)).mean()
        if cfg.autotune_alpha:
            self.alpha_optim.zero_grad(set_to_none=True)
            alpha_loss.backward()
            self.alpha_optim.step()

        self.num_updates += 1
        if self.num_updates % cfg.target_update_interval == 0:
            self.polyak_update()

        return torch.stack(
            [
                critic_loss.detach(),
                actor_loss.detach(),
                alpha_loss.detach(),
                alpha,
                -log_prob.mean(),
                q.detach().mean(),
                target_q.mean(),
            ]
        )

    @torch.no_grad()
    def td_target(self, batch: Batch, alpha: Tensor) -> Tensor:
        """y = r + gamma * (1 - terminated) * (min_i Q'_i(s', a') - alpha * log pi(a'|s')).

        a' is sampled fresh from the current policy. Only `terminated` stops bootstrapping: a
        time-limit truncation is stored with terminated = 0 and its real final observation.
        """
        next_action, next_log_prob = self.actor(batch.next_obs)
        next_q = self.critic_target(batch.next_obs, next_action).min(dim=0).values
        return batch.reward + self.cfg.gamma * (1.0 - batch.terminated) * (
            next_q - alpha * next_log_prob
        )

    @torch.no_grad()
    def polyak_update(self) -> None:
        """theta' <- (1 - tau) theta' + tau theta, in place for all target tensors at once."""
        torch._foreach_lerp_(self._target_params, self._critic_params, self.cfg.tau)

    def all_finite(self) -> bool:
        """Whether every parameter and the temperature are finite (one host sync)."""
        tensors = [*self.actor.parameters(), *self.critic.parameters(), self.log_alpha]
        return bool(torch.stack([t.detach().isfinite().all() for t in tensors]).all())

    @property
    def alpha(self) -> float:
        return float(self.log_alpha.detach().exp())

    # ----------------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue training, as plain tensors and containers."""
        return {
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "critic_target": self.critic_target.state_dict(),
            "log_alpha": self.log_alpha.detach().clone(),
            "actor_optim": self.actor_optim.state_dict(),
            "critic_optim": self.critic_optim.state_dict(),
            "alpha_optim": self.alpha_optim.state_dict(),
            "num_updates": self.num_updates,
        }

    def load_state_dict(self, state: dict[str, Any], actor_only: bool = False) -> None:
        """Restore a state from `state_dict`; `actor_only` loads just what acting needs."""
        self.actor.load_state_dict(state["actor"])
        if actor_only:
            return
        self.critic.load_state_dict(state["critic"])
        self.critic_target.load_state_dict(state["critic_target"])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        self.actor_optim.load_state_dict(state["actor_optim"])
        self.critic_optim.load_state_dict(state["critic_optim"])
        self.alpha_optim.load_state_dict(state["alpha_optim"])
        self.num_updates = int(state["num_updates"])
