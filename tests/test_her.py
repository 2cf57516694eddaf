"""Hindsight Experience Replay: the relabelling buffer against hand-built episodes, its state,
its bad input, and HER through the trainer and sac-eval on the tiny goal env (PointGoal-v0)."""

import csv
import json
import logging
import os
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import REPO, assert_same_state

import sac.envs
from sac.config import validated
from sac.envs import EnvRunner, goal_spec, make_env, make_vector_env
from sac.errors import SACError
from sac.evaluate import evaluate
from sac.her import HerReplayBuffer
from sac.losses import Batch
from sac.train import train
from sac.trainer import Trainer

# The hand-built episodes' flat observation: [achieved goal, desired goal, row code].
ACH, DES = slice(0, 1), slice(1, 2)
STORED_GOAL, STORED_REWARD = -1.0, 7.0


def code(env: int, episode: int, k: int) -> int:
    """The achieved goal after step k of `env`'s episode `episode` (also the row's code)."""
    return 10_000 * (env + 1) + 100 * episode + k


def decode(x: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = x.round().long().numpy()
    return x // 10_000 - 1, x % 10_000 // 100, x % 100


class Feeder:
    """N envs whose episodes have the given lengths (cycled, per env), fed to a buffer one
    vector step at a time as the trainer does. Env i's episodes terminate if i is in
    `terminating`, else they are truncated."""

    def __init__(self, lengths: list[list[int]], terminating: tuple[int, ...] = (0,)) -> None:
        self.lengths = lengths
        self.terminating = terminating
        self.episode = [0] * len(lengths)
        self.k = [0] * len(lengths)
        self.finished: list[tuple[int, int, int]] = []  # (env, episode, length)

    def length(self, i: int) -> int:
        ls = self.lengths[i]
        return ls[self.episode[i] % len(ls)]

    def feed(self, buf: HerReplayBuffer, steps: int) -> None:
        n = len(self.lengths)
        for _ in range(steps):
            codes = [code(i, self.episode[i], self.k[i]) for i in range(n)]
            done = np.array([self.k[i] == self.length(i) - 1 for i in range(n)])
            obs = np.array([[c - 1, STORED_GOAL, c] for c in codes], np.float32)
            next_obs = np.array([[c, STORED_GOAL, c] for c in codes], np.float32)
            terminated = np.array([d and i in self.terminating for i, d in enumerate(done)])
            reward = np.full(n, STORED_REWARD, np.float32)
            buf.add(obs, np.zeros((n, 1), np.float32), reward, next_obs, terminated, done)
            for i in range(n):
                if done[i]:
                    self.finished.append((i, self.episode[i], self.k[i] + 1))
                    self.episode[i] += 1
                    self.k[i] = 0
                else:
                    self.k[i] += 1

    def restart(self) -> None:
        """What a resume does to the envs: each starts a new episode."""
        for i in range(len(self.lengths)):
            if self.k[i]:
                self.episode[i] += 1
                self.k[i] = 0


class Rewards:
    """A compute_reward that records its calls: achieved - desired, so a row's reward shows
    which goals it was given."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, achieved: np.ndarray, desired: np.ndarray) -> np.ndarray:
        self.calls += 1
        assert achieved.shape == desired.shape == (len(achieved), 1)
        return (achieved - desired)[:, 0]


def her_buffer(capacity=200, num_envs=2, strategy="future", n_sampled_goal=4, seed=0, device="cpu"):
    return HerReplayBuffer(
        capacity, 3, 1, num_envs, ACH, DES, Rewards(), strategy, n_sampled_goal, device, seed
    )


def sample_relabelled(buf: HerReplayBuffer, n: int = 4000):
    """The relabelled rows of a big sample: (row's env, episode, step, goal's env, episode,
    step, reward, terminated)."""
    b = Batch(*(x.cpu() for x in buf.sample(n)))
    rows = b.obs[:, DES].squeeze(1) != STORED_GOAL
    env, ep, k = decode(b.obs[rows, 2])
    genv, gep, gk = decode(b.obs[rows, DES].squeeze(1))
    return env, ep, k, genv, gep, gk, b.reward[rows], b.terminated[rows], b


def lengths_of(feeder: Feeder) -> dict[tuple[int, int], int]:
    return {(i, e): n for i, e, n in feeder.finished}


# ----------------------------------------------------------------------------- relabelling
@pytest.mark.parametrize("strategy", ["future", "final", "episode"])
def test_each_strategy_picks_goals_its_episode_achieved(strategy):
    """Two envs whose episodes end at different steps; a wrap-around in between."""
    buf = her_buffer(capacity=60, strategy=strategy)  # 30 vector steps per env
    feeder = Feeder([[3, 5, 4, 7], [4, 2, 6]])
    feeder.feed(buf, 47)
    length = lengths_of(feeder)
    env, ep, k, genv, gep, gk, reward, _, _ = sample_relabelled(buf)
    assert len(env) > 0
    assert (0, 6) in set(zip(env.tolist(), ep.tolist()))  # env 0's steps 27-30: across the wrap
    assert (genv == env).all() and (gep == ep).all()  # never another env or episode
    T = np.array([length[(i, e)] for i, e in zip(env, ep)])
    if strategy == "future":
        assert (gk >= k).all() and (gk <= T - 1).all()
        assert (gk == k).any() and (gk > k).any()  # both ends of [t, T-1] are drawn
    elif strategy == "final":
        assert (gk == T - 1).all()
    else:
        assert (gk >= 0).all() and (gk <= T - 1).all() and (gk < k).any()
    # the reward is compute_reward(the row's own next achieved goal, the new goal)
    expected = torch.as_tensor(
        [code(i, e, kk) - code(i, e, g) for i, e, kk, g in zip(env, ep, k, gk)], dtype=torch.float32
    )
    torch.testing.assert_close(reward, expected)


def test_future_goals_cover_the_rest_of_the_episode_uniformly():
    buf = her_buffer(capacity=40, num_envs=1)
    Feeder([[10]]).feed(buf, 10)
    _, _, k, _, _, gk, _, _, _ = sample_relabelled(buf, 40_000)
    at_start = gk[k == 0]  # from step 0: any of the 10 steps, each about 1/10 of the time
    counts = np.bincount(at_start, minlength=10)
    assert counts.min() > 0.7 * len(at_start) / 10


def test_only_finished_episodes_are_sampled():
    buf = her_buffer(capacity=100)
    feeder = Feeder([[4], [6]])
    feeder.feed(buf, 3)
    assert len(buf) == 0
    with pytest.raises(RuntimeError, match="no finished episode"):
        buf.sample(4)
    feeder.feed(buf, 7)  # env 0: episodes 0, 1 (8 steps) and 2 open; env 1: 0 (6), 1 open
    assert len(buf) == 8 + 6
    b = buf.sample(2000)
    env, ep, _ = decode(b.obs[:, 2])
    assert set(zip(env.tolist(), ep.tolist())) == {(0, 0), (0, 1), (1, 0)}
    assert torch.equal(
        torch.unique(b.obs[:, 2]).sort().values.long(),
        torch.tensor(
            sorted(
                [code(0, e, k) for e in (0, 1) for k in range(4)]
                + [code(1, 0, k) for k in range(6)]
            )
        ),
    )


def test_overwritten_episodes_are_never_sampled_and_leave_at_once():
    buf = her_buffer(capacity=20, num_envs=2)  # 10 vector steps per env
    feeder = Feeder([[4], [3]])
    feeder.feed(buf, 10)  # full: env 0 holds episodes 0, 1 (+2 open), env 1 holds 0, 1, 2 (+1)
    assert len(buf) == 8 + 9
    feeder.feed(buf, 1)  # step 10 takes the first step of each env's episode 0
    assert len(buf) == 4 + 6  # both episodes 0 left whole, though 1 of their rows was written
    for _ in range(3):
        feeder.feed(buf, 3)
        finished = lengths_of(feeder)
        b = buf.sample(3000)
        for x in (b.obs[:, 2], b.obs[:, DES].squeeze(1)[b.obs[:, DES].squeeze(1) > 0]):
            env, ep, _ = decode(x)
            for i, e in set(zip(env.tolist(), ep.tolist())):
                rows = buf.obs[:, 2].round().long()
                stored = {code(i, e, kk) for kk in range(finished[(i, e)])}
                assert stored <= set(rows.tolist())  # every row of a sampled episode is there
    # the per-slot validity agrees with the sampling segments
    assert int((buf.ep_end >= 0).sum()) == len(buf)


def test_relabelled_fraction_is_n_over_n_plus_1_of_each_batch():
    buf = her_buffer(capacity=200, n_sampled_goal=4)
    Feeder([[5], [7]]).feed(buf, 40)
    calls = buf.compute_reward.calls
    b = buf.sample(10, num_batches=3)
    assert buf.compute_reward.calls == calls + 1  # one batched call per sample
    relabelled = b.obs[..., DES].squeeze(-1) != STORED_GOAL
    assert relabelled.shape == (3, 10)
    assert (relabelled.sum(dim=1) == 8).all()  # int(10 * 4 / 5) of each batch
    assert (b.next_obs[..., DES] == b.obs[..., DES]).all()  # the goal of obs and next_obs
    assert (b.reward[~relabelled] == STORED_REWARD).all()
    buf0 = her_buffer(capacity=200, n_sampled_goal=0)
    Feeder([[5], [7]]).feed(buf0, 40)
    b0 = buf0.sample(64)
    assert (b0.obs[:, DES] == STORED_GOAL).all() and buf0.compute_reward.calls == 0


def test_terminated_is_kept_as_stored():
    buf = her_buffer(capacity=200, strategy="final")
    Feeder([[5], [7]], terminating=(0,)).feed(buf, 40)
    env, _, k, _, _, _, _, terminated, _ = sample_relabelled(buf)
    T = np.where(env == 0, 5, 7)
    last = k == T - 1
    assert (terminated.numpy() == (last & (env == 0))).all()  # env 1 truncates: bootstraps


def test_an_episode_longer_than_its_envs_share_is_never_sampled(caplog):
    buf = her_buffer(capacity=10, num_envs=2)  # 5 vector steps per env
    feeder = Feeder([[3], [7]])
    with caplog.at_level(logging.WARNING, logger="sac"):
        feeder.feed(buf, 9)
    assert "does not fit" in caplog.text
    env, _, _ = decode(buf.sample(500).obs[:, 2])
    assert (env == 0).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("strategy", ["future", "final", "episode"])
def test_on_the_gpu_the_same_rules_hold_and_samples_stay_there(strategy):
    buf = her_buffer(capacity=60, strategy=strategy, device="cuda")
    feeder = Feeder([[3, 5, 4, 7], [4, 2, 6]])
    feeder.feed(buf, 47)
    assert all(t.is_cuda for t in buf.sample(8, 2))
    length = lengths_of(feeder)
    env, ep, k, genv, gep, gk, _, _, _ = sample_relabelled(buf)
    assert (genv == env).all() and (gep == ep).all() and len(env) > 0
    T = np.array([length[(i, e)] for i, e in zip(env, ep)])
    lowest = {"future": k, "final": T - 1, "episode": 0}[strategy]
    assert (gk >= lowest).all() and (gk <= T - 1).all()
    cpu = her_buffer(capacity=60, strategy=strategy)
    cpu.load_state_dict(buf.state_dict())  # a GPU run's buffer resumes on the CPU
    assert (cpu.steps, cpu.open_start, len(cpu)) == (buf.steps, buf.open_start, len(buf))


# ----------------------------------------------------------------------------- state
def test_state_round_trip_and_sampling_resume_exactly():
    a = her_buffer(capacity=60, seed=3)
    feeder = Feeder([[3, 5, 4, 7], [4, 2, 6]])
    feeder.feed(a, 47)  # wrapped, episodes open
    a.sample(32)  # the generator moved on
    state = a.state_dict()
    b = her_buffer(capacity=60, seed=99)
    b.load_state_dict(state)
    assert (b.steps, b.open_start, len(b)) == (a.steps, a.open_start, len(a))
    for x, y in zip(a.sample(64, 2), b.sample(64, 2)):
        torch.testing.assert_close(x, y, rtol=0, atol=0)
    twin = Feeder([[3, 5, 4, 7], [4, 2, 6]])
    twin.__dict__.update({k: list(v) for k, v in feeder.__dict__.items() if k != "lengths"})
    feeder.feed(a, 13)
    twin.feed(b, 13)
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        if isinstance(sa[key], torch.Tensor):
            torch.testing.assert_close(sa[key], sb[key], rtol=0, atol=0, msg=key)
        else:
            assert sa[key] == sb[key], key


def test_a_resume_never_samples_the_episodes_it_restarts():
    a = her_buffer(capacity=200)
    feeder = Feeder([[6], [9]])
    feeder.feed(a, 20)  # env 0: step 2 of episode 3; env 1: step 2 of episode 2
    b = her_buffer(capacity=200)
    b.load_state_dict(a.state_dict())
    b.restart_episodes()  # what Trainer.restore does
    feeder.restart()
    feeder.feed(b, 30)
    env, ep, _ = decode(b.sample(5000).obs[:, 2])
    sampled = set(zip(env.tolist(), ep.tolist()))
    assert (0, 3) not in sampled and (1, 2) not in sampled  # their first steps, cut by the stop
    assert {(0, 4), (1, 3), (0, 2), (1, 1)} <= sampled
    # goals of episodes after the restart come from themselves only
    env, ep, _, genv, gep, _, _, _, _ = sample_relabelled(b)
    assert (genv == env).all() and (gep == ep).all()
    # what is sampleable: every episode that finished, none of the two cut short
    assert len(b) == sum(n for _, _, n in feeder.finished) == int((b.ep_end >= 0).sum())


# ----------------------------------------------------------------------------- the env side
def test_goal_slices_follow_the_observation_dicts_key_order():
    spec = goal_spec(make_env("PointGoal-v0"))  # a plain dict: gymnasium sorts the keys
    assert (spec.achieved, spec.desired) == (slice(0, 2), slice(2, 4))
    order = ("observation", "desired_goal", "achieved_goal")
    env = make_env("PointGoal-v0", {"key_order": order})
    spec = goal_spec(env)
    assert (spec.achieved, spec.desired) == (slice(4, 6), slice(2, 4))
    obs, _ = env.reset(seed=3)
    inner = env.unwrapped
    np.testing.assert_array_equal(obs[spec.achieved], inner.pos)
    np.testing.assert_array_equal(obs[spec.desired], inner.goal)
    rewards = spec.compute_reward(
        np.array([[0, 0], [0, 0]], np.float32), np.array([[0.1, 0], [0.5, 0]], np.float32)
    )
    assert rewards.dtype == np.float32 and rewards.tolist() == [0.0, -1.0]
    assert goal_spec(make_env("Pendulum-v1")) is None
    assert goal_spec(make_env("CountEnv-v0")) is None


def test_the_runner_reports_each_finished_episodes_success():
    kwargs = {"terminate_on_success": True, "radius": 0.6, "speed": 0.5}
    runner = EnvRunner(make_vector_env("PointGoal-v0", kwargs, 3), seed=0)
    rng = np.random.default_rng(0)
    seen = []
    for _ in range(200):
        tr = runner.step(rng.uniform(-1, 1, (3, 2)).astype(np.float32))
        assert len(tr.episode_successes) == len(tr.episode_returns)
        for ret, length, success in zip(
            tr.episode_returns, tr.episode_lengths, tr.episode_successes
        ):
            seen.append(success)
            if length < 50:  # it ended by reaching the goal
                assert success == 1.0
            assert ret == -(length - 1 if success else length)  # -1 a step until it is reached
    assert 1.0 in seen and set(seen) <= {0.0, 1.0}
    runner.close()
    count = EnvRunner(make_vector_env("CountEnv-v0", {"length": 2}, 2), seed=0)
    tr = count.step(np.zeros((2, 1), np.float32))
    tr = count.step(np.zeros((2, 1), np.float32))
    assert tr.episode_successes == [None, None]  # an env without is_success
    count.close()


# ----------------------------------------------------------------------------- the trainer
SMALL = [
    "env.id=PointGoal-v0",
    "her.enabled=true",
    "agent.hidden_sizes=[32,32]",
    "agent.batch_size=32",
    "agent.warmup_steps=100",
    "eval_every=0",
    "eval_episodes=2",
    "log_every=100",
    "device=cpu",
]


@pytest.mark.slow
def test_the_trainer_keeps_each_envs_episodes_whole_in_its_slots(make_cfg, tmp_path, caplog):
    kwargs = "+env.kwargs={terminate_on_success:true,radius:0.5,speed:0.5}"
    cfg = make_cfg(*SMALL, kwargs, "env.num_envs=2", "total_steps=400", "agent.buffer_size=301")
    with caplog.at_level(logging.INFO, logger="sac"):
        trainer = Trainer(cfg, tmp_path)
        trainer.train()
    assert "rounded down" in caplog.text
    buf = trainer.buffer
    assert isinstance(buf, HerReplayBuffer) and (buf.capacity, buf.rows) == (300, 150)
    assert buf.steps == 200  # vector steps: wrapped around once
    ends = {i: [e for _, e in buf.episodes[i]] for i in range(2)}
    assert ends[0] != ends[1]  # the envs' episodes end at different steps
    valid = torch.nonzero(buf.ep_end >= 0).squeeze(1)
    assert len(valid) == len(buf) > 0
    for i, episodes in enumerate(buf.episodes):
        for start, end in episodes:
            slots = buf._slots(i, start, end)
            assert (buf.ep_start[slots] == start).all() and (buf.ep_end[slots] == end).all()
            # consecutive steps of one env's episode, chained through its own column
            torch.testing.assert_close(buf.next_obs[slots[:-1]], buf.obs[slots[1:]])
            assert (buf.terminated[slots[:-1]] == 0).all()
            success = buf.reward[slots[-1]] == 0  # PointGoal: reward 0 exactly on success
            assert buf.terminated[slots[-1]] == float(success)
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    successes = [float(r["train/success"]) for r in rows if r["train/success"]]
    assert len(successes) == trainer.episodes and set(successes) <= {0.0, 1.0}


def test_her_errors_are_one_clear_line(make_cfg, tmp_path):
    with pytest.raises(SACError, match=r"her\.strategy must be one of future, final, episode"):
        validated(make_cfg("her.strategy=closest"))
    with pytest.raises(SACError, match=r"her\.n_sampled_goal must be >= 0, got -1"):
        validated(make_cfg("her.n_sampled_goal=-1"))
    with pytest.raises(SACError, match=r"needs a goal-conditioned env .* Pendulum-v1 has Box"):
        Trainer(make_cfg("her.enabled=true", "device=cpu"), tmp_path / "a")
    with pytest.raises(SACError, match=r"needs env\.action_repeat=1"):
        Trainer(make_cfg(*SMALL, "env.action_repeat=2"), tmp_path / "b")
    with pytest.raises(SACError, match=r"agent\.buffer_size >= env\.num_envs \(3\)"):
        Trainer(make_cfg(*SMALL, "env.num_envs=3", "agent.buffer_size=2"), tmp_path / "c")
    with pytest.raises(ValueError, match="positive multiple of num_envs"):
        her_buffer(capacity=201, num_envs=2)
    with pytest.raises(ValueError, match="one row and one done flag per env"):
        obs, action, flags = np.zeros((3, 3)), np.zeros((3, 1)), np.zeros(3)
        her_buffer().add(obs, action, flags, obs, flags, flags.astype(bool))  # 3 rows, 2 envs


def test_a_goal_env_without_her_gets_a_hint(make_cfg, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="sac"):
        trainer = Trainer(make_cfg(*SMALL, "her.enabled=false"), tmp_path)
        trainer.close()
    assert "hint: PointGoal-v0 is goal-conditioned" in caplog.text
    assert "her.enabled=true" in caplog.text
    assert not isinstance(trainer.buffer, HerReplayBuffer)


def _resume_run(make_cfg, run_dir, *overrides):
    return train(make_cfg(*SMALL, *overrides), run_dir, [*SMALL, *overrides])


@pytest.mark.slow
def test_a_her_run_resumed_where_episodes_end_equals_the_uninterrupted_run(make_cfg, tmp_path):
    import shutil

    from sac.checkpoint import load_checkpoint

    common = ["env.num_envs=2", "checkpoint_every=200", "keep_checkpoints=0", "total_steps=400"]
    _resume_run(make_cfg, tmp_path / "whole", *common)
    shutil.copytree(tmp_path / "whole", tmp_path / "cut")
    ckpt = tmp_path / "cut" / "checkpoints" / "step_0000000200.pt"  # 2 episodes of 50 per env
    _resume_run(make_cfg, tmp_path / "cut", *common, f"resume={ckpt}")
    whole, cut = (load_checkpoint(tmp_path / d, mmap=False) for d in ("whole", "cut"))
    for part in ("agent", "buffer", "rng", "counters"):
        assert_same_state(whole[part], cut[part], part)
    assert whole["buffer"]["episodes"].shape == (8, 3)  # 4 episodes per env, all kept


@pytest.mark.slow
def test_a_resume_mid_episode_never_samples_the_cut_episode(make_cfg, tmp_path):
    from sac.checkpoint import step_checkpoints

    _resume_run(make_cfg, tmp_path, "total_steps=230", "checkpoint_every=0")
    (ckpt,) = step_checkpoints(tmp_path / "checkpoints")  # 4 episodes and 30 steps of a 5th
    trainer = Trainer(make_cfg(*SMALL, "total_steps=400"), tmp_path, resume_from=ckpt)
    buf = trainer.buffer
    assert (buf.steps, buf.open_start, len(buf)) == (230, [230], 200)
    trainer.train()
    assert (buf.ep_end[200:230] == -1).all()  # the cut episode's 30 steps: never sampled
    kept = [(0, 50), (50, 100), (100, 150), (150, 200), (230, 280), (280, 330), (330, 380)]
    assert list(buf.episodes[0]) == kept and len(buf) == 350
    with pytest.raises(SACError, match=r"cannot change her\.strategy=final when resuming"):
        _resume_run(make_cfg, tmp_path, "total_steps=500", "her.strategy=final")


# ----------------------------------------------------------------------------- learning
@pytest.mark.slow
def test_her_learns_the_goal_env_and_sac_eval_reports_its_success_rate(make_cfg, tmp_path):
    """A real run: HER reaches the goal from any start within a few thousand steps."""
    cfg = make_cfg(
        "env.id=PointGoal-v0",
        "her.enabled=true",
        "total_steps=3000",
        "agent.warmup_steps=500",
        "agent.hidden_sizes=[64,64]",
        "agent.gamma=0.95",
        "agent.actor_lr=1e-3",
        "agent.critic_lr=1e-3",
        "agent.alpha_lr=1e-3",
        "eval_every=0",
        "eval_episodes=20",
        "device=cpu",
        "seed=0",
    )
    summary = Trainer(cfg, tmp_path).train()
    assert summary["eval_success_rate"] >= 0.9, summary
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    assert float(rows[-1]["eval/success_rate"]) == summary["eval_success_rate"]
    result = _sac_eval(checkpoint=tmp_path, episodes=20, device="cpu", seed=0)
    # sac-eval with the run's seed replays the trainer's final evaluation episodes
    assert result["success_rate"] == summary["eval_success_rate"]
    assert result["mean"] == pytest.approx(summary["eval_return"])


def _sac_eval(**overrides):
    from hydra import compose, initialize_config_dir

    from sac.config import config_dir

    with initialize_config_dir(version_base="1.3", config_dir=config_dir()):
        cfg = compose("eval", overrides=[f"{k}={v}" for k, v in overrides.items()])
    return evaluate(cfg)


def test_evaluation_reports_a_success_rate_only_where_the_env_gives_one():
    from sac.agent import SAC
    from sac.config import AgentConfig
    from sac.rollout import evaluate_policy

    agent = SAC(2, 1, AgentConfig(hidden_sizes=[8]), "cpu")
    episodes = evaluate_policy(agent, make_env("CountEnv-v0"), 3, seed=0)
    assert episodes.success_rate is None and episodes.successes == []
    agent = SAC(6, 2, AgentConfig(hidden_sizes=[8]), "cpu")
    episodes = evaluate_policy(agent, make_env("PointGoal-v0"), 4, seed=0)
    assert len(episodes.successes) == 4 and episodes.success_rate in (0.0, 0.25, 0.5, 0.75, 1.0)


# ----------------------------------------------------------------------------- Fetch
@pytest.mark.parametrize("preset", ["fetch_reach", "fetch_push"])
def test_the_fetch_presets_compose_with_her_and_rl_zoo3s_settings(make_cfg, preset):
    cfg = make_cfg(f"experiment={preset}")
    validated(cfg)
    assert cfg.env.id == {"fetch_reach": "FetchReach-v4", "fetch_push": "FetchPush-v4"}[preset]
    assert (cfg.her.enabled, cfg.her.strategy, cfg.her.n_sampled_goal) == (True, "future", 4)
    assert (cfg.agent.gamma, cfg.agent.actor_lr, cfg.agent.critic_lr) == (0.95, 1e-3, 1e-3)
    if preset == "fetch_reach":  # rl-zoo3 sac.yml
        assert cfg.agent.hidden_sizes == [64, 64] and cfg.total_steps == 20_000
        assert (cfg.agent.batch_size, cfg.agent.tau, cfg.agent.warmup_steps) == (256, 0.005, 1000)
    else:  # rl-zoo3 tqc.yml, with SAC's critics
        assert cfg.agent.hidden_sizes == [512, 512, 512] and cfg.total_steps == 1_000_000
        assert (cfg.agent.batch_size, cfg.agent.tau, cfg.agent.warmup_steps) == (2048, 0.05, 100)
    assert make_cfg(f"env={preset}").her.enabled  # the env preset alone turns HER on too


@pytest.mark.parametrize("env_id", ["FetchReach-v4", "FetchPush-v4"])
def test_a_fetch_env_has_the_goal_api_or_says_why_it_cannot_be_built(env_id):
    pytest.importorskip("gymnasium_robotics", reason="the robotics extra is not installed")
    try:
        env = make_env(env_id)
    except SACError as e:
        message = str(e)  # gymnasium-robotics 1.4.2 with MuJoCo >= 3.12
        assert "failed to build inside its package" in message and "\n" not in message
        assert "mujoco < 3.12" in message
        pytest.skip(f"gymnasium-robotics cannot build {env_id} here: {message}")
    spec = goal_spec(env)
    assert spec is not None and spec.desired.stop - spec.desired.start == 3
    obs, _ = env.reset(seed=0)
    obs, reward, _, _, info = env.step(np.zeros(4, np.float32))
    assert "is_success" in info
    assert spec.compute_reward(obs[None, spec.achieved], obs[None, spec.desired])[0] == reward
    env.close()


def _fetch_python() -> str:
    """An interpreter that builds FetchReach-v4: this one, else $SAC_FETCH_PYTHON (.ci/run makes
    one with MuJoCo 3.11: gymnasium-robotics 1.4.2 cannot build Fetch with MuJoCo >= 3.12)."""
    if os.environ.get("SAC_FETCH_PYTHON"):
        return os.environ["SAC_FETCH_PYTHON"]
    pytest.importorskip("gymnasium_robotics", reason="the robotics extra is not installed")
    try:
        make_env("FetchReach-v4").close()
    except SACError as e:
        pytest.skip(f"{e}; or set SAC_FETCH_PYTHON to a Python that has them (docs/development.md)")
    return sys.executable


def _run_fetch_cli(python: str, module: str, *overrides: str, cwd) -> str:
    """`python -m module overrides` on this checkout, as sac-train / sac-eval; its stdout."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "MUJOCO_GL": "egl", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(
        [python, "-m", module, *overrides],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc.stdout


@pytest.mark.slow
def test_a_short_fetch_reach_run_through_the_cli_learns_and_sac_eval_reports_it(tmp_path):
    """The preset through sac-train for 4k steps: a random arm reaches the goal in about 1 of 10
    episodes (return about -40); with HER every seed reached it in 10 of 10 by 4k steps."""
    python = _fetch_python()
    run_dir = tmp_path / "reach"
    common = ["device=cpu", "seed=0"]
    _run_fetch_cli(
        python,
        "sac.train",
        "experiment=fetch_reach",
        "total_steps=4000",
        "torch_threads=1",
        f"hydra.run.dir={run_dir}",
        *common,
        cwd=tmp_path,
    )
    rows = [r for r in csv.DictReader((run_dir / "metrics.csv").open()) if r["eval/return_mean"]]
    assert [int(r["step"]) for r in rows] == [2000, 4000]
    final = rows[-1]
    assert float(final["eval/success_rate"]) >= 0.9 and float(final["eval/return_mean"]) >= -5
    assert float(rows[0]["eval/return_mean"]) < float(final["eval/return_mean"]) - 10, rows
    out = _run_fetch_cli(
        python, "sac.evaluate", f"checkpoint={run_dir}", "episodes=10", *common, cwd=tmp_path
    )
    result = json.loads(out.strip().splitlines()[-1])
    # sac-eval with the run's seed replays the trainer's final evaluation episodes
    assert result["success_rate"] == float(final["eval/success_rate"])
    assert result["mean"] == pytest.approx(float(final["eval/return_mean"]))


def test_fetch_ids_name_the_robotics_extra(monkeypatch):
    assert ("Fetch", "gymnasium_robotics", "robotics") in sac.envs.ENV_PACKAGES
    monkeypatch.setattr(sac.envs, "ENV_PACKAGES", (("Fetch", "no_such_module_x", "robotics"),))
    with pytest.raises(SACError, match=r"needs the robotics extra .*pip install 'sac\[robotics\]'"):
        make_env("FetchNoSuchTask-v0")


def test_an_assertion_in_a_users_own_env_keeps_its_traceback():
    def broken(**kwargs):
        raise AssertionError("my env's own check")

    gym.register("BrokenAssertEnv-v0", entry_point=broken)
    with pytest.raises(AssertionError, match="my env's own check"):
        make_env("BrokenAssertEnv-v0")


@pytest.mark.slow
def test_a_her_run_whose_buffer_size_is_no_multiple_of_the_env_count_resumes(make_cfg, tmp_path):
    """The HER buffer rounds agent.buffer_size down to a multiple of env.num_envs: its saved
    capacity is then the rounded one, which a resume must accept."""
    common = ["env.num_envs=2", "agent.buffer_size=1001", "checkpoint_every=100"]
    _resume_run(make_cfg, tmp_path, *common, "total_steps=200")
    summary = _resume_run(make_cfg, tmp_path, *common, "total_steps=300")
    assert summary["steps"] == 300
