"""Faster ways to run the agent's update, chosen once per run: torch.compile of the two losses,
the whole update as one compiled graph, CUDA graphs, K updates per call, and the fallback to
eager when compiled code fails. Each runs the maths of sac.agent and sac.losses, unchanged,
on the batch SAC.normalized and SAC.augmented give (raw observations through the current
normalisation; images randomly shifted).

    updater = make_updater(agent, compile=True)   # or cudagraphs=True on CUDA
    metrics = updater.update(batch)                # what agent.update(batch) returns
"""

from __future__ import annotations

import logging
import operator
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad_and_value

from sac import losses, simbav2
from sac.adam import AdamState, LinearDecay
from sac.agent import SAC, Batch, Metrics
from sac.kernels import use_cpu_kernels
from sac.losses import map_batch

log = logging.getLogger("sac")
T = TypeVar("T")

# Calls of each compiled graph during which compiled code may still fail and fall back to
# eager: the first compiles the forward, the first backward compiles the backward, and CUDA
# graph trees record a graph at a later call, after a warm-up one.
PROBATION_STEPS = 3


def make_updater(agent: SAC, compile: bool = False, cudagraphs: bool = False) -> Updater:
    """An Updater for `agent`: eager, or compiled (`compile`), or compiled with CUDA graphs."""
    return Updater(agent, compile=compile, cudagraphs=cudagraphs)


class Updater:
    """Runs `agent`'s updates one way, chosen at construction:

    - eager: `agent.update` as it is;
    - one graph (compile=true or cudagraphs=true, no batch norm): the whole update (both
      losses, their gradients through torch.func, Adam on the optimizers' own state, Polyak)
      is one function that torch.compile captures as one graph, without autograd's and the
      optimizers' per-op Python overhead; with cudagraphs=true Inductor's CUDA graph trees
      replay it as one CUDA graph. `update_many` unrolls K updates into one such graph;
    - per loss (batch norm, which updates running statistics inside the losses, something
      torch.func.grad refuses): the two loss functions compiled, forward and backward
      (mode "reduce-overhead" with cudagraphs=true), the optimizer steps eager.

    The first calls of each compiled graph are guarded: if compiled code fails (no C++
    compiler, an unsupported backend, a CUDA graph that cannot be recorded), the agent's state
    is put back as it was before the call, the update is redone eagerly, and every later
    update runs eagerly, after one warning.
    """

    def __init__(self, agent: SAC, compile: bool = False, cudagraphs: bool = False) -> None:
        self.agent = agent
        self.cudagraphs = cudagraphs
        self.compiled = compile or cudagraphs  # False once compiled code has failed
        cfg = agent.cfg
        self.one_graph = self.compiled and not (cfg.critic_norm == "batch" or cfg.actor_batch_norm)
        # Calls still guarded, by the pattern of (actor step, Polyak update) they run.
        self._probation: dict[Hashable, int] = {}
        self._graph: OneGraph | None = None
        self._losses: tuple[Callable[..., Any], Callable[..., Any]] | None = None
        if agent.device.type == "cpu" and not self.compiled:
            # Measured to pay in eager updates only (experiments/results/speed.md, "CPU kernels").
            nets = (agent.critic, agent.critic_target)
            use_cpu_kernels(*(net for net in nets if net is not None))
        if self.one_graph:
            self._graph = OneGraph(agent, cudagraphs)
        elif cudagraphs:  # (torch.compile takes a mode or options, not both)
            # dynamic=False: Python floats stay constants in the graph (see OneGraph).
            overhead = {"mode": "reduce-overhead", "dynamic": False}
            self._losses = (
                torch.compile(agent.critic_loss, **overhead),
                torch.compile(agent.actor_loss, **overhead),
            )
        elif self.compiled:
            # fallback_random: the policy noise comes from torch's generator, as in eager.
            random = {"fallback_random": True}
            self._losses = (
                torch.compile(agent.critic_loss, options=random),
                torch.compile(agent.actor_loss, options=random),
            )

    def update(self, batch: Batch) -> Metrics:
        """One update (see SAC.update); metrics as device tensors."""
        if not self.compiled:
            return self.agent.update(batch)
        key = self.agent.due(self.agent.num_updates + 1)
        metrics = self._guarded(key, lambda: self._compiled_update(batch, None))
        return self.agent.update(batch) if metrics is None else metrics

    def update_many(self, batch: Batch) -> Metrics:
        """K updates in a row, the k-th on batch k: every field of `batch` has shape (K, B, ...).

        The same updates as K calls of `update`; with the one graph all K run in one call of a
        graph that unrolls them (one CUDA graph replay with cudagraphs=true), with no Python or
        guard checks in between. Returns each metric with shape (K,).
        """
        k = batch.action.shape[0]
        if not self.one_graph or k == 1:
            return _stacked(
                [self.update(map_batch(operator.itemgetter(i), batch)) for i in range(k)]
            )
        n = self.agent.num_updates
        key = tuple(self.agent.due(n + i + 1) for i in range(k))
        metrics = self._guarded(key, lambda: self._compiled_update(batch, k))
        return self.update_many(batch) if metrics is None else metrics

    def _compiled_update(self, batch: Batch, k: int | None) -> Metrics:
        if self.cudagraphs:
            # One update is one iteration of the CUDA graph trees: outputs of the previous
            # update's graphs may be overwritten from here on.
            torch.compiler.cudagraph_mark_step_begin()
        if self._graph is not None:
            metrics = self._graph.update(batch, k)
        else:
            assert self._losses is not None
            metrics = self.agent.update(batch, *self._losses)
        if self.cudagraphs:
            # A CUDA graph's outputs live in its memory pool until the next replay overwrites
            # them: what is returned must not alias them (one stacked copy, one kernel).
            copies = torch.stack(list(metrics.values())).unbind()
            metrics = dict(zip(metrics, copies, strict=True))
        return metrics

    def _guarded(self, key: Hashable, run: Callable[[], T]) -> T | None:
        """`run()`, guarded at the first PROBATION_STEPS calls under `key` (1 without CUDA
        graphs, where compiling at the first call is all that can fail). On a failure there it
        restores the agent's state and the RNG from before the call, switches to eager and
        returns None, for the caller to redo the update eagerly: a compiled step that failed
        after its forward ran (batch-norm statistics advanced) or after a warm-up call applied
        Adam must not be applied twice."""
        if self._graph is not None and self._graph.stale:
            self._probation.clear()  # a loaded state: new optimizer tensors, graphs guarded again
        left = self._probation.setdefault(key, PROBATION_STEPS if self.cudagraphs else 1)
        if left <= 0:
            return run()
        saved = _Snapshot(self.agent)
        try:
            out = run()
        except Exception as e:  # torch raises many types here (BackendCompilerFailed, ...)
            saved.restore()
            self._fall_back(e)
            return None
        self._probation[key] = left - 1
        return out

    def _fall_back(self, error: Exception) -> None:
        """Warn once and run every later update eagerly."""
        first_line = (str(error).strip().splitlines() or [""])[0][:200]
        log.warning(
            "%s: torch.compile failed here (%s: %s); continuing without compilation",
            "cudagraphs=true" if self.cudagraphs else "compile=true",
            type(error).__name__,
            first_line,
        )
        self.compiled = self.cudagraphs = self.one_graph = False
        self._graph = self._losses = None


