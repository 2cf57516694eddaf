"""SimbaV2 (agent=simbav2): the hyperspherical networks, the categorical critic and its
projection, reward scaling, learning-rate decay, and the preset in real runs."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import assert_same_state
from test_agent import ACT, OBS, make_batch
from test_resume import _metric_rows, _run

from sac import losses, simbav2
from sac.agent import SAC
from sac.config import AgentConfig, validated
from sac.errors import SACError
from sac.reward_norm import RewardNormalizer
from sac.simbav2 import HyperBlock, HyperEmbedder, HyperLinear, SimbaV2Critic

SIMBA = {
    "network": "simbav2",
    "hidden_sizes": [16],
    "critic_hidden_sizes": [32, 32],
    "critic_bins": 11,
    "alpha": 0.01,
    "log_std_min": -10.0,
}


def make_agent(**overrides) -> SAC:
    torch.manual_seed(0)
    return SAC(OBS, ACT, AgentConfig(**{**SIMBA, **overrides}))


def unit_norms(x: torch.Tensor, dim: int = -1) -> None:
    torch.testing.assert_close(x.norm(dim=dim), torch.ones_like(x.norm(dim=dim)))


# ----------------------------------------------------------------------------- sphere maths
def test_l2_normalize_gives_unit_vectors_and_leaves_zero_finite():
    x = torch.randn(5, 7) * torch.tensor([1e-3, 1.0, 10.0, 1e3, 1e5]).view(5, 1)
    y = simbav2.l2_normalize(x)
    unit_norms(y)
    torch.testing.assert_close(y * x.norm(dim=-1, keepdim=True), x)  # same direction
    assert torch.equal(simbav2.l2_normalize(torch.zeros(3)), torch.zeros(3))


def test_lerp_normalize_moves_from_the_residual_to_the_update_on_the_sphere():
    r = simbav2.l2_normalize(torch.randn(8, 6))
    u = simbav2.l2_normalize(torch.randn(8, 6))
    torch.testing.assert_close(simbav2.lerp_normalize(r, u, torch.zeros(6)), r)
    torch.testing.assert_close(simbav2.lerp_normalize(r, u, torch.ones(6)), u)
    half = simbav2.lerp_normalize(r, u, torch.full((6,), 0.5))
    torch.testing.assert_close(half, simbav2.l2_normalize(r + u))  # the midpoint's direction
    unit_norms(simbav2.lerp_normalize(r, u, torch.rand(6)))


@pytest.mark.parametrize(("in_dim", "out_dim", "num"), [(6, 4, 0), (4, 9, 0), (5, 3, 2)])
def test_hyper_linear_starts_orthogonal_with_unit_weight_vectors(in_dim, out_dim, num):
    torch.manual_seed(0)
    w = HyperLinear(in_dim, out_dim, num).weight
    assert w.shape == ((num, in_dim, out_dim) if num else (in_dim, out_dim))
    unit_norms(w, dim=-2)
    if out_dim <= in_dim:  # the output units' weight vectors are orthonormal
        gram = w.mT @ w
        torch.testing.assert_close(gram, torch.eye(out_dim).expand_as(gram))
    if num:
        assert not torch.allclose(w[0], w[1])  # each member initialised on its own


def test_features_lie_on_the_sphere():
    torch.manual_seed(0)
    x = torch.randn(10, 3) * 50
    emb = HyperEmbedder(3, 8, math.sqrt(2 / 8))
    z = emb(x)
    unit_norms(z)
    unit_norms(HyperBlock(8, math.sqrt(2 / 8), 0.5, 1 / math.sqrt(8))(z))
    # The appended constant keeps the input's magnitude: x and 2x embed differently.
    assert not torch.allclose(emb(x), emb(2 * x))


def test_the_critic_ensemble_is_n_independent_critics():
    """Member i of the batched critics equals a one-member critic holding member i's weights:
    the shared input broadcasts to every member, nothing mixes between them."""
    torch.manual_seed(0)
    three = SimbaV2Critic(OBS, ACT, 8, 2, num=3, bins=5)
    obs, act = torch.randn(12, OBS), torch.randn(12, ACT)
    q, log_probs = three.distribution(obs, act)
    assert q.shape == (3, 12) and log_probs.shape == (3, 12, 5)
    for i in range(3):
        one = SimbaV2Critic(OBS, ACT, 8, 2, num=1, bins=5)
        one.load_state_dict({k: v[i : i + 1] for k, v in three.state_dict().items()})
        q_i, log_probs_i = one.distribution(obs, act)
        torch.testing.assert_close(q_i[0], q[i])
        torch.testing.assert_close(log_probs_i[0], log_probs[i])
    torch.testing.assert_close(log_probs.exp().sum(-1), torch.ones(3, 12))
    torch.testing.assert_close(q, (log_probs.exp() * torch.linspace(-5, 5, 5)).sum(-1))


def test_scalers_start_at_their_init_and_learn_in_units_of_their_scale():
    s = simbav2.Scaler(4, init=0.5, scale=0.1)
    torch.testing.assert_close(s.value(), torch.full((4,), 0.5))
    torch.testing.assert_close(s.weight, torch.full((4,), 0.1))  # what Adam steps
    s(torch.ones(4)).sum().backward()
    assert s.weight.grad is not None
    torch.testing.assert_close(s.weight.grad, torch.full((4,), 5.0))  # d/dw of w * init/scale


def test_gradients_reach_every_parameter():
    agent = make_agent()
    batch = make_batch()
    alpha = agent.log_alpha.detach().exp()
    agent.critic_loss(batch, alpha)[0].backward()
    agent.actor_loss(batch.obs, alpha)[0].backward()
    for net in (agent.actor, agent.critic):
        for name, p in net.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, name
    # The target is a constant: the target critics get no gradient.
    assert all(p.grad is None for p in agent.critic_target.parameters())


def test_weights_stay_on_the_sphere_through_updates():
    agent = make_agent(actor_lr=0.05, critic_lr=0.05)  # big steps: far off without projection
    before = [w.clone() for w in agent.critic_sphere]
    for seed in range(3):
        agent.update(make_batch(seed=seed))
    assert agent.actor_sphere and agent.critic_sphere
    for w in agent.actor_sphere + agent.critic_sphere:
        unit_norms(w, dim=-2)
    assert all(not torch.allclose(w, b) for w, b in zip(agent.critic_sphere, before))
    # Without the projection the same steps leave the sphere.
    w = torch.nn.Parameter(before[0].clone())
    opt = torch.optim.Adam([w], lr=0.05)
    w.sum().backward()
    opt.step()
    assert (w.detach().norm(dim=-2) - 1).abs().max() > 1e-2
    simbav2.project_([w.data])
    unit_norms(w.detach(), dim=-2)


# ----------------------------------------------------------------------------- categorical maths
def brute_force_projection(values, probs, v_min, v_max):
    """C51's algorithm 1 (Bellemare et al. 2017), one atom at a time in Python."""
    b_size, k = probs.shape
    dz = (v_max - v_min) / (k - 1)
    out = np.zeros((b_size, k))
    for i in range(b_size):
        for j in range(k):
            v = min(max(float(values[i, j]), v_min), v_max)
            b = (v - v_min) / dz
            lo, hi = math.floor(b), math.ceil(b)
            p = float(probs[i, j])
            if lo == hi:
                out[i, lo] += p
            else:
                out[i, lo] += p * (hi - b)
                out[i, hi] += p * (b - lo)
    return torch.tensor(out, dtype=torch.float32)


