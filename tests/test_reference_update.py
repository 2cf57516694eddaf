"""The optimised update (batched critics, fused Adam, foreach Polyak, frozen-critic actor step)
gives the same numbers as a plain, textbook SAC update on the same batches and noise."""

import copy
import math

import pytest
import torch
from torch import nn

from sac.agent import SAC, Batch
from sac.compiled import make_updater
from sac.config import AgentConfig

OBS, ACT, HIDDEN = 5, 2, [32, 32]


def _separate_critics(agent: SAC) -> list[nn.Sequential]:
    """Two ordinary nn.Linear MLPs holding the ensemble's initial weights."""
    critics = []
    for i in range(agent.critic.num):
        layers: list[nn.Module] = []
        for layer in agent.critic.layers:
            lin = nn.Linear(*layer.weight.shape[1:])
            with torch.no_grad():
                lin.weight.copy_(layer.weight[i].T)
                lin.bias.copy_(layer.bias[i, 0])
            layers += [lin, nn.ReLU()]
        critics.append(nn.Sequential(*layers[:-1]))
    return critics


class ReferenceSAC:
    """SAC written out the plain way (as in CleanRL / the paper), one critic module each."""

    def __init__(self, agent: SAC, cfg: AgentConfig) -> None:
        self.cfg = cfg
        self.actor = copy.deepcopy(agent.actor)
        self.qs = _separate_critics(agent)
        self.q_targets = copy.deepcopy(self.qs)
        self.log_alpha = torch.zeros(1, requires_grad=True)
        adam = lambda p, lr: torch.optim.Adam(p, lr=lr, foreach=False)  # noqa: E731
        self.actor_opt = adam(self.actor.parameters(), cfg.actor_lr)
        self.q_opt = adam([p for q in self.qs for p in q.parameters()], cfg.critic_lr)
        self.alpha_opt = adam([self.log_alpha], cfg.alpha_lr)

    def sample(self, obs):
        dist = self.actor.distribution(obs)
        u = dist.rsample()
        a = torch.tanh(u)
        # the textbook change of variables, fine away from saturation
        log_prob = (dist.log_prob(u) - torch.log(1 - a.pow(2))).sum(-1)
        return a, log_prob

    def update(self, b: Batch) -> dict[str, float]:
        """One update; returns the metrics the agent reports, computed the plain way."""
        cfg = self.cfg
        alpha = self.log_alpha.exp().item()
        with torch.no_grad():
            a2, logp2 = self.sample(b.next_obs)
            x2 = torch.cat([b.next_obs, a2], -1)
            q_next = torch.min(self.q_targets[0](x2), self.q_targets[1](x2)).squeeze(-1)
            y = b.reward + cfg.gamma * (1 - b.terminated) * (q_next - alpha * logp2)
        x = torch.cat([b.obs, b.action], -1)
        qs = [q(x).squeeze(-1) for q in self.qs]
        q_loss = sum(((q - y) ** 2).mean() for q in qs)
        self.q_opt.zero_grad()
        q_loss.backward()
        self.q_opt.step()

        a, logp = self.sample(b.obs)
        xa = torch.cat([b.obs, a], -1)
        q_pi = torch.min(self.qs[0](xa), self.qs[1](xa)).squeeze(-1)
        actor_loss = (alpha * logp - q_pi).mean()
        self.actor_opt.zero_grad()
        actor_loss.backward()
        self.actor_opt.step()

        alpha_loss = -(self.log_alpha * (logp.detach() - ACT)).mean()  # target entropy -dim(A)
        self.alpha_opt.zero_grad()
        alpha_loss.backward()
        self.alpha_opt.step()

        with torch.no_grad():
            for q, qt in zip(self.qs, self.q_targets):
                for p, pt in zip(q.parameters(), qt.parameters()):
                    pt.mul_(1 - cfg.tau).add_(cfg.tau * p)
        return {
            "losses/critic": q_loss.item(),
            "losses/actor": actor_loss.item(),
            "losses/alpha": alpha_loss.item(),
            "train/alpha": alpha,
            "train/entropy": -logp.mean().item(),
            "train/q_mean": torch.stack(qs).mean().item(),
            "train/target_q_mean": y.mean().item(),
        }


@pytest.mark.parametrize(
    "compile", [False, pytest.param(True, marks=pytest.mark.slow, id="compiled")]
)
def test_fast_update_matches_plain_reference(compile):
    torch.manual_seed(0)
    cfg = AgentConfig(hidden_sizes=HIDDEN, actor_lr=1e-3, critic_lr=1e-3, alpha_lr=1e-3)
    fast = SAC(OBS, ACT, cfg)
    updater = make_updater(fast, compile=compile)
    ref = ReferenceSAC(fast, cfg)
    g = torch.Generator().manual_seed(1)
    # compile=true compiles with Inductor's fallback_random, so the compiled update draws the
    # very noise the reference draws from the same seed.
    for step in range(10):
        batch = Batch(
            torch.randn(64, OBS, generator=g),
            torch.rand(64, ACT, generator=g) * 2 - 1,
            torch.randn(64, generator=g),
            torch.randn(64, OBS, generator=g),
            (torch.rand(64, generator=g) < 0.1).float(),
        )
        torch.manual_seed(100 + step)  # the same policy noise for both
        metrics = {k: v.item() for k, v in updater.update(batch).items()}
        torch.manual_seed(100 + step)
        expected = ref.update(batch)
        assert metrics.keys() == expected.keys()
        for name, value in expected.items():  # what the run logs, not only where it ends
            assert math.isclose(metrics[name], value, rel_tol=1e-4, abs_tol=1e-5), (step, name)

    tol = {"rtol": 1e-4, "atol": 1e-5}
    for p, r in zip(fast.actor.parameters(), ref.actor.parameters()):
        torch.testing.assert_close(p, r, **tol)
    for module, refs in ((fast.critic, ref.qs), (fast.critic_target, ref.q_targets)):
        for i, q in enumerate(refs):
            linears = [m for m in q if isinstance(m, nn.Linear)]
            for layer, lin in zip(module.layers, linears):
                torch.testing.assert_close(layer.weight[i].T, lin.weight, **tol)
                torch.testing.assert_close(layer.bias[i, 0], lin.bias, **tol)
    assert math.isclose(fast.log_alpha.item(), ref.log_alpha.item(), rel_tol=1e-4, abs_tol=1e-6)
    assert fast.log_alpha.item() != 0.0  # it did move
    assert updater.compiled == compile  # a compiled run did not fall back to eager
