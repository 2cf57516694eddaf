"""CPU kernels that sac.compiled swaps into the critics when their updates run eagerly on a
CPU. A kernel stays here only while a paired end-to-end run of experiments/bench_speed.py shows
it pays 5% or more (experiments/results/speed.md, "CPU kernels"); `SAC_CPU_KERNELS=0` turns
them off for such a run."""

from __future__ import annotations

import os

from torch import Tensor, nn

from sac.networks import EnsembleLinear


class EnsembleMatVec(EnsembleLinear):
    """A one-output EnsembleLinear (the Q layer) as a multiply and a sum: MKL runs the batched
    matrix-vector product far slower than these two ops. The same maths; the sum is taken in
    another order, so floats may differ. (Compiled, it measured no gain.)"""

    def forward(self, x: Tensor) -> Tensor:
        return (x * self.weight.mT).sum(-1, keepdim=True) + self.bias

    @classmethod
    def sharing(cls, layer: EnsembleLinear) -> EnsembleMatVec:
        """This kernel around `layer`'s own parameters (which the optimizers already hold)."""
        new = cls.__new__(cls)
        nn.Module.__init__(new)
        new.weight, new.bias = layer.weight, layer.bias
        return new


def use_cpu_kernels(*nets: nn.Module) -> None:
    """Swap the CPU kernels into `nets` in place (unless SAC_CPU_KERNELS=0)."""
    if os.environ.get("SAC_CPU_KERNELS", "1") == "0":
        return
    for net in nets:
        for module in list(net.modules()):
            for name, child in module.named_children():
                if type(child) is EnsembleLinear and child.weight.shape[-1] == 1:
                    setattr(module, name, EnsembleMatVec.sharing(child))