def test_categorical_projection_by_hand():
    # Atoms -1, -0.5, 0, 0.5, 1. Mass 1 at 0.25 splits in half between 0 and 0.5; at an atom
    # it stays whole; beyond the ends it is clipped to them.
    values = torch.tensor([[0.25, 0.5, -3.0, 7.0, -0.875]])
    probs = torch.tensor([[0.1, 0.2, 0.3, 0.15, 0.25]])
    out = losses.categorical_projection(values, probs, -1.0, 1.0)
    expected = torch.tensor([[0.3 + 0.25 * 0.75, 0.25 * 0.25, 0.05, 0.05 + 0.2, 0.15]])
    torch.testing.assert_close(out, expected)


def test_categorical_projection_equals_c51_and_keeps_mass_and_mean():
    g = torch.Generator().manual_seed(0)
    k, v_min, v_max = 11, -5.0, 5.0
    atoms = torch.linspace(v_min, v_max, k)
    values = torch.cat(
        [
            torch.randn(20, k, generator=g) * 4,  # some beyond the support
            atoms.expand(3, k),  # exactly on the atoms
            atoms.expand(3, k) * 0.5 + 0.3,
        ]
    )
    probs = torch.softmax(torch.randn(values.shape, generator=g), dim=-1)
    out = losses.categorical_projection(values, probs, v_min, v_max)
    torch.testing.assert_close(out, brute_force_projection(values, probs, v_min, v_max))
    torch.testing.assert_close(out.sum(-1), torch.ones(len(values)))
    assert (out >= 0).all()
    inside = (values.abs() <= v_max).all(-1)  # without clipping, the mean is kept too
    torch.testing.assert_close(
        (out * atoms).sum(-1)[inside], (probs * values).sum(-1)[inside], rtol=0, atol=1e-5
    )
    torch.testing.assert_close(out[20:23], probs[20:23])  # on the atoms nothing moves


