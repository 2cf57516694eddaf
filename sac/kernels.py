"""CPU kernels that sac.compiled swaps into the networks when it compiles on a CPU. A kernel
stays here only while a paired end-to-end run of experiments/bench_speed.py shows it pays 5%
or more (experiments/results/speed.md); `SAC_CPU_KERNELS=0` turns them off to measure that."""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class _ReLUGradFromOutput(torch.autograd.Function):
    """ReLU whose backward multiplies by sign(output), a float, instead of a saved bool mask."""

    @staticmethod
    def forward(x: Tensor) -> Tensor:
        return torch.relu(x)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Tensor], output: Tensor) -> None:
        ctx.save_for_backward(output)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        (out,) = ctx.saved_tensors
        return grad * torch.sign(out)  # 1 where out > 0, else 0: ReLU's derivative


class CompiledCPUReLU(nn.ReLU):
    """nn.ReLU that, inside torch.compile, saves its float output for the backward pass
    instead of the bool mask Inductor saves, because Inductor's C++ backend writes bool
    tensors far slower than float ones. Finite values give the same gradients; a NaN output
    gets gradient 0. Eager (a fallback) and torch.export see a plain ReLU."""

    def forward(self, x: Tensor) -> Tensor:
        if torch.compiler.is_compiling() and not torch.compiler.is_exporting():
            return _ReLUGradFromOutput.apply(x)
        return F.relu(x, inplace=self.inplace)


def use_cpu_kernels(*nets: nn.Module) -> None:
    """Swap the CPU kernels into `nets` in place (unless SAC_CPU_KERNELS=0)."""
    if os.environ.get("SAC_CPU_KERNELS", "1") == "0":
        return
    for net in nets:
        for module in list(net.modules()):
            for name, child in module.named_children():
                if type(child) is nn.ReLU:
                    setattr(module, name, CompiledCPUReLU(inplace=child.inplace))
