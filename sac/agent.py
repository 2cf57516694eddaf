"""The SAC agent: acting and one gradient update. Knows nothing of Gymnasium, Hydra or files."""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Hashable
from typing import Any, NamedTuple, TypeVar

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad_and_value

from sac.adam import AdamState
from sac.config import AgentConfig
from sac.networks import EnsembleCritic, SquashedGaussianActor

log = logging.getLogger("sac")

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


T = TypeVar("T")


class Batch(NamedTuple):
    """A batch of transitions; actions in the policy's [-1, 1] space."""

    obs: Tensor
    action: Tensor
    reward: Tensor
    next_obs: Tensor
    terminated: Tensor  # 1.0 where the episode ended in a terminal state (no bootstrap)


def _adam(params: Any, lr: float, beta1: float, device: torch.device) -> torch.optim.Adam:
    # The fused kernel is the fastest Adam on CUDA and CPU (PyTorch >= 2.4); foreach elsewhere.
    fast = {"fused": True} if device.type in ("cuda", "cpu") else {"foreach": True}
    return torch.optim.Adam(params, lr=lr, betas=(beta1, 0.999), **fast)


class _Call(nn.Module):
    """`forward(fn, *args)` is `fn(*args)`: through torch.func.functional_call, a loss method
    of the agent runs with its networks' parameters swapped for the tensors that
    torch.func.grad differentiates."""

    def __init__(self, actor: nn.Module, critic: nn.Module) -> None:
        super().__init__()
        self.actor, self.critic = actor, critic

    def forward(self, fn: Callable[..., Any], *args: Any) -> Any:
        return fn(*args)


# Steps of each loss during which compiled code may still fail and fall back to eager: the
# first call compiles the forward, the first backward compiles the backward, and in mode
# "reduce-overhead" the CUDA graphs are recorded at a later call, after a warm-up one.
PROBATION_STEPS = 3