def test_categorical_td_target_is_the_projected_soft_bellman_backup():
    g = torch.Generator().manual_seed(0)
    b, k = 6, 21
    next_probs = torch.softmax(torch.randn(b, k, generator=g), -1)
    reward = torch.tensor([0.5, -0.2, 1.0, 0.0, 0.3, -2.0])
    terminated = torch.tensor([0.0, 0.0, 0.0, 1.0, 0.0, 1.0])
    next_log_prob = torch.randn(b, generator=g)
    alpha, gamma = torch.tensor(0.1), 0.9
    target = losses.categorical_td_target(
        reward, terminated, next_probs, next_log_prob, alpha, gamma, -20.0, 20.0
    )
    atoms = torch.linspace(-20, 20, k)
    # Mean of the target = r + gamma (1 - d) (E[Z'] - alpha log pi): nothing is clipped here.
    expected = losses.td_target(
        reward,
        terminated,
        (next_probs * atoms).sum(-1, keepdim=True).T,
        next_log_prob,
        alpha,
        gamma,
    )
    torch.testing.assert_close((target * atoms).sum(-1), expected)
    # A terminal transition's distribution is the reward alone (split between two atoms).
    torch.testing.assert_close(
        target[3],
        losses.categorical_projection(
            torch.full((1, k), 0.0), torch.full((1, k), 1.0 / k), -20.0, 20.0
        )[0],
    )
    assert target[5][9] == pytest.approx(1.0)  # -2.0 is atom 9 of 21 on [-20, 20]


def test_the_target_takes_the_distribution_of_the_critic_with_the_smaller_mean():
    q = torch.tensor([[1.0, -2.0, 0.5], [0.0, 3.0, 0.5]])  # (2 critics, 3 samples)
    probs = torch.arange(2 * 3 * 4, dtype=torch.float32).view(2, 3, 4)
    out = losses.min_mean_distribution(q, probs)
    torch.testing.assert_close(out, torch.stack([probs[1, 0], probs[0, 1], probs[0, 2]]))


def test_categorical_critic_loss_is_the_summed_cross_entropy():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 8, 5, generator=g)
    target = torch.softmax(torch.randn(8, 5, generator=g), -1)
    loss = losses.categorical_critic_loss(F.log_softmax(logits, -1), target)
    expected = sum(F.cross_entropy(logits[i], target) for i in range(2))
    torch.testing.assert_close(loss, expected)