def _stacked(many: list[Metrics]) -> Metrics:
    """The metrics of K updates, each stacked to shape (K,)."""
    return {name: torch.stack([m[name] for m in many]) for name in many[0]}


class _Snapshot:
    """Copies of everything an update writes (parameters, buffers such as batch-norm
    statistics, optimizer state, the temperature, counters, the RNG), put back in place by
    `restore`, so the tensors compiled code and the optimizers hold stay the same objects."""

    def __init__(self, agent: SAC) -> None:
        self.agent = agent
        self.tensors = [(t, t.detach().clone()) for t in _state_tensors(agent)]
        # Optimizer state created during the call (the one graph's first) is dropped again.
        self.optim_keys = [(o, set(o.state)) for o in _optimizers(agent)]
        self.num_updates = agent.num_updates
        self.actor_metrics = agent.actor_metrics
        self.rng = torch.get_rng_state()
        self.cuda_rng = (
            torch.cuda.get_rng_state(agent.device) if agent.device.type == "cuda" else None
        )

    @torch.no_grad()
    def restore(self) -> None:
        for t, copy in self.tensors:
            t.copy_(copy)
        for optim, keys in self.optim_keys:
            for p in [p for p in optim.state if p not in keys]:
                del optim.state[p]
        self.agent.num_updates = self.num_updates
        self.agent.actor_metrics = self.actor_metrics
        torch.set_rng_state(self.rng)
        if self.cuda_rng is not None:
            torch.cuda.set_rng_state(self.cuda_rng, self.agent.device)


