"""The CPU kernels sac.compiled swaps in when compiling on a CPU give the plain ops' numbers."""

import pytest
import torch
from torch import nn

from sac.agent import SAC
from sac.compiled import make_updater
from sac.config import AgentConfig
from sac.kernels import CompiledCPUReLU, _ReLUGradFromOutput, use_cpu_kernels


def _relu_grads(fn, x):
    x = x.clone().requires_grad_(True)
    out = fn(x * 1.0)  # an in-place ReLU needs a non-leaf
    out.backward(torch.arange(1, out.numel() + 1, dtype=out.dtype).reshape(out.shape))
    return out.detach(), x.grad


def test_relu_with_gradient_from_its_output_equals_relu():
    # Zeros included: ReLU's derivative there is 0 in torch, and sign(0) is 0 too.
    x = torch.tensor([[-2.0, -0.0, 0.0, 1e-30, 3.0], [5.0, -1e-30, 0.0, -7.0, 0.5]])
    want = _relu_grads(torch.relu, x)
    got = _relu_grads(_ReLUGradFromOutput.apply, x)
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    assert not got[1].signbit().any()  # zero gradients are +0, as torch's ReLU gives them


@pytest.mark.slow
def test_compiled_relu_takes_its_gradient_from_the_output():
    # Compiled, the backward multiplies by the sign of the saved output instead of saving a
    # bool mask; eager is F.relu. The compiled gradients equal eager's.
    from torch._dynamo.testing import AotEagerAndRecordGraphs

    relu = CompiledCPUReLU(inplace=True)
    recorder = AotEagerAndRecordGraphs()
    torch._dynamo.reset()
    x = torch.randn(4, 64, generator=torch.Generator().manual_seed(0))
    _relu_grads(torch.compile(relu, backend=recorder, fullgraph=True), x)
    backward = recorder.bw_graphs[0].code
    assert "aten.sign" in backward and "threshold_backward" not in backward, backward

    want = _relu_grads(torch.relu, x)
    got = _relu_grads(torch.compile(relu, fullgraph=True), x)  # Inductor
    torch.testing.assert_close(got, want, rtol=0, atol=0)


def _relus(agent: SAC) -> list[type]:
    nets = (agent.actor, agent.critic)
    return [type(m) for net in nets for m in net.modules() if isinstance(m, nn.ReLU)]


@pytest.mark.parametrize(("compile", "env", "swapped"), [(False, "1", False), (True, "1", True),
                                                         (True, "0", False)])  # fmt: skip
def test_compiling_on_cpu_swaps_the_relus_unless_turned_off(monkeypatch, compile, env, swapped):
    monkeypatch.setenv("SAC_CPU_KERNELS", env)
    agent = SAC(3, 1, AgentConfig(hidden_sizes=[8, 8]))
    make_updater(agent, compile=compile)
    kinds = _relus(agent)
    assert len(kinds) == 3  # one per hidden layer in the actor, one the critics share
    assert set(kinds) == ({CompiledCPUReLU} if swapped else {nn.ReLU})


def test_use_cpu_kernels_keeps_inplace():
    net = nn.Sequential(nn.Linear(2, 2), nn.ReLU(inplace=True), nn.ReLU())
    use_cpu_kernels(net)
    assert [type(m) for m in net] == [nn.Linear, CompiledCPUReLU, CompiledCPUReLU]
    assert net[1].inplace and not net[2].inplace