def test_the_agents_critic_loss_is_built_from_these_pieces():
    """The critic loss by hand: target critics' distributions at a' (the same noise), the one
    with the smaller mean, each atom's backup projected, cross-entropy summed over critics."""
    agent = make_agent(gamma=0.9)
    batch = make_batch(terminated=0.0)
    alpha = agent.log_alpha.detach().exp()
    torch.manual_seed(5)
    loss, _, _ = agent.critic_loss(batch, alpha)
    torch.manual_seed(5)
    with torch.no_grad():
        a2, logp2 = agent.actor(batch.next_obs)
        q2, lp2 = agent.critic_target.distribution(batch.next_obs, a2)
        probs = torch.where((q2[0] <= q2[1]).unsqueeze(-1), lp2[0].exp(), lp2[1].exp())
        atoms = torch.linspace(-5, 5, 11)
        values = batch.reward[:, None] + 0.9 * (atoms[None] - alpha * logp2[:, None])
        target = brute_force_projection(values, probs, -5.0, 5.0)
    _, log_probs = agent.critic.distribution(batch.obs, batch.action)
    expected = -(target * log_probs).sum(-1).mean(-1).sum()
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- reward scaling
def test_reward_normalizer_follows_the_reference_running_statistics():
    """Against the reference's algorithm written out: G per env reset one step after a done,
    the moments of every G so far (with the prior mean 0, variance 1, count 1e-4), max |G|."""
    rng = np.random.default_rng(0)
    gamma, g_max, steps, envs = 0.9, 5.0, 60, 2
    rewards = rng.normal(2.0, 3.0, (steps, envs))
    dones = rng.random((steps, envs)) < 0.1
    norm = RewardNormalizer(gamma, g_max, torch.device("cpu"))
    g, history = np.zeros(envs), []
    for r, d in zip(rewards, dones):
        norm.update(torch.as_tensor(r, dtype=torch.float32), torch.as_tensor(d))
        g = gamma * (1 - d) * g + r.astype(np.float32)
        history.append(g.copy())
    all_g = np.concatenate(history)
    count = 1e-4 + all_g.size
    mean = all_g.sum() / count
    var = (1e-4 * 1.0 + (all_g**2).sum()) / count - mean**2
    assert norm.count.item() == pytest.approx(count)
    assert norm.mean.item() == pytest.approx(mean, rel=1e-9)
    assert norm.var.item() == pytest.approx(var, rel=1e-9)
    assert norm.abs_max.item() == pytest.approx(np.abs(all_g).max())
    expected = max(math.sqrt(var + 1e-8), np.abs(all_g).max() / g_max)
    assert norm.scale.item() == pytest.approx(expected, rel=1e-6)
    np.testing.assert_allclose(norm.returns.numpy(), g)


def test_return_scale_is_bounded_below_by_the_largest_return():
    var, big = torch.tensor(4.0), torch.tensor(100.0)
    assert losses.return_scale(var, torch.tensor(1.0), 5.0).item() == pytest.approx(2.0)
    assert losses.return_scale(var, big, 5.0).item() == pytest.approx(20.0)


def test_updates_see_rewards_divided_by_the_scale():
    """An agent with reward_norm (scale s) updates exactly as one without it on rewards / s."""
    scaled = make_agent(reward_norm=True)
    plain = make_agent()
    scaled.update_reward_norm(torch.tensor([10.0, -4.0]), torch.tensor([False, False]))
    s = scaled.reward_norm.scale.item()
    assert s == pytest.approx(7.0, rel=1e-4)  # the returns' std (max|G| / 5 is only 2)
    batch = make_batch()
    for agent, b in ((scaled, batch), (plain, batch._replace(reward=batch.reward / s))):
        torch.manual_seed(1)
        agent.update(b)
    for p, q in zip(scaled.critic.parameters(), plain.critic.parameters(), strict=True):
        torch.testing.assert_close(p, q)


