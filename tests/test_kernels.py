"""The CPU kernels sac.compiled swaps in give the plain ops' numbers and keep the parameters
the optimizers hold."""

import pytest
import torch

from sac.agent import SAC
from sac.compiled import make_updater
from sac.config import AgentConfig
from sac.kernels import EnsembleMatVec, use_cpu_kernels
from sac.networks import EnsembleCritic, EnsembleLinear


def test_matvec_kernel_equals_the_batched_matmul_with_its_gradients():
    torch.manual_seed(0)
    plain = EnsembleLinear(3, 16, 1)
    fast = EnsembleMatVec.sharing(plain)
    assert fast.weight is plain.weight and fast.bias is plain.bias
    x = torch.randn(3, 64, 16, requires_grad=True)
    grads = []
    for layer in (plain, fast):
        out = layer(x)
        assert out.shape == (3, 64, 1)
        g = torch.autograd.grad(out.pow(2).sum(), [x, layer.weight, layer.bias])
        grads.append((out, *g))
    for got, want in zip(grads[1], grads[0], strict=True):
        torch.testing.assert_close(got, want)


def _q_layers(agent: SAC) -> list[type]:
    nets = [agent.critic, *([agent.critic_target] if agent.critic_target is not None else [])]
    return [type(net.layers[-1]) for net in nets]


@pytest.mark.parametrize(("compile", "env", "swapped"), [(False, "1", True), (True, "1", False),
                                                         (False, "0", False)])  # fmt: skip
def test_an_eager_updater_on_cpu_swaps_the_q_layers_unless_off(monkeypatch, compile, env, swapped):
    monkeypatch.setenv("SAC_CPU_KERNELS", env)
    agent = SAC(3, 1, AgentConfig(hidden_sizes=[8, 8]))
    before = [p for p in agent.critic.parameters()]
    make_updater(agent, compile=compile)
    kind = EnsembleMatVec if swapped else EnsembleLinear
    assert _q_layers(agent) == [kind, kind]  # the critics and their targets
    assert list(agent.critic.parameters()) == before  # the very tensors the optimizer holds
    assert all(type(layer) is EnsembleLinear for layer in agent.critic.layers[:-1])
    assert list(agent.critic.state_dict()) == list(EnsembleCritic(3, 1, [8, 8]).state_dict())


def test_only_one_output_layers_are_swapped():
    critic = EnsembleCritic(4, 2, [8], num=2)
    use_cpu_kernels(critic)
    assert [type(layer) for layer in critic.layers] == [EnsembleLinear, EnsembleMatVec]
