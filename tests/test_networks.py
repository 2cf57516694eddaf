"""The actor's sampling and log-probabilities, and the batched critic."""

import itertools

import torch
from torch import nn
from torch.distributions import Normal, TanhTransform, TransformedDistribution

from sac.networks import EnsembleCritic, EnsembleLinear, SquashedGaussianActor, squashed_log_prob


def test_log_prob_matches_transformed_distribution_away_from_saturation():
    torch.manual_seed(0)
    mu, std = torch.randn(512, 3), torch.rand(512, 3) + 0.2
    eps = torch.randn(512, 3).clamp(-2, 2)
    u = mu + std * eps  # within about 3 of 0: away from saturation, where the reference is exact
    reference = TransformedDistribution(Normal(mu, std), TanhTransform()).log_prob(torch.tanh(u))
    torch.testing.assert_close(
        squashed_log_prob(u, eps, std.log()), reference.sum(-1), rtol=1e-4, atol=1e-4
    )


def test_log_prob_stays_finite_at_saturation():
    normal = Normal(torch.zeros(4, 2), torch.ones(4, 2))
    u = torch.tensor([[30.0, -30.0], [100.0, 0.0], [-60.0, 50.0], [20.0, 20.0]])
    assert torch.all(torch.tanh(u).abs()[u.abs() > 19] == 1.0)  # tanh has rounded to +-1
    naive = (normal.log_prob(u) - torch.log(1 - torch.tanh(u) ** 2)).sum(-1)
    assert not torch.isfinite(naive).all()  # what the stable form avoids
    assert torch.isfinite(squashed_log_prob(u, u, torch.zeros_like(u))).all()  # mu 0, std 1


def test_actor_log_prob_is_the_density_of_the_action_it_returns():
    """What the update uses: forward's log pi(a|s), against torch's tanh-transformed Normal
    evaluated at forward's own action."""
    torch.manual_seed(0)
    actor = SquashedGaussianActor(5, 3, [32])
    obs = torch.randn(512, 5)
    a, logp = actor(obs)
    reference = TransformedDistribution(actor.distribution(obs), TanhTransform()).log_prob(a)
    keep = a.abs().amax(-1) < 0.99  # atanh(a) in the reference loses precision near +-1
    assert keep.sum() > 400
    torch.testing.assert_close(logp[keep], reference.sum(-1)[keep], rtol=1e-4, atol=1e-4)


def test_actor_samples_in_bounds_and_deterministic_is_tanh_mean():
    torch.manual_seed(0)
    actor = SquashedGaussianActor(5, 3, [32, 32])
    obs = torch.randn(1000, 5) * 10
    a, logp = actor(obs)
    assert a.shape == (1000, 3) and logp.shape == (1000,)
    assert a.abs().max() <= 1.0
    torch.testing.assert_close(actor.deterministic(obs), torch.tanh(actor.distribution(obs).loc))
    # Acting's action-only path makes forward's draw from the same random numbers.
    torch.manual_seed(1)
    expected = actor(obs)[0]
    torch.manual_seed(1)
    torch.testing.assert_close(actor.sample_action(obs), expected)


def test_rsample_passes_gradient_through_the_action_and_sample_does_not():
    torch.manual_seed(0)
    actor = SquashedGaussianActor(4, 2, [16])
    obs = torch.randn(8, 4)
    action, _ = actor(obs)  # rsample inside
    action.sum().backward()
    grads = [p.grad for p in actor.parameters()]
    assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0

    # sample() draws under no_grad: the action is a constant to autograd, so Q(s, a) could not
    # train the actor.
    u = actor.distribution(obs).sample()
    assert not u.requires_grad and u.grad_fn is None


def test_ensemble_critic_equals_separate_critics():
    torch.manual_seed(0)
    obs_dim, act_dim, hidden, n = 6, 2, [32, 16], 3
    ensemble = EnsembleCritic(obs_dim, act_dim, hidden, n)
    separate = []
    for i in range(n):
        dims = [obs_dim + act_dim, *hidden, 1]
        layers: list[nn.Module] = []
        for j, (d_in, d_out) in enumerate(itertools.pairwise(dims)):
            lin = nn.Linear(d_in, d_out)
            with torch.no_grad():  # nn.Linear stores W as (out, in); the ensemble as (in, out)
                lin.weight.copy_(ensemble.layers[j].weight[i].T)
                lin.bias.copy_(ensemble.layers[j].bias[i, 0])
            layers += [lin, nn.ReLU()]
        separate.append(nn.Sequential(*layers[:-1]))
    obs = torch.randn(64, obs_dim)
    act = torch.randn(64, act_dim, requires_grad=True)
    act_ref = act.detach().clone().requires_grad_(True)
    out = ensemble(obs, act)
    expected = torch.stack([q(torch.cat([obs, act_ref], -1)).squeeze(-1) for q in separate])
    torch.testing.assert_close(out, expected)
    # and the members are different functions (independent initialisation)
    assert not torch.allclose(out[0], out[1])

    # The same gradients, for every layer's weights and biases (the critic loss) and for the
    # action (the actor loss), with a different weight per member and sample.
    w = torch.randn(n, 64)
    (out * w).sum().backward()
    (expected * w).sum().backward()
    torch.testing.assert_close(act.grad, act_ref.grad)
    for i, q in enumerate(separate):
        linears = [m for m in q if isinstance(m, nn.Linear)]
        for layer, lin in zip(ensemble.layers, linears):
            torch.testing.assert_close(layer.weight.grad[i], lin.weight.grad.T)
            torch.testing.assert_close(layer.bias.grad[i, 0], lin.bias.grad)


def test_one_output_ensemble_layer_equals_its_batched_matmul():
    # On CPU the Q layer is a multiply and a sum; other devices use baddbmm. Both the same map.
    torch.manual_seed(0)
    layer = EnsembleLinear(3, 16, 1)
    x = torch.randn(3, 32, 16, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    w_ref = layer.weight.detach().clone().requires_grad_(True)
    b_ref = layer.bias.detach().clone().requires_grad_(True)
    out, expected = layer(x), torch.baddbmm(b_ref, x_ref, w_ref)
    torch.testing.assert_close(out, expected)
    g = torch.randn_like(out)
    out.backward(g)
    expected.backward(g)
    for got, want in ((x.grad, x_ref.grad), (layer.weight.grad, w_ref.grad),
                      (layer.bias.grad, b_ref.grad)):  # fmt: skip
        torch.testing.assert_close(got, want)
