"""Env adapter: action mapping, bad spaces, and the runner's resets and episode seeds."""

import functools

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

from sac.envs import EnvRunner, make_env, make_vector_env, space_dims
from sac.errors import SACError
from sac.seeding import env_seed


def test_policy_actions_in_unit_box_map_to_env_bounds():
    env = make_env("CountEnv-v0")  # bounds [-2, 4]
    env.reset(seed=0)
    for a, expected in [(-1.0, -2.0), (1.0, 4.0), (0.0, 1.0), (0.5, 2.5)]:
        env.step(np.array([a], dtype=np.float32))
        assert env.unwrapped.last_action[0] == pytest.approx(expected)
    assert env.action_space.low[0] == -1 and env.action_space.high[0] == 1


def test_real_mujoco_env_adapts():
    env = make_env("InvertedPendulum-v5")
    assert space_dims(env) == (4, 1)
    assert env.unwrapped.action_space.high[0] == pytest.approx(3.0)
    env.close()


@pytest.mark.parametrize(
    ("env_id", "match"),
    [
        ("CartPole-v1", "continuous Box action space"),
        ("NoSuchEnv-v0", "unknown Gymnasium env id"),
        ("HalfCheetah-v99", "unknown Gymnasium env id"),
    ],
)
def test_bad_envs_are_refused_with_a_clear_message(env_id, match):
    with pytest.raises(SACError, match=match):
        make_env(env_id)


def test_bad_env_kwargs_are_refused():
    with pytest.raises(SACError, match=r"rejected env\.kwargs"):
        make_env("Pendulum-v1", {"no_such_arg": 1})


def test_env_kwargs_are_passed():
    env = make_env("Pendulum-v1", {"g": 3.0})
    assert env.unwrapped.g == 3.0


@pytest.mark.parametrize("truncate", [False, True])
def test_runner_never_stores_a_transition_across_an_autoreset(truncate):
    # Two envs, episodes of 3 steps; obs = [t, episode id].
    envs = make_vector_env("CountEnv-v0", {"length": 3, "truncate": truncate}, 2)
    runner = EnvRunner(envs, seed=0)
    finished = []
    for _ in range(10):
        tr = runner.step(np.zeros((2, 1), dtype=np.float32))
        # every stored transition goes from t to t + 1 within one episode
        np.testing.assert_array_equal(tr.next_obs[:, 0], tr.obs[:, 0] + 1)
        np.testing.assert_array_equal(tr.next_obs[:, 1], tr.obs[:, 1])
        done = tr.next_obs[:, 0] == 3
        # the episode's end is stored with its real final observation, and only a true
        # termination is flagged: a truncation keeps terminated = 0 so it bootstraps
        np.testing.assert_array_equal(tr.terminated, done & (not truncate))
        np.testing.assert_array_equal(tr.truncated, done & truncate)
        # the runner continues from the reset observation of the next episode
        np.testing.assert_array_equal(runner.obs[done, 0], 0)
        finished += list(zip(tr.episode_returns, tr.episode_lengths))
    assert finished == [(3.0, 3)] * 6
    runner.close()


def _tagged_envs(n: int) -> gym.vector.SyncVectorEnv:
    """n CountEnvs whose episodes last 2-6 steps (drawn from each episode's seed);
    obs = [t, episode, env index]."""
    fns = [
        functools.partial(make_env, "CountEnv-v0", {"length": 2, "max_length": 6, "tag": i})
        for i in range(n)
    ]
    return gym.vector.SyncVectorEnv(fns, autoreset_mode=AutoresetMode.DISABLED)


def test_runner_keeps_envs_whose_episodes_end_apart_and_seeds_each_episode():
    envs = _tagged_envs(3)
    runner = EnvRunner(envs, seed=7)
    uneven = False  # some step ended one env's episode and not another's
    for _ in range(60):
        tr = runner.step(np.zeros((3, 1), dtype=np.float32))
        # every transition stays within one env and one of its episodes, from t to t + 1
        np.testing.assert_array_equal(tr.obs[:, 2], [0, 1, 2])
        np.testing.assert_array_equal(tr.next_obs[:, 2], [0, 1, 2])
        np.testing.assert_array_equal(tr.next_obs[:, :2], tr.obs[:, :2] + [1, 0])
        # terminated exactly where that episode's own length is reached
        lengths = [envs.envs[i].unwrapped.lengths[int(e)] for i, e in enumerate(tr.obs[:, 1])]
        np.testing.assert_array_equal(tr.terminated, tr.next_obs[:, 0] == lengths)
        assert sorted(tr.episode_lengths) == sorted(int(t) for t in tr.next_obs[tr.terminated, 0])
        uneven |= 0 < tr.terminated.sum() < 3
        np.testing.assert_array_equal(runner.obs[tr.terminated, 0], 0)  # the next episode's
    assert uneven
    for i, env in enumerate(envs.envs):
        seeds = env.unwrapped.reset_seeds
        assert len(seeds) == runner.episodes[i] + 1 > 5
        assert seeds == [env_seed(7, i, k) for k in range(len(seeds))]
    # A runner given the episode counts (as a resume is) restarts each episode in progress
    # from its own seed.
    resumed = EnvRunner(envs, seed=7, episodes=runner.episodes.tolist())
    for env in envs.envs:
        assert env.unwrapped.reset_seeds[-1] == env.unwrapped.reset_seeds[-2]
    with pytest.raises(SACError, match="num_envs"):
        EnvRunner(envs, seed=7, episodes=[0, 0])
    resumed.close()


def test_vector_env_rejects_bad_settings():
    with pytest.raises(SACError, match="num_envs"):
        make_vector_env("Pendulum-v1", {}, 0)
    with pytest.raises(SACError, match="vectorization"):
        make_vector_env("Pendulum-v1", {}, 1, "threads")
