"""Options beyond vanilla SAC: each mechanism against a plain reference or a closed form.

LayerNorm/dropout critics (DroQ), batch renormalisation and the joint pass without target
networks (CrossQ), the random-subset target min and mean actor Q (REDQ), the delayed actor.
"""

import copy

import pytest
import torch
from test_agent import ACT, OBS, make_batch
from torch import nn

from sac.agent import SAC
from sac.config import AgentConfig, validated
from sac.errors import SACError
from sac.networks import BatchRenorm, EnsembleCritic

CROSSQ = {
    "critic_norm": "batch",
    "actor_batch_norm": True,
    "target_networks": False,
    "actor_update_interval": 3,
    "adam_beta1": 0.5,
}


def make_agent(**overrides) -> SAC:
    torch.manual_seed(0)
    return SAC(OBS, ACT, AgentConfig(hidden_sizes=[32, 32], **overrides))


def constant_critics(agent: SAC, critic: EnsembleCritic | None = None) -> None:
    """Make critic i output the constant i (whatever s and a): zero last weights, bias i."""
    critic = critic or agent.critic
    with torch.no_grad():
        last = critic.layers[-1]
        last.weight.zero_()
        last.bias.copy_(torch.arange(critic.num, dtype=torch.float32).view(-1, 1, 1))


# ----------------------------------------------------------------------------- LayerNorm, dropout
def test_layer_norm_ensemble_equals_separate_layer_norm_mlps():
    torch.manual_seed(0)
    critic = EnsembleCritic(OBS, ACT, [16, 8], num=3, norm="layer")
    with torch.no_grad():  # non-trivial affine parameters, different per member
        for ln in critic.layer_norms:
            ln.weight.normal_()
            ln.bias.normal_()
    obs, act = torch.randn(20, OBS), torch.randn(20, ACT)
    q = critic(obs, act)
    for i in range(3):
        layers: list[nn.Module] = []
        for j, layer in enumerate(critic.layers):
            lin = nn.Linear(*layer.weight.shape[1:])
            with torch.no_grad():
                lin.weight.copy_(layer.weight[i].T)
                lin.bias.copy_(layer.bias[i, 0])
            layers.append(lin)
            if j < len(critic.layers) - 1:
                ln = nn.LayerNorm(lin.out_features)
                with torch.no_grad():
                    ln.weight.copy_(critic.layer_norms[j].weight[i, 0])
                    ln.bias.copy_(critic.layer_norms[j].bias[i, 0])
                layers += [ln, nn.ReLU()]
        torch.testing.assert_close(q[i], nn.Sequential(*layers)(torch.cat([obs, act], -1))[:, 0])


def test_dropout_is_active_in_the_agent_updates():
    agent = make_agent(critic_norm="layer", critic_dropout=0.5)
    batch = make_batch()
    q1, q2 = agent.critic(batch.obs, batch.action), agent.critic(batch.obs, batch.action)
    assert not torch.allclose(q1, q2)  # the critics train with dropout on
    agent.critic.eval()
    torch.testing.assert_close(
        agent.critic(batch.obs, batch.action), agent.critic(batch.obs, batch.action)
    )
    plain = make_agent(critic_norm="layer")
    torch.testing.assert_close(
        plain.critic(batch.obs, batch.action), plain.critic(batch.obs, batch.action)
    )


# ----------------------------------------------------------------------------- batch renorm
def test_batch_renorm_in_warmup_is_torch_batch_norm():
    torch.manual_seed(0)
    ours = BatchRenorm(5, momentum=0.01, eps=1e-3)
    ref = nn.BatchNorm1d(5, momentum=0.01, eps=1e-3)
    with torch.no_grad():
        for p in (ours.weight, ours.bias):
            p.normal_()
        ref.weight.copy_(ours.weight)
        ref.bias.copy_(ours.bias)
    for _ in range(5):
        x = torch.randn(64, 5) * 3 + 2
        torch.testing.assert_close(ours(x), ref(x))
    torch.testing.assert_close(ours.running_mean, ref.running_mean)
    torch.testing.assert_close(ours.running_var, ref.running_var)
    ours.eval()
    ref.eval()
    x = torch.randn(64, 5)
    torch.testing.assert_close(ours(x), ref(x))


def test_ensemble_batch_renorm_keeps_statistics_per_member():
    torch.manual_seed(0)
    ens = BatchRenorm(4, num=3)
    x = torch.randn(3, 50, 4) * torch.tensor([1.0, 5.0, 0.1]).view(3, 1, 1)
    y = ens(x)
    for i in range(3):  # each member normalised by its own batch statistics
        ref = nn.BatchNorm1d(4, momentum=0.01, eps=1e-3)
        torch.testing.assert_close(y[i], ref(x[i]))
        torch.testing.assert_close(ens.running_var[i, 0], ref.running_var)