class SAC:
    """Soft Actor-Critic (Haarnoja et al. 2018) with N critics and automatic temperature.

    Options beyond the paper (all off by default, see AgentConfig): normalised critics
    (LayerNorm, dropout: DroQ; batch renorm: CrossQ), no target networks with a joint forward
    pass of (s, a) and (s', a') (CrossQ), a random-subset min in the target (REDQ) and a delayed
    actor update.
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        cfg: AgentConfig,
        device: torch.device | str = "cpu",
        compile: bool = False,
        cudagraphs: bool = False,
    ) -> None:
        self.obs_dim = obs_dim
        self.act_dim = act_dim
        self.cfg = cfg
        self.device = torch.device(device)
        self.actor = SquashedGaussianActor(
            obs_dim,
            act_dim,
            list(cfg.hidden_sizes),
            cfg.log_std_min,
            cfg.log_std_max,
            cfg.actor_batch_norm,
        ).to(self.device)
        self.critic = EnsembleCritic(
            obs_dim,
            act_dim,
            list(cfg.critic_hidden_sizes or cfg.hidden_sizes),
            cfg.num_critics,
            cfg.critic_norm,
            cfg.critic_dropout,
        ).to(self.device)
        self.critic_target = (
            copy.deepcopy(self.critic).requires_grad_(False) if cfg.target_networks else None
        )
        self.log_alpha = (
            torch.tensor(float(cfg.alpha), device=self.device)
            .log_()
            .requires_grad_(cfg.autotune_alpha)
        )
        self.target_entropy = (
            float(cfg.target_entropy) if cfg.target_entropy is not None else -float(act_dim)
        )
        self.actor_optim = _adam(self.actor.parameters(), cfg.actor_lr, cfg.adam_beta1, self.device)
        self.critic_optim = _adam(
            self.critic.parameters(), cfg.critic_lr, cfg.adam_beta1, self.device
        )
        self.alpha_optim = _adam([self.log_alpha], cfg.alpha_lr, cfg.adam_beta1, self.device)
        self.num_updates = 0
        self._critic_params = list(self.critic.parameters())
        self._target_params = (
            list(self.critic_target.parameters()) if self.critic_target is not None else []
        )
        # Acting and the next-action samples use the actor's running statistics (eval mode);
        # only the actor's own update runs it in training mode. (Matters only with batch norm.)
        self.actor.eval()
        # [actor loss, alpha loss, entropy] of the latest actor step, reported in between.
        self._actor_metrics = torch.zeros(3, device=self.device)
        # compile=true: the whole update (both losses, their gradients through torch.func,
        # the Adam steps and the Polyak update) is one function that torch.compile captures
        # as one graph, so it runs without autograd's and the optimizers' per-op Python
        # overhead. cudagraphs=true: that graph, with Inductor's CUDA graph trees on, so on
        # CUDA an update is one graph replay. Batch norm updates running statistics inside the
        # differentiated losses, which torch.func.grad refuses, so configs with it compile the
        # two losses instead (forward and, through AOTAutograd, backward; with cudagraphs in
        # mode "reduce-overhead", which replays each as a CUDA graph), with the optimizer
        # steps eager. (On CPU, CUDA graphs do not apply: Inductor compiles without them.)
        self.cudagraphs = cudagraphs
        self.compiled = compile or cudagraphs
        batch_norm = cfg.critic_norm == "batch" or cfg.actor_batch_norm
        self.one_graph = self.compiled and not batch_norm
        self._critic_loss: Callable[..., Any] = self._critic_loss_eager
        self._actor_loss: Callable[..., Any] = self._actor_loss_eager
        self._adam: tuple[AdamState, AdamState, AdamState | None] | None = None  # at first use
        if self.one_graph:
            self._nets = _Call(self.actor, self.critic)
            self._critic_names = [f"critic.{n}" for n, _ in self.critic.named_parameters()]
            self._actor_names = [f"actor.{n}" for n, _ in self.actor.named_parameters()]
            # fallback_random: the policy noise and dropout masks come from torch's own
            # generator, so a seed gives the same draws compiled or not. (On this project's
            # 2-core CPU Inductor's own random kernels are also slower: 60 against 9 us for
            # `torch.randn_like(x) * x` over 256 x 6, a one-off timing.)
            # fullgraph: a graph break raises while tracing, before anything has changed, so
            # the fallback to eager never redoes half an update.
            # dynamic=False: Python floats (the target entropy, ...) stay constants in the graph.
            # Dynamo reads Inductor's global cudagraphs setting, not these options, to decide
            # that, so otherwise a second agent in the process (other floats) would pass them as
            # CPU tensors, which a CUDA graph cannot take. (Shapes are fixed anyway.)
            # cpp_wrapper (CPU): Inductor calls the graph's 22 matmuls and its fused kernels
            # from generated C++ instead of a Python function that allocates and checks every
            # buffer (on the 2-core CPU an update took 0.96-0.995 of the time in four paired
            # runs against the same graph without it). Not on CUDA, where no run has yet
            # tested it with CUDA graph trees.
            self._graph_options = {
                "fallback_random": True,
                "triton.cudagraphs": cudagraphs,
                "cpp_wrapper": self.device.type == "cpu",
            }
            self._graph_update = self._compile_graph(self._update_graph)
        elif cudagraphs:  # (torch.compile takes a mode or options, not both)
            overhead = {"mode": "reduce-overhead", "dynamic": False}  # (dynamic: see above)
            self._critic_loss = torch.compile(self._critic_loss_eager, **overhead)
            self._actor_loss = torch.compile(self._actor_loss_eager, **overhead)
        elif self.compiled:
            random = {"fallback_random": True}
            self._critic_loss = torch.compile(self._critic_loss_eager, options=random)
            self._actor_loss = torch.compile(self._actor_loss_eager, options=random)
        # update_many's graph (K updates unrolled), compiled at its first call.
        self._graph_update_many: Callable[..., Tensor] | None = None
        # Calls still guarded against compile failures (see _guarded), by what they run: a
        # loss ("critic", "actor"), the one graph for an (actor step, Polyak update) pair, or
        # update_many's for a tuple of such pairs.
        self._probation: dict[Hashable, int] = {}

    def _compile_graph(self, fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
        """`fn` compiled as one graph with the options above."""
        return torch.compile(fn, fullgraph=True, dynamic=False, options=self._graph_options)

    def _compile_failed(self, error: Exception) -> None:
        """Warn once and run the update eagerly from now on."""
        if self.compiled:
            first_line = (str(error).strip().splitlines() or [""])[0][:200]
            log.warning(
                "%s: torch.compile failed here (%s: %s); continuing without compilation",
                "cudagraphs=true" if self.cudagraphs else "compile=true",
                type(error).__name__,
                first_line,
            )
        self.compiled = False
        self.cudagraphs = False
        self.one_graph = False
        self._critic_loss = self._critic_loss_eager
        self._actor_loss = self._actor_loss_eager

    # ----------------------------------------------------------------------------- acting
    @torch.inference_mode()
    def act(self, obs: Tensor, deterministic: bool = False) -> Tensor:
        """Actions in [-1, 1] for a batch of observations (no graph is built)."""
        if deterministic:
            return self.actor.deterministic(obs)
        return self.actor.sample_action(obs)

    # ----------------------------------------------------------------------------- learning
    def update(self, batch: Batch) -> Tensor:
        """One gradient step on the critics; every `actor_update_interval`-th call also one on
        the actor and the temperature; then the Polyak update when it is due.

        Returns the metrics named in METRIC_NAMES as one tensor on the device: reading it is
        left to the caller, so the update itself never waits for the device.
        """
        if self.cudagraphs:
            # One update is one iteration of the CUDA graph trees: outputs of the previous
            # update's graphs may be overwritten from here on.
            torch.compiler.cudagraph_mark_step_begin()
        if self.one_graph:
            return self._update_compiled(batch, None)
        alpha = self.log_alpha.detach().exp()

        critic_loss, q_mean, target_q_mean = self._minimise(
            "critic", lambda: self._critic_loss(batch, alpha), self.critic_optim
        )
        self.critic_optim.step()
        # Copied out now, so that nothing returned aliases memory a CUDA graph owns.
        critic_metrics = torch.stack([critic_loss.detach(), q_mean, target_q_mean])

        self.num_updates += 1
        do_actor, do_polyak = self._due(self.num_updates)
        if do_actor:
            self._actor_metrics = self._actor_step(batch.obs, alpha)
        if do_polyak:
            self.polyak_update()

        loss, q, target_q = critic_metrics
        actor_loss, alpha_loss, entropy = self._actor_metrics
        return torch.stack([loss, actor_loss, alpha_loss, alpha, entropy, q, target_q])

    def update_many(self, batch: Batch) -> Tensor:
        """K updates in a row, the k-th on batch k: every field of `batch` has shape (K, B, ...).

        The same updates as K calls of `update`, but with the one compiled graph (compile=true
        or cudagraphs=true, no batch norm) all K run in one call of a graph that unrolls them
        (one CUDA graph replay with cudagraphs=true), with no Python or guard checks in
        between. Otherwise it calls `update` K times. Returns the metrics as (K, 7).
        """
        k = batch.obs.shape[0]
        if not self.one_graph or k == 1:
            return torch.stack([self.update(Batch(*(x[i] for x in batch))) for i in range(k)])
        if self.cudagraphs:
            torch.compiler.cudagraph_mark_step_begin()
        return self._update_compiled(batch, k)

    def _due(self, n: int) -> tuple[bool, bool]:
        """Whether the n-th update also steps the actor, and whether a Polyak update follows."""
        do_actor = n % self.cfg.actor_update_interval == 0
        do_polyak = self.critic_target is not None and n % self.cfg.target_update_interval == 0
        return do_actor, do_polyak

    def _update_compiled(self, batch: Batch, k: int | None) -> Tensor:
        """`update` (k None) or `update_many` (k updates) as one compiled graph (compile=true
        or cudagraphs=true, no batch norm)."""
        n = self.num_updates
        due = tuple(self._due(n + i + 1) for i in range(k or 1))
        if self._adam is None:
            # (A fixed temperature's optimizer never steps, and keeps no state, as in eager.)
            alpha_adam = AdamState(self.alpha_optim) if self.cfg.autotune_alpha else None
            self._adam = (AdamState(self.critic_optim), AdamState(self.actor_optim), alpha_adam)
            if self.cudagraphs:
                self._mark_static()
        # The first call with each pattern of flags compiles a graph for it (with CUDA graphs
        # the second records it); after a failure there the updates are redone eagerly.
        if k is None:
            key, run = due[0], lambda: self._graph_update(batch, self._actor_metrics, *due[0])
        else:
            if self._graph_update_many is None:
                self._graph_update_many = self._compile_graph(self._update_graph_many)
            graph = self._graph_update_many
            key, run = due, lambda: graph(batch, self._actor_metrics, due)
        metrics = self._guarded(key, PROBATION_STEPS if self.cudagraphs else 1, run)
        if metrics is None:
            return self.update(batch) if k is None else self.update_many(batch)
        self.num_updates = n + len(due)
        # A CUDA graph's output lives in its memory pool until the next replay overwrites it.
        return metrics.clone() if self.cudagraphs else metrics

    def _mark_static(self) -> None:
        """Tell torch.compile that the tensors the update writes in place (besides the
        networks' parameters, which it knows) keep their memory from call to call: CUDA graph
        trees record a graph only if it mutates no other input."""
        assert self._adam is not None
        for adam in self._adam:
            if adam is not None:
                for t in (*adam.steps, *adam.exp_avgs, *adam.exp_avg_sqs, adam.next_corrections):
                    torch._dynamo.mark_static_address(t)
        torch._dynamo.mark_static_address(self.log_alpha)
        torch._dynamo.mark_static_address(self._actor_metrics)

    @torch.no_grad()  # gradients come from torch.func, which ignores an outer no_grad
    def _update_graph(
        self, batch: Batch, actor_metrics: Tensor, do_actor: bool, do_polyak: bool
    ) -> Tensor:
        """The update of `update` as one function of tensors, for torch.compile: the same
        losses, differentiated by torch.func.grad_and_value instead of backward(), and Adam
        steps on the optimizers' own state (AdamState). Writes [actor loss, alpha loss,
        entropy] of an actor step into `actor_metrics`, in place; returns the metrics."""
        assert self._adam is not None
        critic_adam, actor_adam, alpha_adam = self._adam
        alpha = self.log_alpha.exp()
        grads, (critic_loss, (q_mean, target_q_mean)) = grad_and_value(
            self._critic_objective, has_aux=True
        )(critic_adam.params, batch, alpha)
        critic_adam.step_(grads)
        if do_actor:
            grads, (actor_loss, log_prob) = grad_and_value(self._actor_objective, has_aux=True)(
                actor_adam.params, batch.obs, alpha
            )
            actor_adam.step_(grads)
            entropy, alpha_grad, alpha_loss = self._temperature_terms(log_prob)
            actor_metrics.copy_(torch.stack([actor_loss, alpha_loss, entropy]))
            if alpha_adam is not None:
                alpha_adam.step_([alpha_grad])
        if do_polyak:
            self.polyak_update()
        actor_loss, alpha_loss, entropy = actor_metrics
        metrics = [critic_loss, actor_loss, alpha_loss, alpha, entropy, q_mean, target_q_mean]
        return torch.stack(metrics)

    @torch.no_grad()
    def _update_graph_many(
        self, batch: Batch, actor_metrics: Tensor, due: tuple[tuple[bool, bool], ...]
    ) -> Tensor:
        """`_update_graph` once per (do_actor, do_polyak) in `due`, on batch[k]; (K, 7)."""
        return torch.stack(
            [
                self._update_graph(Batch(*(x[i] for x in batch)), actor_metrics, *flags)
                for i, flags in enumerate(due)
            ]
        )

    def _critic_objective(
        self, params: list[Tensor], batch: Batch, alpha: Tensor
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """The critic loss as a function of the critics' parameters (for torch.func)."""
        values = dict(zip(self._critic_names, params, strict=True))
        loss, q_mean, target_q_mean = functional_call(
            self._nets, values, (self._critic_loss_eager, batch, alpha)
        )
        return loss, (q_mean, target_q_mean)

    def _actor_objective(
        self, params: list[Tensor], obs: Tensor, alpha: Tensor
    ) -> tuple[Tensor, Tensor]:
        """The actor loss as a function of the actor's parameters (the critics are constants
        to torch.func: only these parameters are differentiated)."""
        values = dict(zip(self._actor_names, params, strict=True))
        return functional_call(self._nets, values, (self._actor_loss_eager, obs, alpha))

    def _critic_loss_eager(self, batch: Batch, alpha: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The critic loss (sum over critics of the MSE to y), mean Q and mean y."""
        q, target_q = self.critic_values(batch, alpha)  # (N, B), (B,)
        loss = (q - target_q).pow(2).mean(dim=1).sum()
        return loss, q.detach().mean(), target_q.mean()

    def critic_values(self, batch: Batch, alpha: Tensor) -> tuple[Tensor, Tensor]:
        """Q_i(s, a) for every critic, shape (N, B), and the TD target y (no gradient)."""
        if self.critic_target is not None:
            return self.critic(batch.obs, batch.action), self.td_target(batch, alpha)
        # No target networks (CrossQ): (s, a) and (s', a') go through the live critics as one
        # batch, so batch norm normalises both with the same statistics; y carries no gradient.
        with torch.no_grad():
            next_action, next_log_prob = self.actor(batch.next_obs)
        n = batch.obs.shape[0]
        q_all = self.critic(
            torch.cat([batch.obs, batch.next_obs]), torch.cat([batch.action, next_action])
        )
        return q_all[:, :n], self._bootstrap(batch, q_all[:, n:].detach(), next_log_prob, alpha)

    @torch.no_grad()
    def td_target(self, batch: Batch, alpha: Tensor) -> Tensor:
        """y from the target critics at a' sampled fresh from the current policy."""
        assert self.critic_target is not None, "td_target needs target networks"
        next_action, next_log_prob = self.actor(batch.next_obs)
        next_q = self.critic_target(batch.next_obs, next_action)
        return self._bootstrap(batch, next_q, next_log_prob, alpha)

    def _bootstrap(
        self, batch: Batch, next_q: Tensor, next_log_prob: Tensor, alpha: Tensor
    ) -> Tensor:
        """y = r + gamma * (1 - terminated) * (min_i Q'_i(s', a') - alpha * log pi(a'|s')).

        Only `terminated` stops bootstrapping: a time-limit truncation is stored with
        terminated = 0 and its real final observation. With `target_subset` = M the min runs
        over M critics drawn at random for each update (REDQ, Chen et al. 2021).
        """
        m = self.cfg.target_subset
        if m is not None and m < next_q.shape[0]:
            next_q = next_q[torch.randperm(next_q.shape[0], device=next_q.device)[:m]]
        next_v = next_q.min(dim=0).values - alpha * next_log_prob
        return batch.reward + self.cfg.gamma * (1.0 - batch.terminated) * next_v

    def _actor_step(self, obs: Tensor, alpha: Tensor) -> Tensor:
        """One step on the actor (critics frozen) and on the temperature; returns
        [actor loss, alpha loss, entropy estimate] on the device."""
        actor_loss, log_prob = self._minimise(
            "actor", lambda: self._actor_forward(obs, alpha), self.actor_optim
        )
        self.actor_optim.step()

        entropy, alpha_grad, alpha_loss = self._temperature_terms(log_prob)
        if self.cfg.autotune_alpha:
            self.log_alpha.grad = alpha_grad
            self.alpha_optim.step()
        return torch.stack([actor_loss.detach(), alpha_loss, entropy])

    def _temperature_terms(self, log_prob: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The entropy estimate, the temperature's gradient and its loss.

        J(alpha) = E[-log_alpha * (log pi(a|s) + target_entropy)] is linear in log_alpha, so
        its gradient -E[log pi(a|s) + target_entropy] is set directly, without a backward pass
        through autograd for one scalar.
        """
        entropy = -log_prob.detach().mean()
        alpha_grad = entropy - self.target_entropy
        return entropy, alpha_grad, self.log_alpha.detach() * alpha_grad

    def _actor_forward(self, obs: Tensor, alpha: Tensor) -> tuple[Tensor, Tensor]:
        """The actor loss and log pi(a|s), with the critics frozen while it is built."""
        # Actor: minimise E[alpha * log pi(a|s) - Q(s, a)] with a = rsample'd, Q the min (SAC)
        # or mean (REDQ) over critics, frozen so this loss moves only the actor. Batch-norm
        # critics use their running statistics here (CrossQ).
        if self.cfg.actor_batch_norm:
            self.actor.train()
        for p in self._critic_params:
            p.requires_grad_(False)
        for bn in self.critic.batch_norms:
            bn.eval()
        try:
            return self._actor_loss(obs, alpha)
        finally:  # the critics train again even if building the loss raised
            for bn in self.critic.batch_norms:
                bn.train()
            for p in self._critic_params:
                p.requires_grad_(True)
            self.actor.eval()

    def _minimise(
        self, name: str, forward: Callable[[], tuple[Tensor, ...]], optim: torch.optim.Optimizer
    ) -> tuple[Tensor, ...]:
        """`forward()` (the loss first), then fresh gradients of the loss for `optim`.

        The first PROBATION_STEPS steps of each compiled loss are guarded (see _guarded); after
        a failure the step is redone eagerly.
        """

        def step() -> tuple[Tensor, ...]:
            out = forward()  # looks the loss function up when called: eager after a failure
            optim.zero_grad(set_to_none=True)
            out[0].backward()
            return out

        if not self.compiled:
            return step()
        out = self._guarded(name, PROBATION_STEPS, step)
        return step() if out is None else out  # (after a failure, step() runs eagerly)

    def _guarded(self, key: Hashable, steps: int, run: Callable[[], T]) -> T | None:
        """`run()`, for the first `steps` calls under `key` guarded: compiled code failing
        there (no C++ compiler, an unsupported backend, a CUDA graph that cannot be recorded)
        must not stop a run, so it warns once, switches the update to eager and returns None
        for the caller to redo its work eagerly."""
        left = self._probation.setdefault(key, steps)
        if left <= 0:
            return run()
        try:
            out = run()
        except Exception as e:  # torch raises many types here (BackendCompilerFailed, ...)
            self._compile_failed(e)
            return None
        self._probation[key] = left - 1
        return out

    def _actor_loss_eager(self, obs: Tensor, alpha: Tensor) -> tuple[Tensor, Tensor]:
        """alpha * log pi(a|s) - Q(s, a) averaged over the batch, and log pi(a|s)."""
        action, log_prob = self.actor(obs)
        q_pi = self.critic(obs, action)
        q_pi = q_pi.mean(dim=0) if self.cfg.actor_q == "mean" else q_pi.min(dim=0).values
        return (alpha * log_prob - q_pi).mean(), log_prob

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
            "critic_target": (
                self.critic_target.state_dict() if self.critic_target is not None else None
            ),
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
        if self.critic_target is not None:
            self.critic_target.load_state_dict(state["critic_target"])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        self.actor_optim.load_state_dict(state["actor_optim"])
        self.critic_optim.load_state_dict(state["critic_optim"])
        self.alpha_optim.load_state_dict(state["alpha_optim"])
        # The optimizers' state tensors are new ones (marked static at the next update): with
        # CUDA graphs the one graph is recorded again for their addresses, guarded as at its
        # first calls.
        self._adam = None
        self._probation.clear()
        self.num_updates = int(state["num_updates"])
