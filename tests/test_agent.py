"""SAC update maths: actor gradient through the action, targets, temperature, Polyak, state."""

import copy

import pytest
import torch

from sac.agent import METRIC_NAMES, SAC, Batch
from sac.config import AgentConfig
from sac.networks import squashed_log_prob

OBS, ACT = 4, 2


def make_batch(n: int = 64, terminated: float = 0.0, seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    return Batch(
        obs=torch.randn(n, OBS, generator=g),
        action=torch.rand(n, ACT, generator=g) * 2 - 1,
        reward=torch.randn(n, generator=g),
        next_obs=torch.randn(n, OBS, generator=g),
        terminated=torch.full((n,), terminated),
    )


def make_agent(**overrides) -> SAC:
    torch.manual_seed(0)
    cfg = AgentConfig(hidden_sizes=[32, 32], **overrides)
    return SAC(OBS, ACT, cfg)


def _policy_q(agent: SAC, obs: torch.Tensor) -> float:
    with torch.no_grad():
        return agent.critic(obs, agent.actor.deterministic(obs)).min(0).values.mean().item()


def _actor_q_gain(agent: SAC, steps: int = 30) -> float:
    """How much the actor's updates raise min Q(s, pi(s)) with the critic held fixed."""
    batch = make_batch()
    before = _policy_q(agent, batch.obs)
    for _ in range(steps):
        agent.update(batch)
    return _policy_q(agent, batch.obs) - before


def test_actor_learns_from_q_through_the_sampled_action():
    # A tiny critic lr holds Q (nearly) fixed; a tiny fixed alpha makes the actor loss -Q(s, a),
    # so only the gradient of Q through the action can move the actor.
    common = dict(critic_lr=1e-12, actor_lr=1e-2, autotune_alpha=False, alpha=1e-30)
    gain = _actor_q_gain(make_agent(**common))
    assert gain > 0.01, gain

    # The same agent sampling with sample() (no reparameterisation) gets no gradient from Q.
    broken = make_agent(**common)

    def forward_without_rsample(obs):
        mu, log_std = broken.actor.mean_log_std(obs)
        eps = torch.randn_like(mu)
        u = (mu + eps * log_std.exp()).detach()  # what Normal.sample() gives: a constant
        return torch.tanh(u), squashed_log_prob(u, eps, log_std)

    broken.actor.forward = forward_without_rsample
    assert abs(_actor_q_gain(broken)) < gain / 100


def test_td_target_bootstraps_unless_terminated():
    agent = make_agent()
    alpha = torch.tensor(0.3)
    done = make_batch(terminated=1.0)
    torch.testing.assert_close(agent.td_target(done, alpha), done.reward)

    live = make_batch(terminated=0.0)
    torch.manual_seed(1)
    y = agent.td_target(live, alpha)
    torch.manual_seed(1)  # the same a' ~ pi(.|s')
    a_next, logp_next = agent.actor(live.next_obs)
    q_next = agent.critic_target(live.next_obs, a_next).min(0).values
    expected = live.reward + 0.99 * (q_next - alpha * logp_next)
    torch.testing.assert_close(y, expected.detach())
    assert not torch.allclose(y, live.reward)


def test_target_uses_the_min_over_critics():
    agent = make_agent(num_critics=3)
    batch = make_batch(terminated=0.0)
    with torch.no_grad():  # make critic 1 the smallest everywhere by shifting its output bias
        agent.critic_target.layers[-1].bias[1] -= 100.0
    torch.manual_seed(2)
    y = agent.td_target(batch, torch.tensor(0.0))
    torch.manual_seed(2)
    a_next, _ = agent.actor(batch.next_obs)
    q1 = agent.critic_target(batch.next_obs, a_next)[1]
    torch.testing.assert_close(y, (batch.reward + 0.99 * q1).detach())


def test_polyak_update_in_place():
    agent = make_agent(tau=0.1)
    with torch.no_grad():
        for p in agent.critic.parameters():
            p.fill_(1.0)
        for p in agent.critic_target.parameters():
            p.zero_()
    ptrs = [p.data_ptr() for p in agent.critic_target.parameters()]
    agent.polyak_update()
    agent.polyak_update()
    for p in agent.critic_target.parameters():
        torch.testing.assert_close(p, torch.full_like(p, 0.19))  # 0.1, then 0.9*0.1 + 0.1
    assert ptrs == [p.data_ptr() for p in agent.critic_target.parameters()]


def test_target_update_interval():
    agent = make_agent(target_update_interval=2)
    before = copy.deepcopy(agent.critic_target.state_dict())
    agent.update(make_batch())
    for k, v in agent.critic_target.state_dict().items():
        torch.testing.assert_close(v, before[k])  # no Polyak step after update 1
    agent.update(make_batch())
    assert any(not torch.equal(v, before[k]) for k, v in agent.critic_target.state_dict().items())


@pytest.mark.parametrize(("target_entropy", "direction"), [(50.0, 1), (-50.0, -1)])
def test_alpha_rises_below_target_entropy_and_falls_above(target_entropy, direction):
    # Entropy of the initial policy is a few nats: far below +50, far above -50.
    agent = make_agent(target_entropy=target_entropy, alpha=0.5)
    before = agent.alpha
    for _ in range(5):
        agent.update(make_batch())
    assert (agent.alpha - before) * direction > 0


def test_fixed_alpha_stays_fixed():
    agent = make_agent(autotune_alpha=False, alpha=0.2)
    for _ in range(3):
        agent.update(make_batch())
    assert agent.alpha == pytest.approx(0.2)


def test_update_metrics_are_device_tensors_without_graph():
    agent = make_agent()
    m = agent.update(make_batch())
    assert tuple(m) == METRIC_NAMES
    for value in m.values():
        assert value.shape == () and not value.requires_grad and torch.isfinite(value)


def test_state_dict_round_trip_continues_identically():
    agent = make_agent()
    for _ in range(3):
        agent.update(make_batch())
    clone = make_agent()
    clone.load_state_dict(copy.deepcopy(agent.state_dict()))
    obs = make_batch().obs
    torch.testing.assert_close(
        clone.act(obs, deterministic=True), agent.act(obs, deterministic=True)
    )
    torch.manual_seed(5)
    m1 = agent.update(make_batch(seed=1))
    torch.manual_seed(5)
    m2 = clone.update(make_batch(seed=1))
    torch.testing.assert_close(m1, m2)  # (dicts of tensors, compared by name)
    assert clone.num_updates == agent.num_updates == 4


def test_act_builds_no_graph_and_stays_in_bounds():
    agent = make_agent()
    a = agent.act(torch.randn(10, OBS) * 100)
    assert not a.requires_grad and a.abs().max() <= 1