def test_the_reward_scale_is_saved_and_restored():
    agent = make_agent(reward_norm=True)
    agent.update_reward_norm(torch.tensor([1.0, 3.0]), torch.tensor([False, True]))
    other = make_agent(reward_norm=True)
    scale = other.reward_norm.scale
    other.load_state_dict(agent.state_dict())
    assert other.reward_norm.scale is scale  # in place: compiled graphs read this tensor
    for name, t in agent.reward_norm.state_dict().items():
        torch.testing.assert_close(other.reward_norm.state_dict()[name], t)


# ----------------------------------------------------------------------------- lr, entropy
def test_linear_decay():
    assert losses.linear_decay(1e-4, 5e-5, 0, 100) == 1e-4
    assert losses.linear_decay(1e-4, 5e-5, 50, 100) == pytest.approx(7.5e-5)
    assert losses.linear_decay(1e-4, 5e-5, 500, 100) == pytest.approx(5e-5)
    t = torch.tensor([0.0, 50.0, 500.0], dtype=torch.float64)
    torch.testing.assert_close(
        losses.linear_decay(1e-4, 5e-5, t, 100),
        torch.tensor([1e-4, 7.5e-5, 5e-5], dtype=torch.float64),
    )


def test_learning_rates_decay_over_the_updates_of_lr_decay_steps():
    # 4 env steps at 2 updates per step: 8 updates from 1e-3 to 1e-4, then flat.
    agent = make_agent(
        actor_lr=1e-3,
        critic_lr=1e-3,
        alpha_lr=2e-3,
        lr_end=1e-4,
        lr_decay_steps=4,
        updates_per_step=2.0,
    )
    seen = []
    for _ in range(10):
        agent.update(make_batch())
        seen.append([o.param_groups[0]["lr"] for o in agent_optims(agent)])
    # the n-th update steps with the rate of n - 1 updates done
    for n, (critic, actor, alpha) in enumerate(seen, start=1):
        frac = min((n - 1) / 8, 1.0)
        assert critic == pytest.approx(1e-3 - 9e-4 * frac)
        assert actor == pytest.approx(critic)
        assert alpha == pytest.approx(2e-3 - 1.9e-3 * frac)
    assert make_agent().critic_optim.param_groups[0]["lr"] == 3e-4  # constant by default


def agent_optims(agent: SAC):
    return agent.critic_optim, agent.actor_optim, agent.alpha_optim


def test_target_entropy_per_action_dimension():
    assert make_agent(target_entropy_per_dim=-0.5).target_entropy == -0.5 * ACT
    assert make_agent(target_entropy_per_dim=-0.5, target_entropy=-7.0).target_entropy == -7.0
    assert SAC(OBS, ACT, AgentConfig(hidden_sizes=[8])).target_entropy == -ACT


# ----------------------------------------------------------------------------- config
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"network": "resnet"}, "agent.network must be mlp or simbav2"),
        ({"network": "simbav2", "hidden_sizes": [64, 32]}, "one width per network"),
        ({"network": "simbav2", "critic_norm": "layer"}, "normalises its own features"),
        ({"network": "simbav2", "gsde": True}, "normalises its own features"),
        ({"critic_bins": 51}, "needs agent.network=simbav2"),
        ({"network": "simbav2", "critic_bins": 1}, "agent.critic_bins must be 0 or >= 2"),
        (
            {"network": "simbav2", "critic_bins": 51, "target_networks": False},
            "needs agent.target_networks=true",
        ),
        ({"lr_end": 1e-5}, "agent.lr_decay_steps > 0"),
        ({"reward_norm_g_max": 0.0}, "agent.reward_norm_g_max must be > 0"),
    ],
)
def test_bad_simbav2_settings_are_refused(overrides, message):
    with pytest.raises(SACError, match=message):
        AgentConfig(**overrides)


