"""AdamState, the Adam step that compile=true traces, against torch.optim.Adam itself."""

import pytest
import torch

from sac.adam import AdamState


def _params(seed: int) -> list[torch.nn.Parameter]:
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(shape, generator=g)) for shape in [(3, 4), (4,), ()]]


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("stepped_before", [0, 3], ids=["fresh", "resumed"])
def test_adam_state_steps_as_torch_adam_does(fused, stepped_before):
    mine, theirs = _params(0), _params(0)
    # eps large against sqrt(v) (gradients of about 0.1), so where it is added matters; beta1
    # small, so a bias correction for the wrong step count shows.
    kwargs = {"lr": 3e-3, "betas": (0.5, 0.99), "eps": 0.05}
    torch_adam = torch.optim.Adam(theirs, **kwargs, fused=fused)
    my_optim = torch.optim.Adam(mine, **kwargs, fused=fused)
    g = torch.Generator().manual_seed(1)
    state = None
    for k in range(stepped_before + 6):
        grads = [torch.randn(p.shape, generator=g) * 0.1 for p in theirs]
        for p, grad in zip(theirs, grads):
            p.grad = grad
        torch_adam.step()
        if k < stepped_before:  # (as after loading a checkpoint of a run that had stepped)
            for p, grad in zip(mine, grads):
                p.grad = grad.clone()
            my_optim.step()
            continue
        state = state or AdamState(my_optim)
        state.step_(grads)
    for p, q, start in zip(mine, theirs, _params(0)):
        assert not torch.equal(p, start)  # it moved
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    # The optimizer's own state moved: a checkpoint of it, loaded into torch's Adam, carries on.
    mine_sd, theirs_sd = my_optim.state_dict()["state"], torch_adam.state_dict()["state"]
    for i in theirs_sd:
        for key, value in theirs_sd[i].items():
            torch.testing.assert_close(mine_sd[i][key], value, rtol=1e-5, atol=1e-6)


def test_adam_state_creates_the_state_fused_adam_would():
    params = _params(0)
    torch_adam = torch.optim.Adam(params, fused=True)
    for p in params:
        p.grad = torch.zeros_like(p)
    torch_adam.step()  # creates its state (zero gradients: the moments stay zero)
    expected = torch_adam.state_dict()["state"]
    created = AdamState(torch.optim.Adam(_params(0), fused=True))
    for i, (m, v, t) in enumerate(zip(created.exp_avgs, created.exp_avg_sqs, created.steps)):
        for mine, theirs in ((m, expected[i]["exp_avg"]), (v, expected[i]["exp_avg_sq"])):
            assert mine.shape == theirs.shape and mine.dtype == theirs.dtype
            assert not mine.any()
        step = expected[i]["step"]
        assert t.shape == () and t.dtype == step.dtype and t.device == step.device
        assert t.item() == 0.0


def test_adam_state_keeps_a_non_fused_adams_step_on_the_cpu():
    # torch keeps `step` on the CPU unless Adam is fused or capturable (it is read on the
    # host); AdamState makes the same layout. Parameters on the meta device tell them apart.
    params = [torch.nn.Parameter(torch.empty(3, 4, device="meta"))]
    state = AdamState(torch.optim.Adam(params, foreach=False))
    assert state.steps[0].device.type == "cpu" and state.steps[0].dtype == torch.float32
    assert state.exp_avgs[0].device.type == "meta"


def test_adam_state_refuses_options_it_does_not_implement():
    with pytest.raises(ValueError, match="weight decay"):
        AdamState(torch.optim.Adam(_params(0), weight_decay=0.1))