def _state_tensors(agent: SAC) -> list[Tensor]:
    nets: list[nn.Module] = [agent.actor, agent.critic]
    if agent.critic_target is not None:
        nets.append(agent.critic_target)
    tensors = [t for net in nets for t in (*net.parameters(), *net.buffers())]
    for optim in _optimizers(agent):
        for state in optim.state.values():
            tensors += [v for v in state.values() if isinstance(v, Tensor)]
    return [*tensors, agent.log_alpha, agent.actor_metrics]


def _optimizers(agent: SAC) -> tuple[torch.optim.Optimizer, ...]:
    return agent.actor_optim, agent.critic_optim, agent.alpha_optim


class _Call(nn.Module):
    """`forward(fn, *args)` is `fn(*args)`: through torch.func.functional_call, a loss method
    of the agent runs with its networks' parameters swapped for the tensors that
    torch.func.grad differentiates."""

    def __init__(self, actor: nn.Module, critic: nn.Module) -> None:
        super().__init__()
        self.actor, self.critic = actor, critic

    def forward(self, fn: Callable[..., Any], *args: Any) -> Any:
        return fn(*args)


class OneGraph:
    """The agent's update as one function of tensors, compiled as one graph: the same losses,
    differentiated by torch.func.grad_and_value instead of backward(), and Adam steps on the
    optimizers' own state (sac.adam.AdamState)."""

    def __init__(self, agent: SAC, cudagraphs: bool) -> None:
        self.agent = agent
        self.cudagraphs = cudagraphs
        self._nets = _Call(agent.actor, agent.critic)
        self._critic_names = [f"critic.{n}" for n, _ in agent.critic.named_parameters()]
        self._actor_names = [f"actor.{n}" for n, _ in agent.actor.named_parameters()]
        self._adam: tuple[AdamState, AdamState, AdamState | None] | None = None  # at first use
        # fallback_random: the policy noise and dropout masks come from torch's own generator,
        # so a seed gives the same draws compiled or not.
        # fullgraph: a graph break raises while tracing, before anything has changed.
        # dynamic=False: Python floats (the target entropy, ...) stay constants in the graph.
        # Dynamo reads Inductor's global cudagraphs setting, not these options, to decide that,
        # so otherwise a second agent in the process (other floats) would pass them as CPU
        # tensors, which a CUDA graph cannot take. (Shapes are fixed anyway.)
        # cpp_wrapper (CPU): Inductor calls the graph's kernels from generated C++ instead of
        # a Python function that allocates and checks every buffer at each call. Not on CUDA,
        # where it is untested with CUDA graph trees.
        options = {
            "fallback_random": True,
            "triton.cudagraphs": cudagraphs,
            "cpp_wrapper": agent.device.type == "cpu",
        }
        self._compile = lambda fn: torch.compile(fn, fullgraph=True, dynamic=False, options=options)
        self._one = self._compile(self._update)
        self._many: Callable[..., Metrics] | None = None  # compiled at update_many's first call

    def update(self, batch: Batch, k: int | None) -> Metrics:
        """One update (k None) or k updates unrolled (every field of `batch` (k, B, ...))."""
        agent = self.agent
        if self._adam is None or self.stale:
            cfg = agent.cfg
            every = cfg.actor_update_interval
            # (A fixed temperature's optimizer never steps, and keeps no state, as in eager.)
            alpha_adam = (
                AdamState(agent.alpha_optim, self._decay(cfg.alpha_lr, every))
                if cfg.autotune_alpha
                else None
            )
            self._adam = (
                AdamState(agent.critic_optim, self._decay(cfg.critic_lr, 1)),
                AdamState(agent.actor_optim, self._decay(cfg.actor_lr, every)),
                alpha_adam,
            )
            if self.cudagraphs:
                self._mark_static()
        n = agent.num_updates
        if k is None:
            metrics = self._one(batch, agent.actor_metrics, *agent.due(n + 1))
        else:
            due = tuple(agent.due(n + i + 1) for i in range(k))
            if self._many is None:
                self._many = self._compile(self._update_many)
            metrics = self._many(batch, agent.actor_metrics, due)
        agent.num_updates = n + (k or 1)
        # The graph's Adam computes the decayed rates itself; the optimizers' groups get the
        # latest, as eager updates leave them (their checkpoints look the same).
        agent.set_learning_rates(agent.num_updates)
        return metrics

    def _decay(self, start: float, every: int) -> LinearDecay | None:
        """A learning rate's decay (agent.lr_end) for an optimizer stepping every `every`
        updates; None for a constant rate."""
        end = self.agent.cfg.lr_end
        return None if end is None else LinearDecay(start, end, self.agent.lr_decay_updates, every)

    @property
    def stale(self) -> bool:
        """Whether the agent loaded a state since the last update (new optimizer tensors: with
        CUDA graphs the graph is recorded again for their addresses)."""
        return self._adam is not None and not all(a.current() for a in self._adam if a)

    def _mark_static(self) -> None:
        """Tell torch.compile that the tensors the update writes in place (besides the
        networks' parameters, which it knows) keep their memory from call to call: CUDA graph
        trees record a graph only if it mutates no other input."""
        assert self._adam is not None
        for adam in self._adam:
            if adam is not None:
                for t in (*adam.steps, *adam.exp_avgs, *adam.exp_avg_sqs, adam.next_corrections):
                    torch._dynamo.mark_static_address(t)
        torch._dynamo.mark_static_address(self.agent.log_alpha)
        torch._dynamo.mark_static_address(self.agent.actor_metrics)
        if self.agent.reward_norm is not None:  # updated in place after each env step
            torch._dynamo.mark_static_address(self.agent.reward_norm.scale)

    @torch.no_grad()  # gradients come from torch.func, which ignores an outer no_grad
    def _update(
        self, batch: Batch, actor_metrics: Tensor, do_actor: bool, do_polyak: bool
    ) -> Metrics:
        """SAC.update as a function of tensors; writes the actor step's metrics into
        `actor_metrics` in place."""
        assert self._adam is not None
        agent = self.agent
        # First, as in SAC.update. Inside the graph the normalisation statistics are buffers it
        # reads at each call (inputs, updated in place between calls), never constants.
        batch = agent.augmented(agent.normalized(batch))
        critic_adam, actor_adam, alpha_adam = self._adam
        batch = agent.scaled_rewards(batch)
        alpha = agent.log_alpha.exp()
        grads, (critic_loss, (q_mean, target_q_mean)) = grad_and_value(
            self._critic_objective, has_aux=True
        )(critic_adam.params, batch, alpha)
        critic_adam.step_(grads)
        simbav2.project_(agent.critic_sphere)  # (SimbaV2's weights; none otherwise)
        if do_actor:
            grads, (actor_loss, log_prob) = grad_and_value(self._actor_objective, has_aux=True)(
                actor_adam.params, batch.obs, alpha
            )
            actor_adam.step_(grads)
            simbav2.project_(agent.actor_sphere)
            entropy, alpha_grad, alpha_loss = losses.temperature(
                log_prob, agent.log_alpha, agent.target_entropy
            )
            actor_metrics.copy_(torch.stack([actor_loss, alpha_loss, entropy]))
            if alpha_adam is not None:
                alpha_adam.step_([alpha_grad])
        if do_polyak:
            agent.polyak_update()
        # A copy: views of `actor_metrics` would change with a later update's actor step.
        return agent.metrics(critic_loss, alpha, q_mean, target_q_mean, actor_metrics.clone())

    @torch.no_grad()
    def _update_many(
        self, batch: Batch, actor_metrics: Tensor, due: tuple[tuple[bool, bool], ...]
    ) -> Metrics:
        """`_update` once per (do_actor, do_polyak) in `due`, on batch[k]; metrics (K,)."""
        return _stacked(
            [
                self._update(map_batch(operator.itemgetter(i), batch), actor_metrics, *flags)
                for i, flags in enumerate(due)
            ]
        )

    def _critic_objective(
        self, params: list[Tensor], batch: Batch, alpha: Tensor
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """The critic loss as a function of the critics' parameters (for torch.func)."""
        values = dict(zip(self._critic_names, params, strict=True))
        loss, q_mean, target_q_mean = functional_call(
            self._nets, values, (self.agent.critic_loss, batch, alpha)
        )
        return loss, (q_mean, target_q_mean)

    def _actor_objective(
        self, params: list[Tensor], obs: Tensor, alpha: Tensor
    ) -> tuple[Tensor, Tensor]:
        """The actor loss as a function of the actor's parameters (the critics are constants
        to torch.func: only these parameters are differentiated)."""
        values = dict(zip(self._actor_names, params, strict=True))
        return functional_call(self._nets, values, (self.agent.actor_loss, obs, alpha))
