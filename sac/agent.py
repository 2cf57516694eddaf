"""The SAC agent: networks, optimizers, acting and a plain eager update. Knows nothing of
Gymnasium, Hydra or files; the maths is in sac.losses, faster ways to run it in sac.compiled."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from sac import losses, simbav2
from sac.augment import random_shift
from sac.config import AgentConfig
from sac.errors import SACError
from sac.losses import PIXELS, Batch, Obs
from sac.networks import (
    BatchRenorm,
    EncodedCritic,
    EnsembleCritic,
    FeatureHead,
    GSDEActor,
    PixelEncoder,
    SquashedGaussianActor,
    conv_output_size,
    encode,
    mlp,
)
from sac.obs_norm import ObsNormalizer
from sac.reward_norm import RewardNormalizer
from sac.simbav2 import SimbaV2ActorNet, SimbaV2Critic

__all__ = ["METRIC_NAMES", "SAC", "Batch", "Metrics"]

# The names of the metrics an update returns, in the order it returns them.
METRIC_NAMES = (
    "losses/critic",
    "losses/actor",
    "losses/alpha",
    "train/alpha",
    "train/entropy",
    "train/q_mean",
    "train/target_q_mean",
)
Metrics = dict[str, Tensor]  # METRIC_NAMES -> a device tensor (0-d; (K,) for K updates)
CriticLoss = Callable[[Batch, Tensor], tuple[Tensor, Tensor, Tensor]]
ActorLoss = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]


def _adam(params: Any, lr: float, beta1: float, device: torch.device) -> torch.optim.Adam:
    # The fused kernel is the fastest Adam on CUDA and CPU (PyTorch >= 2.4); foreach elsewhere.
    fast = {"fused": True} if device.type in ("cuda", "cpu") else {"foreach": True}
    return torch.optim.Adam(params, lr=lr, betas=(beta1, 0.999), **fast)


class SAC:
    """Soft Actor-Critic (Haarnoja et al. 2018) with N critics and automatic temperature.

    Options beyond the paper (all off by default, see AgentConfig): normalised critics
    (LayerNorm, dropout: DroQ; batch renorm: CrossQ), no target networks with a joint forward
    pass of (s, a) and (s', a') (CrossQ), a random-subset min in the target (REDQ), a delayed
    actor update, gSDE, running observation normalisation (`obs_norm`); SimbaV2's
    hyperspherical networks (kept on the sphere after every optimizer step), categorical
    critics, reward scaling and learning-rate decay.

    Image observations (an `obs_shape` of (C, H, W), uint8) go through a convolutional encoder
    shared by the critics and trained by the critic loss only; the actor sees its features
    detached; every sampled batch is randomly shifted (DrQ, Kostrikov et al. 2021). With
    `state_dim` > 0 the observations are dicts {PIXELS: images, STATE: (state_dim,) vectors}:
    the state joins the image features after the feature heads, in actor and critics alike.
    """

    def __init__(
        self,
        obs_shape: int | tuple[int, ...],
        act_dim: int,
        cfg: AgentConfig,
        device: torch.device | str = "cpu",
        state_dim: int = 0,
    ) -> None:
        self.obs_shape = (obs_shape,) if isinstance(obs_shape, int) else tuple(obs_shape)
        self.pixels = len(self.obs_shape) == 3
        self.state_dim = state_dim
        if not (self.pixels or len(self.obs_shape) == 1):
            raise SACError(
                f"observations of shape {self.obs_shape}: SAC takes vectors (dim,) or images "
                "(channels, height, width)"
            )
        if state_dim and not self.pixels:
            raise SACError("a state beside the observation takes images (env.pixels=true)")
        encoder = self._pixel_encoder(cfg) if self.pixels else None
        # what the actor and the critics' MLPs take: the observation, or the image features
        # (and the state beside them)
        obs_dim = cfg.encoder_features + state_dim if encoder is not None else self.obs_shape[0]
        self.act_dim = act_dim
        self.cfg = cfg
        self.device = torch.device(device)
        # Owned here so its statistics are part of the agent's state (checkpoints, exports);
        # the trainer feeds it raw observations through `update_obs_norm`.
        self.obs_norm = (
            ObsNormalizer(obs_dim, cfg.obs_norm_clip).to(self.device) if cfg.obs_norm else None
        )
        self.actor: SquashedGaussianActor | GSDEActor
        critic_sizes = list(cfg.critic_hidden_sizes or cfg.hidden_sizes)
        self.critic: EnsembleCritic | SimbaV2Critic
        if cfg.network == "simbav2":
            # hidden_sizes: one entry per residual block, all of one width (checked in config)
            net = SimbaV2ActorNet(obs_dim, act_dim, cfg.hidden_sizes[0], len(cfg.hidden_sizes))
            self.actor = SquashedGaussianActor(
                obs_dim, act_dim, [], cfg.log_std_min, cfg.log_std_max, net=net
            ).to(self.device)
            self.critic = SimbaV2Critic(
                obs_dim,
                act_dim,
                critic_sizes[0],
                len(critic_sizes),
                cfg.num_critics,
                cfg.critic_bins,
                cfg.critic_v_max,
            ).to(self.device)
        elif cfg.gsde:
            self.actor = GSDEActor(
                obs_dim,
                act_dim,
                list(cfg.hidden_sizes),
                cfg.gsde_log_std_init,
                cfg.actor_batch_norm,
            ).to(self.device)
        else:
            self.actor = SquashedGaussianActor(
                obs_dim,
                act_dim,
                list(cfg.hidden_sizes),
                cfg.log_std_min,
                cfg.log_std_max,
                cfg.actor_batch_norm,
                # images: the actor's own feature head on the encoder's detached output (DrQ)
                net=(
                    nn.Sequential(
                        FeatureHead(encoder.out_dim, cfg.encoder_features),
                        mlp(obs_dim, list(cfg.hidden_sizes), 2 * act_dim, cfg.actor_batch_norm),
                    )
                    if encoder is not None
                    else None
                ),
            ).to(self.device)
        if cfg.network == "mlp":
            self.critic = EnsembleCritic(
                obs_dim, act_dim, critic_sizes, cfg.num_critics, cfg.critic_norm, cfg.critic_dropout
            ).to(self.device)
        if encoder is not None:  # (the target critics below copy the encoder too)
            self.critic = EncodedCritic(encoder, cfg.encoder_features, self.critic).to(self.device)
        self.critic_target = (
            copy.deepcopy(self.critic).requires_grad_(False) if cfg.target_networks else None
        )
        self.log_alpha = (
            torch.tensor(float(cfg.alpha), device=self.device)
            .log_()
            .requires_grad_(cfg.autotune_alpha)
        )
        self.target_entropy = (
            float(cfg.target_entropy)
            if cfg.target_entropy is not None
            else cfg.target_entropy_per_dim * act_dim
        )
        self.actor_optim = _adam(self.actor.parameters(), cfg.actor_lr, cfg.adam_beta1, self.device)
        self.critic_optim = _adam(
            self.critic.parameters(), cfg.critic_lr, cfg.adam_beta1, self.device
        )
        # adam_beta1 is the actor's and critics' only: CrossQ's reference code (github.com/
        # adityab/CrossQ, sbx/sac/sac.py) gives the temperature a default Adam (beta1 0.9).
        self.alpha_optim = _adam([self.log_alpha], cfg.alpha_lr, 0.9, self.device)
        self.num_updates = 0
        # SimbaV2: the updates (lr_decay_steps env steps' worth) over which learning rates decay
        self.lr_decay_updates = max(cfg.lr_decay_steps * cfg.updates_per_step, 1.0)
        self.reward_norm = (
            RewardNormalizer(cfg.gamma, cfg.reward_norm_g_max, self.device)
            if cfg.reward_norm
            else None
        )
        # The weights kept on the unit sphere (SimbaV2), projected after each optimizer step.
        self.actor_sphere = simbav2.sphere_weights(self.actor)
        self.critic_sphere = simbav2.sphere_weights(self.critic)
        self._critic_batch_norms = [m for m in self.critic.modules() if isinstance(m, BatchRenorm)]
        self._critic_params = list(self.critic.parameters())
        self._target_params = (
            list(self.critic_target.parameters()) if self.critic_target is not None else []
        )
        # Acting and the next-action samples use the actor's running statistics (eval mode);
        # only the actor's own update runs it in training mode. (Matters only with batch norm.)
        self.actor.eval()
        # [actor loss, alpha loss, entropy] of the latest actor step, reported in between.
        self.actor_metrics = torch.zeros(3, device=self.device)

    def _pixel_encoder(self, cfg: AgentConfig) -> PixelEncoder:
        """The image encoder, after checking what it needs of the image and the config."""
        if cfg.network != "mlp" or not cfg.target_networks or cfg.obs_norm or cfg.gsde:
            raise SACError(
                "image observations (env.pixels=true) take agent.network=mlp with "
                "agent.target_networks=true, agent.obs_norm=false and agent.gsde=false "
                "(DrQ's agent: agent=drq)"
            )
        channels, height, width = self.obs_shape
        if min(conv_output_size(height, width, cfg.encoder_layers)) < 1:
            raise SACError(
                f"images of {height}x{width} are too small for agent.encoder_layers="
                f"{cfg.encoder_layers} 3x3 convolutions; use a larger env.image_size or fewer "
                "layers"
            )
        return PixelEncoder((channels, height, width), cfg.encoder_filters, cfg.encoder_layers)

    @property
    def encoder(self) -> PixelEncoder | None:
        """The critics' image encoder, None for vector observations."""
        return self.critic.encoder if isinstance(self.critic, EncodedCritic) else None

    def actor_input(self, obs: Obs) -> Tensor:
        """What the actor takes of (normalised) observations: the observations themselves, or
        for images the critics' convolutional features (and the state beside them), detached
        so that the actor loss does not train the encoder (DrQ)."""
        encoder = self.encoder
        return obs if encoder is None else encode(encoder, obs).detach()

    # ----------------------------------------------------------------------------- acting
    @torch.inference_mode()
    def act(self, obs: Obs, deterministic: bool = False) -> Tensor:
        """Actions in [-1, 1] for a batch of raw observations (no graph is built)."""
        if self.obs_norm is not None:
            obs = self.obs_norm(obs)
        obs = self.actor_input(obs)
        if deterministic:
            return self.actor.deterministic(obs)
        return self.actor.sample_action(obs)

    def reset_noise(self, envs: int, which: Tensor | None = None) -> None:
        """gSDE: new exploration noise for all `envs` envs, or those where `which` is set (a
        bool mask); nothing without gSDE."""
        if isinstance(self.actor, GSDEActor):
            self.actor.reset_noise(envs, which)

    # ----------------------------------------------------------------------------- learning
    def update_obs_norm(self, obs: Tensor) -> None:
        """Add a batch of raw observations (n, obs_dim) to the normalisation statistics; a
        no-op without `obs_norm`. Acting and evaluating never change them."""
        if self.obs_norm is not None:
            self.obs_norm.update(obs)

    def normalized(self, batch: Batch) -> Batch:
        """`batch` with obs and next_obs normalised by the current statistics (the batch
        itself without `obs_norm`): the replay buffer keeps raw observations, so every update
        sees them through the statistics of its own time, as acting does. Every update path
        calls it once, before the losses (this `update`, and sac.compiled's one graph)."""
        if self.obs_norm is None:
            return batch
        return batch._replace(obs=self.obs_norm(batch.obs), next_obs=self.obs_norm(batch.next_obs))

    def augmented(self, batch: Batch) -> Batch:
        """Image observations: obs and next_obs each shifted at random by up to
        `augment_pad` pixels (DrQ); the batch itself for vectors. Every update path
        calls it once, after `normalized` (this `update`, and sac.compiled's one graph)."""
        if not self.pixels or self.cfg.augment_pad == 0:
            return batch
        pad = self.cfg.augment_pad

        def shift(obs: Obs) -> Obs:  # the frames only, never the state beside them
            if isinstance(obs, dict):
                return {**obs, PIXELS: random_shift(obs[PIXELS], pad)}
            return random_shift(obs, pad)

        return batch._replace(obs=shift(batch.obs), next_obs=shift(batch.next_obs))

    def update(
        self,
        batch: Batch,
        critic_loss: CriticLoss | None = None,
        actor_loss: ActorLoss | None = None,
    ) -> Metrics:
        """One gradient step on the critics; every `actor_update_interval`-th call also one on
        the actor and the temperature; then the Polyak update when it is due.

        Returns the metrics as device tensors: reading them is left to the caller, so the
        update never waits for the device. `critic_loss` / `actor_loss` stand in for
        `self.critic_loss` / `self.actor_loss` (sac.compiled passes compiled versions).
        `batch` holds raw observations and rewards (see `normalized`, `scaled_rewards`).
        """
        batch = self.scaled_rewards(self.augmented(self.normalized(batch)))
        self.set_learning_rates(self.num_updates + 1)
        alpha = self.log_alpha.detach().exp()
        loss, q_mean, target_q_mean = self._minimise(
            critic_loss or self.critic_loss, self.critic_optim, batch, alpha
        )
        simbav2.project_(self.critic_sphere)
        self.num_updates += 1
        do_actor, do_polyak = self.due(self.num_updates)
        if do_actor:
            with self._actor_step_modes():
                a_loss, log_prob = self._minimise(
                    actor_loss or self.actor_loss, self.actor_optim, batch.obs, alpha
                )
            simbav2.project_(self.actor_sphere)
            entropy, alpha_grad, alpha_loss = losses.temperature(
                log_prob, self.log_alpha, self.target_entropy
            )
            if self.cfg.autotune_alpha:
                self.log_alpha.grad = alpha_grad
                self.alpha_optim.step()
            self.actor_metrics = torch.stack([a_loss.detach(), alpha_loss, entropy])
        if do_polyak:
            self.polyak_update()
        return self.metrics(loss.detach(), alpha, q_mean, target_q_mean, self.actor_metrics)

    @staticmethod
    def metrics(
        critic_loss: Tensor, alpha: Tensor, q_mean: Tensor, target_q_mean: Tensor, actor: Tensor
    ) -> Metrics:
        """The named metrics of an update; `actor` holds those of the latest actor step."""
        actor_loss, alpha_loss, entropy = actor
        values = (critic_loss, actor_loss, alpha_loss, alpha, entropy, q_mean, target_q_mean)
        return dict(zip(METRIC_NAMES, values, strict=True))

    def scaled_rewards(self, batch: Batch) -> Batch:
        """`batch` with its rewards divided by the reward scale (`reward_norm`; the batch itself
        without): the replay buffer keeps raw rewards. Every update path calls it once, before
        the losses (this `update`, and sac.compiled's one graph)."""
        if self.reward_norm is None:
            return batch
        return batch._replace(reward=batch.reward / self.reward_norm.scale)

    def update_reward_norm(self, reward: Tensor, done: Tensor) -> None:
        """Add one vector step's rewards and episode ends (terminated or truncated), one per
        env, to the reward scale's statistics; a no-op without `reward_norm`."""
        if self.reward_norm is not None:
            self.reward_norm.update(reward, done)

    def learning_rate(self, start: float, n: int) -> float:
        """The learning rate, starting at `start`, of an optimizer step in the n-th update:
        `start` throughout, or decayed linearly to lr_end (SimbaV2)."""
        if self.cfg.lr_end is None:
            return start
        return losses.linear_decay(start, self.cfg.lr_end, n - 1, self.lr_decay_updates)

    def set_learning_rates(self, n: int) -> None:
        """The optimizers' learning rates for the n-th update (a no-op for constant ones)."""
        if self.cfg.lr_end is None:
            return
        cfg = self.cfg
        for optim, start in (
            (self.critic_optim, cfg.critic_lr),
            (self.actor_optim, cfg.actor_lr),
            (self.alpha_optim, cfg.alpha_lr),
        ):
            optim.param_groups[0]["lr"] = self.learning_rate(start, n)

    def due(self, n: int) -> tuple[bool, bool]:
        """Whether the n-th update also steps the actor, and whether a Polyak update follows."""
        do_actor = n % self.cfg.actor_update_interval == 0
        do_polyak = self.critic_target is not None and n % self.cfg.target_update_interval == 0
        return do_actor, do_polyak

    @staticmethod
    def _minimise(
        loss_fn: Callable[..., tuple[Tensor, ...]], optim: torch.optim.Optimizer, *args: Any
    ) -> tuple[Tensor, ...]:
        """`loss_fn(*args)` (the loss first), its gradients, and one step of `optim`."""
        out = loss_fn(*args)
        optim.zero_grad(set_to_none=True)
        out[0].backward()
        optim.step()
        return out

    def critic_loss(self, batch: Batch, alpha: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """J_Q, the mean Q and the mean TD target y."""
        if self.cfg.critic_bins:
            return self.categorical_critic_loss(batch, alpha)
        q, target_q = self.critic_values(batch, alpha)  # (N, B), (B,)
        return losses.critic_loss(q, target_q), q.detach().mean(), target_q.mean()

    def categorical_critic_loss(self, batch: Batch, alpha: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Categorical critics (SimbaV2): the summed cross-entropies to the projected target
        distribution, the mean Q and the mean of the target distribution."""
        assert isinstance(self.critic, SimbaV2Critic)
        q, log_probs = self.critic.distribution(batch.obs, batch.action)  # (N, B), (N, B, K)
        target = self.categorical_target(batch, alpha)  # (B, K)
        target_mean = (target * self.critic.support).sum(-1).mean()
        return losses.categorical_critic_loss(log_probs, target), q.detach().mean(), target_mean

    @torch.no_grad()
    def categorical_target(self, batch: Batch, alpha: Tensor) -> Tensor:
        """The target distribution: at a' sampled fresh from the current policy, the target
        critic with the smaller mean (SimbaV2's code), each atom moved to its soft TD target
        and projected back onto the atoms."""
        assert isinstance(self.critic_target, SimbaV2Critic)
        next_action, next_log_prob = self.actor(self.actor_input(batch.next_obs))
        next_q, next_log_probs = self.critic_target.distribution(batch.next_obs, next_action)
        next_probs = losses.min_mean_distribution(next_q, next_log_probs.exp())
        v_max = self.cfg.critic_v_max
        return losses.categorical_td_target(
            batch.reward,
            batch.terminated,
            next_probs,
            next_log_prob,
            alpha,
            self.cfg.gamma,
            -v_max,
            v_max,
        )

    def critic_values(self, batch: Batch, alpha: Tensor) -> tuple[Tensor, Tensor]:
        """Q_i(s, a) for every critic, shape (N, B), and the TD target y (no gradient)."""
        if self.critic_target is not None:
            return self.critic(batch.obs, batch.action), self.td_target(batch, alpha)
        # No target networks (CrossQ): (s, a) and (s', a') go through the live critics as one
        # batch, so batch norm normalises both with the same statistics; y carries no gradient.
        with torch.no_grad():
            next_action, next_log_prob = self.actor(self.actor_input(batch.next_obs))
        n = batch.obs.shape[0]
        q_all = self.critic(
            torch.cat([batch.obs, batch.next_obs]), torch.cat([batch.action, next_action])
        )
        next_q = losses.random_subset(q_all[:, n:].detach(), self.cfg.target_subset)
        y = losses.td_target(
            batch.reward, batch.terminated, next_q, next_log_prob, alpha, self.cfg.gamma
        )
        return q_all[:, :n], y

    @torch.no_grad()
    def td_target(self, batch: Batch, alpha: Tensor) -> Tensor:
        """y from the target critics at a' sampled fresh from the current policy."""
        assert self.critic_target is not None, "td_target needs target networks"
        # a' from the live encoder's features, Q' from the target critics' own encoder
        next_action, next_log_prob = self.actor(self.actor_input(batch.next_obs))
        next_q = self.critic_target(batch.next_obs, next_action)
        next_q = losses.random_subset(next_q, self.cfg.target_subset)
        return losses.td_target(
            batch.reward, batch.terminated, next_q, next_log_prob, alpha, self.cfg.gamma
        )

    def actor_loss(self, obs: Obs, alpha: Tensor) -> tuple[Tensor, Tensor]:
        """J_pi and log pi(a|s); Q is the min (SAC) or mean (REDQ) over the critics. With
        images, actor and critic heads see the encoder's features detached (DrQ)."""
        features = self.actor_input(obs)
        action, log_prob = self.actor(features)
        if isinstance(self.critic, EncodedCritic):
            q = self.critic.heads(features, action)
        else:
            q = self.critic(obs, action)
        q_pi = losses.combine_critics(q, self.cfg.actor_q)
        return losses.actor_loss(q_pi, log_prob, alpha), log_prob

    @contextmanager
    def _actor_step_modes(self) -> Iterator[None]:
        """The critics frozen, so the actor loss moves only the actor; batch-norm critics on
        their running statistics and a batch-norm actor in training mode (CrossQ)."""
        if self.cfg.actor_batch_norm:
            self.actor.train()
        for p in self._critic_params:
            p.requires_grad_(False)
        for bn in self._critic_batch_norms:
            bn.eval()
        try:
            yield
        finally:  # the critics train again even if the step raised
            for bn in self._critic_batch_norms:
                bn.train()
            for p in self._critic_params:
                p.requires_grad_(True)
            self.actor.eval()

    def polyak_update(self) -> None:
        """The target critics move towards the critics by tau."""
        losses.polyak_(self._target_params, self._critic_params, self.cfg.tau)

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
            "critic_target": (
                self.critic_target.state_dict() if self.critic_target is not None else None
            ),
            "log_alpha": self.log_alpha.detach().clone(),
            "actor_optim": self.actor_optim.state_dict(),
            "critic_optim": self.critic_optim.state_dict(),
            "alpha_optim": self.alpha_optim.state_dict(),
            "num_updates": self.num_updates,
            "obs_norm": self.obs_norm.state_dict() if self.obs_norm is not None else None,
            # gSDE's exploration matrices, so a resume explores on with the same ones
            **({"gsde_noise": self.actor.noise.clone()} if self.cfg.gsde else {}),
            # the reward scale's statistics, each env's running return among them
            **({"reward_norm": self.reward_norm.state_dict()} if self.reward_norm else {}),
        }

    @classmethod
    def from_state(
        cls,
        obs_shape: int | tuple[int, ...],
        act_dim: int,
        cfg: AgentConfig,
        state: dict[str, Any],
        device: torch.device | str = "cpu",
        actor_only: bool = False,
        state_dim: int = 0,
    ) -> SAC:
        """An agent built for `state` (a `state_dict`) and loaded from it; ValueError, before
        anything is allocated, if its networks are not the shapes `cfg` gives them."""
        check_state_shapes(obs_shape, act_dim, cfg, state, actor_only, state_dim)
        agent = cls(obs_shape, act_dim, cfg, device, state_dim)
        agent.load_state_dict(state, actor_only)
        return agent

    def load_state_dict(self, state: dict[str, Any], actor_only: bool = False) -> None:
        """Restore a state from `state_dict`; `actor_only` loads just what acting needs (the
        actor and the observation statistics)."""
        saved_norm = state.get("obs_norm")  # (absent from checkpoints before obs_norm)
        if (saved_norm is None) != (self.obs_norm is None):
            # Acting on statistics the weights were not trained with would fail silently.
            mine, saved = (str(x is not None).lower() for x in (self.obs_norm, saved_norm))
            raise SACError(
                f"this agent has agent.obs_norm={mine}, but the state was saved with "
                f"agent.obs_norm={saved}"
            )
        self.actor.load_state_dict(state["actor"])
        encoder = self.encoder
        if actor_only and encoder is not None:  # the actor acts on the critics' encoder
            prefix = "encoder."
            encoder.load_state_dict(
                {k[len(prefix) :]: v for k, v in state["critic"].items() if k.startswith(prefix)}
            )
        if self.obs_norm is not None:
            self.obs_norm.load_state_dict(saved_norm)
        if not actor_only:
            self.critic.load_state_dict(state["critic"])
            if self.critic_target is not None:
                self.critic_target.load_state_dict(state["critic_target"])
            with torch.no_grad():
                self.log_alpha.copy_(state["log_alpha"])
            _load_optimizer(self.actor_optim, state["actor_optim"])
            _load_optimizer(self.critic_optim, state["critic_optim"])
            _load_optimizer(self.alpha_optim, state["alpha_optim"])
            self.num_updates = int(state["num_updates"])
            if isinstance(self.actor, GSDEActor) and "gsde_noise" in state:
                self.actor.noise = state["gsde_noise"].to(self.device)
            if self.reward_norm is not None:
                self.reward_norm.load_state_dict(state["reward_norm"])
        if not self.all_finite():  # the trainer never saves such a state: a damaged file
            raise ValueError("the loaded parameters are not all finite")


def check_state_shapes(
    obs_shape: int | tuple[int, ...],
    act_dim: int,
    cfg: AgentConfig,
    state: dict[str, Any],
    actor_only: bool = False,
    state_dim: int = 0,
) -> None:
    """Raise ValueError unless the networks in `state` (a `state_dict`) have the shapes that
    SAC(obs_shape, act_dim, cfg, state_dim=state_dim) gives them. The agent is built on the
    meta device, which allocates nothing, so a damaged or crafted config asking for huge
    networks (where the tensors are small) is refused before they exist."""
    with torch.device("meta"):
        meta = SAC(obs_shape, act_dim, cfg, "meta", state_dim)
    expected = meta.state_dict()
    parts = ("actor", "critic", "critic_target")
    if actor_only:  # what acting needs: the actor, and for images the critics' encoder
        parts = ("actor", "critic") if meta.encoder is not None else ("actor",)
    for part in parts:
        if expected[part] is None:  # no target networks
            continue
        saved = state.get(part)
        if not isinstance(saved, dict):
            raise ValueError(f"{part} is missing")
        for name, tensor in expected[part].items():
            got = saved.get(name)
            if not isinstance(got, Tensor) or got.shape != tensor.shape:
                shape = tuple(got.shape) if isinstance(got, Tensor) else None
                raise ValueError(
                    f"{part}.{name} has shape {shape} where the config gives {tuple(tensor.shape)}"
                )


def _load_optimizer(optim: torch.optim.Optimizer, saved: dict[str, Any]) -> None:
    """Load an Adam's moments and step counts into `optim`, keeping its own settings (lr, betas,
    fused, ...): they follow from the config and the device, where PyTorch would take the
    saved ones as they are. PyTorch checks only the parameter counts, so a moment of another
    shape would fail at the next step instead: checked here (ValueError)."""
    own = [{k: v for k, v in g.items() if k != "params"} for g in optim.param_groups]
    if len(saved["param_groups"]) != len(own):
        raise ValueError(f"a saved optimizer has {len(saved['param_groups'])} parameter groups")
    groups = [{**g, **o} for g, o in zip(saved["param_groups"], own)]
    optim.load_state_dict({**saved, "param_groups": groups})
    for group in optim.param_groups:
        for p in group["params"]:
            state = optim.state.get(p, {})
            moments = [state.get(k) for k in ("step", "exp_avg", "exp_avg_sq")]
            if state and not (
                all(isinstance(m, Tensor) for m in moments)
                and moments[0].numel() == 1
                and moments[1].shape == moments[2].shape == p.shape
            ):
                raise ValueError(
                    f"a saved optimizer state does not fit its parameter of shape {tuple(p.shape)}"
                )