def test_batch_renorm_after_warmup_corrects_towards_running_statistics():
    bn = BatchRenorm(1, warmup=0, momentum=0.0, eps=0.0, r_max=3.0, d_max=5.0)
    with torch.no_grad():
        bn.running_mean.fill_(1.0)
        bn.running_var.fill_(0.01)  # running std 0.1: the batch std (about 1) is > 3x larger
    x = torch.randn(1000, 1) + 1.5
    mean, std = x.mean(), x.std(correction=0)
    r = 3.0  # std / 0.1 clipped to r_max
    d = 5.0  # (mean - 1) / 0.1 = about 5 clipped to d_max
    expected = (x - mean) / std * r + min(d, ((mean - 1.0) / 0.1).item())
    torch.testing.assert_close(bn(x), expected, rtol=1e-4, atol=1e-4)


# ----------------------------------------------------------------------------- CrossQ joint pass
def test_crossq_uses_live_critics_on_one_joint_batch():
    agent = make_agent(**CROSSQ)
    assert agent.critic_target is None
    batch = make_batch(terminated=0.0)
    critic = copy.deepcopy(agent.critic)  # same weights and running statistics
    alpha = torch.tensor(0.2)
    torch.manual_seed(3)
    q, y = agent.critic_values(batch, alpha)

    torch.manual_seed(3)  # the same a' ~ pi(.|s')
    with torch.no_grad():
        a_next, logp_next = agent.actor(batch.next_obs)
    joint = critic(
        torch.cat([batch.obs, batch.next_obs]), torch.cat([batch.action, a_next])
    )  # batch norm statistics of (s, a) and (s', a') together
    n = len(batch.obs)
    torch.testing.assert_close(q, joint[:, :n])
    expected = batch.reward + 0.99 * (joint[:, n:].min(0).values - alpha * logp_next)
    torch.testing.assert_close(y, expected.detach())
    assert not y.requires_grad and q.requires_grad
    # Separate passes would normalise each half with its own statistics: a different answer.
    alone = copy.deepcopy(agent.critic)(batch.obs, batch.action)
    assert not torch.allclose(alone, q)


def test_crossq_update_trains_and_round_trips_through_state_dict():
    agent = make_agent(**CROSSQ)
    batch = make_batch()
    for _ in range(6):
        metrics = agent.update(batch)
    assert all(torch.isfinite(v) for v in metrics.values())
    assert agent.critic.batch_norms[0].num_batches.item() == 6
    assert agent.actor_optim.param_groups[0]["betas"][0] == 0.5
    state = copy.deepcopy(agent.state_dict())
    assert state["critic_target"] is None
    other = make_agent(**CROSSQ)
    other.load_state_dict(state)
    obs = torch.randn(10, OBS)
    torch.testing.assert_close(other.act(obs, True), agent.act(obs, True))
    torch.testing.assert_close(
        other.critic.batch_norms[1].running_var, agent.critic.batch_norms[1].running_var
    )


def test_batch_norm_actor_acts_with_running_statistics():
    agent = make_agent(**CROSSQ)
    obs = torch.randn(8, OBS)
    # one observation alone gets the same action as inside a batch: no batch statistics used
    torch.testing.assert_close(agent.act(obs[:1], True), agent.act(obs, True)[:1])


# ----------------------------------------------------------------------------- REDQ
def test_target_min_over_a_random_subset_of_critics():
    agent = make_agent(num_critics=5, target_subset=2, gamma=1.0)
    constant_critics(agent, agent.critic_target)
    batch = make_batch(n=4, terminated=0.0)
    batch = batch._replace(reward=torch.zeros(4))
    # alpha = 0: y is the min over the chosen critics, i.e. the smaller of two distinct i
    ys = torch.stack([agent.td_target(batch, torch.tensor(0.0))[0] for _ in range(600)])
    assert set(ys.tolist()) == {0.0, 1.0, 2.0, 3.0}  # never 4: two distinct critics are drawn
    # E[min of a random pair from {0..4}] = (0*4 + 1*3 + 2*2 + 3*1) / 10 = 1
    assert abs(ys.mean().item() - 1.0) < 0.15
    full = make_agent(num_critics=5, gamma=1.0)
    constant_critics(full, full.critic_target)
    assert full.td_target(batch, torch.tensor(0.0)).eq(0.0).all()


