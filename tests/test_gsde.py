"""gSDE (agent.gsde=true): state-dependent exploration noise, its distribution and its resets."""

import pytest
import torch
from torch.distributions import Normal, TanhTransform, TransformedDistribution

from sac.agent import SAC
from sac.config import AgentConfig
from sac.networks import GSDEActor
from sac.trainer import Trainer

OBS, ACT = 4, 2


def make_actor() -> GSDEActor:
    torch.manual_seed(0)
    actor = GSDEActor(OBS, ACT, [16, 16], log_std_init=-1.0)
    with torch.no_grad():  # a std matrix with distinct entries
        actor.log_std.add_(torch.randn_like(actor.log_std) * 0.3)
    return actor


def test_exploration_noise_has_the_variance_of_the_policy():
    """z(s) @ theta with theta ~ N(0, S^2) is Gaussian with variance sum_i z_i^2 S_ij^2: the
    variance of the distribution the losses sample."""
    actor = make_actor()
    obs = torch.randn(1, OBS).expand(20_000, OBS)
    actor.reset_noise(20_000)
    _, log_std, z = actor._params(obs)
    noise = torch.bmm(z.unsqueeze(1), actor.noise).squeeze(1)
    torch.testing.assert_close(noise.mean(0), torch.zeros(ACT), atol=0.03, rtol=0)
    torch.testing.assert_close(noise.var(0), (2 * log_std[0]).exp(), rtol=0.05, atol=0)
    assert log_std[0, 0] != log_std[0, 1]


def test_the_same_state_gives_the_same_action_until_the_noise_is_redrawn():
    actor = make_actor()
    obs = torch.randn(3, OBS)
    first = actor.sample_action(obs)  # draws one theta per row (env) at first use
    torch.testing.assert_close(actor.sample_action(obs), first, rtol=0, atol=0)
    assert not torch.allclose(actor.sample_action(obs + 0.1), first)  # smooth in the state
    actor.reset_noise(3, torch.tensor([False, True, False]))  # env 1's episode ended
    again = actor.sample_action(obs)
    torch.testing.assert_close(again[[0, 2]], first[[0, 2]], rtol=0, atol=0)
    assert not torch.allclose(again[1], first[1])
    actor.reset_noise(3)
    assert not torch.allclose(actor.sample_action(obs)[[0, 2]], first[[0, 2]])


def test_log_prob_is_the_squashed_gaussians_and_gradients_reach_the_right_parameters():
    actor = make_actor()
    obs = torch.randn(64, OBS)
    torch.manual_seed(1)
    a, log_prob = actor(obs)
    mu, log_std, _ = actor._params(obs)
    reference = TransformedDistribution(Normal(mu, log_std.exp()), TanhTransform())
    torch.testing.assert_close(log_prob, reference.log_prob(a).sum(-1), rtol=1e-4, atol=1e-4)
    # the std comes from the detached features: it trains S, never the trunk
    log_std.sum().backward()
    assert actor.log_std.grad.abs().sum() > 0
    assert all(p.grad is None or not p.grad.any() for p in actor.trunk.parameters())
    actor.zero_grad()
    (a.sum() - log_prob.sum()).backward()  # an actor-loss-like objective reaches everything
    assert all(p.grad is not None and p.grad.any() for p in actor.parameters())


def test_deterministic_action_is_the_clipped_mean():
    actor = make_actor()
    with torch.no_grad():
        actor.mu.bias.fill_(5.0)  # a mean beyond SB3's clip_mean of 2
    obs = torch.randn(5, OBS)
    torch.testing.assert_close(actor.deterministic(obs), torch.tanh(actor._params(obs)[0]))
    assert actor.deterministic(obs).max() <= torch.tanh(torch.tensor(2.0))


def test_the_agent_saves_and_restores_its_noise():
    torch.manual_seed(0)
    agent = SAC(OBS, ACT, AgentConfig(hidden_sizes=[16, 16], gsde=True))
    agent.act(torch.randn(2, OBS))
    state = agent.state_dict()
    other = SAC(OBS, ACT, AgentConfig(hidden_sizes=[16, 16], gsde=True))
    other.load_state_dict(state)
    torch.testing.assert_close(other.actor.noise, agent.actor.noise, rtol=0, atol=0)
    obs = torch.randn(2, OBS)
    torch.testing.assert_close(other.act(obs), agent.act(obs), rtol=0, atol=0)


@pytest.mark.parametrize(("freq", "expected"), [(-1, "episode ends"), (4, "every 4 steps")])
def test_the_trainer_redraws_noise_at_episode_starts_or_every_n_steps(
    make_cfg, tmp_path, monkeypatch, freq, expected
):
    cfg = make_cfg(
        "env.id=CountEnv-v0",
        "+env.kwargs.length=5",
        "env.num_envs=2",
        "agent.gsde=true",
        f"agent.gsde_sample_freq={freq}",
        "agent.hidden_sizes=[16,16]",
        "agent.batch_size=8",
        "agent.warmup_steps=10",
        "total_steps=40",
        "eval_every=0",
        "eval_episodes=1",
        "device=cpu",
    )
    trainer = Trainer(cfg, tmp_path)
    calls = []
    real = trainer.agent.reset_noise
    monkeypatch.setattr(
        trainer.agent,
        "reset_noise",
        lambda envs, which=None: (
            calls.append((trainer.step, None if which is None else which.tolist())),
            real(envs, which),
        ),
    )
    trainer.train()
    if expected == "episode ends":  # both envs end an episode every 5 vector steps (10 env steps)
        assert calls == [(s, [True, True]) for s in (10, 20, 30, 40)]
    else:  # 2 env steps per vector step: a multiple of 4 every other one
        assert [s for s, _ in calls] == list(range(4, 41, 4))
        assert all(which is None for _, which in calls)


@pytest.mark.slow
def test_a_gsde_run_trains_saves_and_its_policy_loads(make_cfg, tmp_path):
    from sac.policy import load_policy

    cfg = make_cfg(
        "agent.gsde=true",
        "agent.hidden_sizes=[32,32]",
        "agent.batch_size=32",
        "agent.warmup_steps=100",
        "total_steps=300",
        "eval_every=0",
        "eval_episodes=1",
        "device=cpu",
    )
    summary = Trainer(cfg, tmp_path).train()
    assert summary["steps"] == 300 and summary["eval_return"] is not None
    policy = load_policy(tmp_path)
    assert policy([0.0, 1.0, 0.0]).shape == (1,)


def test_bad_sample_freq_is_refused():
    from sac.errors import SACError

    with pytest.raises(SACError, match="gsde_sample_freq"):
        AgentConfig(gsde=True, gsde_sample_freq=0)
