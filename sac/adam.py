"""Adam's step written with tensor ops on a torch.optim.Adam's own state, for code that
torch.compile traces as one graph (the optimizer's fused kernel is opaque to it)."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from sac import losses


class LinearDecay(NamedTuple):
    """A learning rate decayed linearly from `start` to `end` over the first `updates` of the
    agent's updates, for an optimizer that steps in every `every`-th update."""

    start: float
    end: float
    updates: float
    every: int = 1


class AdamState:
    """The parameters of a torch.optim.Adam with one parameter group, their moment estimates
    and step counts, created where the optimizer has not stepped yet exactly as it would create
    them (zeros; the step a float32 scalar, on the parameter's device for fused or capturable
    Adam and on the CPU otherwise), so a checkpoint of the optimizer looks the same whichever
    code stepped it."""

    def __init__(self, optim: torch.optim.Adam, schedule: LinearDecay | None = None) -> None:
        (group,) = optim.param_groups
        if group["amsgrad"] or group["weight_decay"] or group["maximize"]:
            raise ValueError("AdamState supports plain Adam (no amsgrad, weight decay, maximize)")
        self.lr: float = group["lr"]
        self.beta1, self.beta2 = group["betas"]
        self.eps: float = group["eps"]
        # The learning rate as a function of the step count, inside the graph (the agent sets
        # the eager optimizer's group["lr"] instead).
        self.schedule = schedule
        self.optim = optim
        self.params: list[Tensor] = list(group["params"])
        on_device = group["fused"] or group["capturable"]
        for p in self.params:
            if p not in optim.state or not optim.state[p]:
                optim.state[p] = {
                    "step": torch.zeros(
                        (), dtype=torch.float32, device=p.device if on_device else "cpu"
                    ),
                    "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                    "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format),
                }
        states = [optim.state[p] for p in self.params]
        self.steps: list[Tensor] = [s["step"] for s in states]
        self.exp_avgs: list[Tensor] = [s["exp_avg"] for s in states]
        self.exp_avg_sqs: list[Tensor] = [s["exp_avg_sq"] for s in states]
        # The bias corrections of the next step, as its loop over each parameter's elements
        # reads them (see step_).
        self.next_corrections = self._corrections()

    def current(self) -> bool:
        """Whether the optimizer still holds these state tensors (loading a state dict into
        it replaces them)."""
        state = self.optim.state.get(self.params[0], {})
        return state.get("exp_avg") is self.exp_avgs[0]

    @torch.no_grad()
    def step_(self, grads: list[Tensor]) -> None:
        """One Adam step with these gradients (one per parameter), in place: torch's update
        m = lerp(m, g, 1 - b1), v = b2 v + (1 - b2) g^2,
        p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps),
        with the bias corrections in float64 as fused Adam computes them (in float32,
        1 - 0.999^1 is off by 1e-5 of itself)."""
        torch._foreach_add_(self.steps, 1.0)
        torch._foreach_lerp_(self.exp_avgs, grads, 1.0 - self.beta1)
        torch._foreach_mul_(self.exp_avg_sqs, self.beta2)
        torch._foreach_addcmul_(self.exp_avg_sqs, grads, grads, 1.0 - self.beta2)
        step_sizes, bias2_sqrts = self.next_corrections
        for i, (p, m, v) in enumerate(
            zip(self.params, self.exp_avgs, self.exp_avg_sqs, strict=True)
        ):
            denom = v.sqrt() / bias2_sqrts[i] + self.eps
            p.sub_(step_sizes[i] * m / denom)
        # Computed one step ahead, into a tensor the next step reads: computed here for this
        # step instead, torch.compile would inline these few scalars into the loop over every
        # parameter's elements, recomputing two float64 pows per vector of floats.
        self.next_corrections.copy_(self._corrections())

    def _corrections(self) -> Tensor:
        """[lr / (1 - b1^t), sqrt(1 - b2^t)] (computed in float64, stored in float32) for
        each parameter's next step count t = step + 1; shape (2, n)."""
        t = torch.stack(self.steps).double() + 1.0
        lr: float | Tensor = self.lr
        if self.schedule is not None:  # the t-th step is in update t * every
            start, end, updates, every = self.schedule
            lr = losses.linear_decay(start, end, t * every - 1.0, updates)
        return torch.stack([lr / (1.0 - self.beta1**t), (1.0 - self.beta2**t).sqrt()]).float()
