"""Env adapter: action mapping, bad spaces, and vector-env autoreset handling."""

import numpy as np
import pytest

from sac.envs import EnvRunner, make_env, make_vector_env, space_dims
from sac.errors import SACError


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


def test_vector_env_rejects_bad_settings():
    with pytest.raises(SACError, match="num_envs"):
        make_vector_env("Pendulum-v1", {}, 0)
    with pytest.raises(SACError, match="vectorization"):
        make_vector_env("Pendulum-v1", {}, 1, "threads")