def test_actor_loss_uses_mean_or_min_over_critics():
    losses = {}
    for reduction in ("min", "mean"):
        agent = make_agent(num_critics=5, actor_q=reduction, autotune_alpha=False, alpha=0.1)
        constant_critics(agent)
        torch.manual_seed(4)
        losses[reduction] = agent.actor_loss(make_batch().obs, torch.tensor(0.1))[0]
    # critics output 0..4: the min is 0, the mean 2; the log-prob term is the same
    torch.testing.assert_close(losses["min"] - losses["mean"], torch.tensor(2.0))


# ----------------------------------------------------------------------------- delayed actor
def test_actor_and_temperature_update_every_kth_step():
    agent = make_agent(actor_update_interval=3)
    batch = make_batch()
    actor0, critic0 = (
        copy.deepcopy(agent.actor.state_dict()),
        copy.deepcopy(agent.critic.state_dict()),
    )
    alpha0 = agent.log_alpha.item()
    for k in range(1, 4):
        agent.update(batch)
        actor_same = all(torch.equal(v, actor0[n]) for n, v in agent.actor.state_dict().items())
        critic_same = all(torch.equal(v, critic0[n]) for n, v in agent.critic.state_dict().items())
        assert actor_same == (k < 3) and (agent.log_alpha.item() == alpha0) == (k < 3)
        assert not critic_same
        critic0 = copy.deepcopy(agent.critic.state_dict())


# ----------------------------------------------------------------------------- config checks
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["agent.critic_norm=batch"], "needs agent.target_networks=false"),
        (["agent.critic_norm=group"], "agent.critic_norm must be none, layer or batch"),
        (["agent.target_subset=3"], "between 1 and agent.num_critics"),
        (["agent.actor_q=max"], "agent.actor_q must be min or mean"),
        (["agent.critic_dropout=1.0"], "agent.critic_dropout must be in [0, 1)"),
        (["agent.actor_update_interval=0"], "agent.actor_update_interval must be >= 1"),
    ],
)
def test_inconsistent_options_are_refused(make_cfg, overrides, message):
    with pytest.raises(SACError, match=message.replace("[", r"\[").replace(")", r"\)")):
        validated(make_cfg(*overrides))


@pytest.mark.parametrize("preset", ["crossq", "droq", "redq", "simbav2"])
def test_presets_are_valid_and_named(make_cfg, preset):
    cfg = make_cfg(f"agent={preset}", "env=halfcheetah")
    validated(cfg)
    assert cfg.agent.name == preset and cfg.agent.warmup_steps == 10_000  # env settings kept


# ----------------------------------------------------------------------------- faithful presets
def _adam_steps(optim: torch.optim.Optimizer) -> int:
    """How many steps an Adam optimizer has taken (its per-parameter step count)."""
    (state, *_) = optim.state.values()
    return int(state["step"])


@pytest.mark.parametrize("preset", ["redq", "droq"])
def test_redq_and_droq_update_the_actor_once_per_env_step_on_the_critics_mean(
    make_cfg, tmp_path, preset
):
    """As the authors' code (policy_update_delay = UTD = 20): 20 critic updates and one actor
    and temperature update per transition after the warm-up."""
    from sac.trainer import Trainer

    cfg = make_cfg(
        f"agent={preset}",
        "agent.hidden_sizes=[16,16]",
        "agent.batch_size=8",
        "agent.warmup_steps=50",
        "total_steps=56",
        "eval_every=0",
        "eval_episodes=1",
        "device=cpu",
    )
    assert cfg.agent.actor_q == "mean"
    trainer = Trainer(cfg, tmp_path)
    trainer.train()
    agent = trainer.agent
    assert _adam_steps(agent.critic_optim) == 20 * 6
    assert _adam_steps(agent.actor_optim) == _adam_steps(agent.alpha_optim) == 6


def test_crossq_beta1_is_the_actors_and_critics_not_the_temperatures(make_cfg):
    """CrossQ's reference code: Adam(b1=0.5) for actor and critics, a default Adam (b1=0.9)
    for the temperature."""
    from sac.config import agent_config

    agent = SAC(OBS, ACT, agent_config(make_cfg("agent=crossq")))
    assert agent.actor_optim.param_groups[0]["betas"] == (0.5, 0.999)
    assert agent.critic_optim.param_groups[0]["betas"] == (0.5, 0.999)
    assert agent.alpha_optim.param_groups[0]["betas"] == (0.9, 0.999)
    batch = make_batch()
    for _ in range(3):  # the third update is the first actor and temperature step
        agent.update(batch)
    # Adam's first moment after one step is (1 - beta1) * gradient: 0.1 g, not 0.5 g
    grad = agent.log_alpha.grad
    assert grad is not None and grad.abs().item() > 0
    torch.testing.assert_close(agent.alpha_optim.state[agent.log_alpha]["exp_avg"], 0.1 * grad)