def test_the_preset_is_valid_and_follows_the_reference_config(make_cfg):
    cfg = make_cfg("agent=simbav2", "env=hopper", "total_steps=300000")
    agent = validated(cfg).agent
    assert agent.name == "simbav2" and agent.network == "simbav2"
    assert (agent.hidden_sizes, agent.critic_hidden_sizes) == ([128], [512, 512])
    assert (agent.critic_bins, agent.critic_v_max, agent.reward_norm_g_max) == (101, 5.0, 5.0)
    assert (agent.actor_lr, agent.lr_end, agent.lr_decay_steps) == (1e-4, 5e-5, 1_000_000)
    assert (agent.alpha, agent.target_entropy_per_dim, agent.gamma) == (0.01, -0.5, 0.995)
    assert agent.updates_per_step == 2.0 and agent.warmup_steps == 10_000  # the env's kept


# ----------------------------------------------------------------------------- real runs
TINY = [
    "agent=simbav2",
    "agent.hidden_sizes=[16]",
    "agent.critic_hidden_sizes=[32,32]",
    "agent.critic_bins=21",
    "agent.batch_size=32",
]


@pytest.mark.slow
def test_a_run_resumed_equals_the_uninterrupted_run(make_cfg, tmp_path):
    """Reward statistics (each env's running return), decayed learning rates and the weights
    on the sphere continue exactly: 2 envs with 5-step episodes, a checkpoint at step 200."""
    common = [
        *TINY,
        "env.id=CountEnv-v0",
        "+env.kwargs={length:5,count_episodes:false}",
        "env.num_envs=2",
        "agent.updates_per_step=1",
        "checkpoint_every=200",
        "keep_checkpoints=0",
    ]
    _run(make_cfg, tmp_path / "whole", *common, "total_steps=300")
    shutil.copytree(tmp_path / "whole", tmp_path / "cut")
    ckpt = tmp_path / "cut" / "checkpoints" / "step_0000000200.pt"
    _run(make_cfg, tmp_path / "cut", *common, "total_steps=300", f"resume={ckpt}")
    from sac.checkpoint import load_checkpoint

    whole, cut = (load_checkpoint(tmp_path / d, mmap=False) for d in ("whole", "cut"))
    for part in ("agent", "buffer", "rng", "counters"):
        assert_same_state(whole[part], cut[part], part)
    assert whole["agent"]["critic_optim"]["param_groups"][0]["lr"] < 1e-4  # it decayed
    assert whole["agent"]["reward_norm"]["count"] > 300
    rows = [_metric_rows(tmp_path / d / "metrics.csv") for d in ("whole", "cut")]
    assert rows[0] == rows[1]


@pytest.mark.slow
def test_a_pendulum_run_trains_saves_resumes_evaluates_and_loads(make_cfg, tmp_path):
    from sac.evaluate import evaluate
    from sac.policy import load_policy
    from sac.trainer import Trainer

    run = [*TINY, "agent.warmup_steps=100", "eval_episodes=2", "device=cpu", "eval_every=0"]
    summary = Trainer(make_cfg(*run, "total_steps=200"), tmp_path).train()
    assert summary["steps"] == 200
    resumed = Trainer(make_cfg(*run, "total_steps=400"), tmp_path, resume_from=tmp_path)
    assert resumed.agent.num_updates == 200  # (200 - 100) transitions at 2 updates each
    summary = resumed.train()
    assert summary["steps"] == 400 and summary["eval_return"] is not None
    assert resumed.agent.num_updates == 600
    for w in resumed.agent.actor_sphere + resumed.agent.critic_sphere:
        unit_norms(w, dim=-2)
    policy = load_policy(tmp_path)
    action = policy([1.0, 0.0, 0.5])
    assert action.shape == (1,) and -2.0 <= action[0] <= 2.0
    from hydra import compose, initialize_config_dir

    from sac.config import config_dir

    with initialize_config_dir(version_base="1.3", config_dir=config_dir()):
        eval_cfg = compose(
            "eval", [f"checkpoint={tmp_path}", "episodes=1", f"output_dir={tmp_path / 'ev'}"]
        )
    result = evaluate(eval_cfg)
    assert len(result["returns"]) == 1
