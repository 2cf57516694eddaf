"""Gymnasium adapters: checked, action-rescaled envs; vector envs; a runner that yields clean
transitions (never one that spans a reset), seeds every episode and counts finished ones; the
goal API of goal-conditioned envs (where the goals lie in the flat observation, their reward)."""

from __future__ import annotations

import functools
import importlib
import signal
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

from sac.errors import SACError
from sac.seeding import env_seed

# Env id prefixes whose envs are registered by importing a package (an optional extra of sac):
# (prefix, module, extra). A fixed table: env ids never name the module to import here.
ENV_PACKAGES = (("dm_control/", "shimmy", "dmc"), ("Fetch", "gymnasium_robotics", "robotics"))
# What is known of a package's envs failing to build (an assertion inside the package).
BUILD_FAILURES = {
    "robotics": "gymnasium-robotics 1.4.2 cannot build the Fetch tasks with MuJoCo >= 3.12 (from "
    "3.12 on, its set_joint_qpos finds a numpy joint type in no tuple of MuJoCo's enums); they "
    "build with mujoco < 3.12 (docs/configuration.md, Fetch)",
}
# The keys of a goal-conditioned env's observation dict (the Gymnasium-Robotics goal API).
GOAL_KEYS = ("observation", "achieved_goal", "desired_goal")


def make_env(
    env_id: str,
    kwargs: dict[str, Any] | None = None,
    render_mode: str | None = None,
    action_repeat: int = 1,
) -> gym.Env:
    """gymnasium.make plus the checks and wrappers SAC needs.

    The returned env takes actions in [-1, 1]^dim(A) (mapped linearly to the env's bounds),
    gives flat float observations, and with `action_repeat` = k holds each action for k env
    steps (frames), summing their rewards.
    """
    kwargs = dict(kwargs or {})
    if render_mode is not None:
        kwargs["render_mode"] = render_mode
    if action_repeat < 1:
        raise SACError(f"env.action_repeat must be >= 1, got {action_repeat}")
    _register_package(env_id)
    try:
        env = gym.make(env_id, **kwargs)
    except gym.error.UnregisteredEnv as e:
        raise SACError(
            f"unknown Gymnasium env id '{env_id}' ({e}); set env.id to a registered id"
            " such as Pendulum-v1 or HalfCheetah-v5"
        ) from None
    except gym.error.DependencyNotInstalled as e:
        raise SACError(f"env '{env_id}' needs a missing dependency: {e}") from None
    except TypeError as e:
        raise SACError(f"env '{env_id}' rejected env.kwargs {kwargs}: {e}") from None
    except AssertionError as e:
        extra = _package_extra(env_id)
        if extra is None:  # an env of the user's own: its traceback is what helps
            raise
        where = traceback.extract_tb(e.__traceback__)[-1]
        raise SACError(
            f"env '{env_id}' failed to build inside its package (AssertionError in "
            f"{Path(where.filename).name}:{where.lineno} {where.name}); "
            f"{BUILD_FAILURES.get(extra, 'the package and its dependencies may not fit')}"
        ) from None
    space = env.action_space
    if not isinstance(space, gym.spaces.Box):
        env.close()
        raise SACError(
            f"env '{env_id}' has action space {space}; SAC needs a continuous Box action space "
            "(for discrete actions use an algorithm such as DQN or PPO)"
        )
    if not (np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high))):
        env.close()
        raise SACError(
            f"env '{env_id}' has unbounded action space {space}; SAC needs finite bounds"
        )
    if len(space.shape) != 1:
        env.close()
        raise SACError(f"env '{env_id}' has action shape {space.shape}; SAC needs a 1-D Box")
    if action_repeat > 1:
        env = gym.wrappers.RepeatAction(env, action_repeat)
    obs_space = env.observation_space
    if not (isinstance(obs_space, gym.spaces.Box) and len(obs_space.shape) == 1):
        env = gym.wrappers.FlattenObservation(env)
    # The policy acts in [-1, 1]; this maps to [low, high] at the env boundary.
    ones = np.ones(space.shape, dtype=space.dtype)
    return gym.wrappers.RescaleAction(env, -ones, ones)


def _package_extra(env_id: str) -> str | None:
    """The extra of sac whose package provides `env_id` (ENV_PACKAGES), or None."""
    return next((extra for prefix, _, extra in ENV_PACKAGES if env_id.startswith(prefix)), None)


def _register_package(env_id: str) -> None:
    """Import the package that registers `env_id`'s namespace (ENV_PACKAGES), or say which
    extra installs it."""
    for prefix, module, extra in ENV_PACKAGES:
        if env_id.startswith(prefix) and env_id not in gym.registry:
            try:
                gym.register_envs(importlib.import_module(module))
            except ImportError as e:
                raise SACError(
                    f"env '{env_id}' needs the {extra} extra ({e}): pip install 'sac[{extra}]'"
                ) from None


def action_bounds(env: gym.Env) -> tuple[np.ndarray, np.ndarray]:
    """The env's own action bounds (float32): what make_env's RescaleAction maps [-1, 1] onto."""
    if not isinstance(env, gym.wrappers.RescaleAction):  # make_env's outermost wrapper
        raise TypeError(f"expected make_env's RescaleAction wrapper, got {type(env).__name__}")
    space = env.env.action_space
    return space.low.astype(np.float32), space.high.astype(np.float32)


def make_vector_env(
    env_id: str,
    kwargs: dict[str, Any] | None,
    num_envs: int,
    vectorization: str = "sync",
    action_repeat: int = 1,
) -> gym.vector.VectorEnv:
    """`num_envs` copies of `make_env`, with autoreset disabled: EnvRunner resets them."""
    if num_envs < 1:
        raise SACError(f"env.num_envs must be >= 1, got {num_envs}")
    make_vec: Callable[..., gym.vector.VectorEnv]
    if vectorization == "sync":
        make_vec = gym.vector.SyncVectorEnv
    elif vectorization == "async":
        make_vec = gym.vector.AsyncVectorEnv
    else:
        raise SACError(f"env.vectorization must be 'sync' or 'async', got '{vectorization}'")
    # fail here, in this process, with a clear message
    make_env(env_id, kwargs, action_repeat=action_repeat).close()
    build = _make_worker_env if vectorization == "async" else make_env
    fns = [
        functools.partial(build, env_id, kwargs, action_repeat=action_repeat)
        for _ in range(num_envs)
    ]
    return make_vec(fns, autoreset_mode=AutoresetMode.DISABLED)


def _make_worker_env(env_id: str, kwargs: dict[str, Any] | None, action_repeat: int = 1) -> gym.Env:
    """make_env inside an AsyncVectorEnv worker process. Ctrl-C and SIGTERM reach the whole
    process group (SLURM's SIGUSR2 every process of the job step); the workers ignore them so
    that the trainer can finish its step, checkpoint and close the envs itself. A forked worker
    would otherwise also run the parent's Python handlers (submitit's would requeue the job)."""
    for sig in ("SIGINT", "SIGTERM", "SIGUSR2"):
        if hasattr(signal, sig):  # no SIGUSR2 on Windows
            signal.signal(getattr(signal, sig), signal.SIG_IGN)
    return make_env(env_id, kwargs, action_repeat=action_repeat)


def space_dims(env: gym.Env | gym.vector.VectorEnv) -> tuple[int, int]:
    """(obs_dim, act_dim) of a single env or of one member of a vector env."""
    obs_space = getattr(env, "single_observation_space", env.observation_space)
    act_space = getattr(env, "single_action_space", env.action_space)
    return int(np.prod(obs_space.shape)), int(np.prod(act_space.shape))


@dataclass(frozen=True)
class GoalSpec:
    """Where a goal-conditioned env's goals lie in its flat observation (FlattenObservation of
    its Dict, in the Dict's key order) and its reward of (achieved, desired) goal batches."""

    achieved: slice
    desired: slice
    compute_reward: Callable[[np.ndarray, np.ndarray], np.ndarray]


def goal_spec(env: gym.Env) -> GoalSpec | None:
    """The goal API of a `make_env` env, or None if it has none: a Dict observation with
    `observation`, `achieved_goal` and `desired_goal` and a `compute_reward` of the env."""
    inner = env
    while not isinstance(inner, gym.wrappers.FlattenObservation):
        if not isinstance(inner, gym.Wrapper):
            return None  # a flat observation from the start: no goal dict
        inner = inner.env
    space = inner.env.observation_space
    compute = getattr(env.unwrapped, "compute_reward", None)
    if not (
        isinstance(space, gym.spaces.Dict) and set(GOAL_KEYS) <= set(space) and callable(compute)
    ):
        return None
    # FlattenObservation concatenates the Dict's entries in its key order, each flattened.
    slices, offset = {}, 0
    for key, sub in space.items():
        size = gym.spaces.flatdim(sub)
        slices[key] = slice(offset, offset + size)
        offset += size

    def reward(achieved: np.ndarray, desired: np.ndarray) -> np.ndarray:
        # Vectorised over the batch; the goal API passes one info per row, which the Fetch
        # tasks ignore and HER does not store.
        infos = [{} for _ in range(len(achieved))]
        return np.asarray(compute(achieved, desired, infos), dtype=np.float32).reshape(-1)

    return GoalSpec(slices["achieved_goal"], slices["desired_goal"], reward)


@dataclass
class Transitions:
    """One vector step's transitions, one row per env, ready for the replay buffer."""

    obs: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    next_obs: np.ndarray  # the true next observation, also where the episode just ended
    terminated: np.ndarray
    truncated: np.ndarray
    episode_returns: list[float] = field(default_factory=list)  # episodes finished this step
    episode_lengths: list[int] = field(default_factory=list)
    # their info["is_success"] at the last step (goal-conditioned envs), None where not given
    episode_successes: list[float | None] = field(default_factory=list)


class EnvRunner:
    """Steps a vector env (autoreset DISABLED) and returns transitions that are safe to store.

    The runner resets each env itself when its episode ends, so a stored transition never spans
    a reset (next_obs is the episode's real last observation, from which a truncated episode
    bootstraps), and every episode starts from a seed of its own: episode k of env i from
    `sac.seeding.env_seed(seed, i, k)`. `episodes` gives each env's episode to start with (a
    resume passes the checkpoint's, so an episode cut by the stop restarts from its own seed).
    """

    def __init__(
        self, envs: gym.vector.VectorEnv, seed: int, episodes: list[int] | None = None
    ) -> None:
        self.envs = envs
        self.num_envs = envs.num_envs
        self.seed = seed
        # each env's episode in progress (its index counts that env's episodes from 0)
        self.episodes = np.array(episodes if episodes is not None else [0] * self.num_envs)
        if self.episodes.shape != (self.num_envs,):
            raise SACError(
                f"{len(self.episodes)} saved episode counts for {self.num_envs} envs; resume "
                "with the env.num_envs the run was started with"
            )
        seeds = [env_seed(seed, i, int(k)) for i, k in enumerate(self.episodes)]
        obs, _ = envs.reset(seed=seeds)
        self.obs = np.asarray(obs, dtype=np.float32)
        self._returns = np.zeros(self.num_envs)
        self._lengths = np.zeros(self.num_envs, dtype=np.int64)

    def step(self, action: np.ndarray) -> Transitions:
        next_obs, reward, terminated, truncated, info = self.envs.step(action)
        out = Transitions(
            self.obs,
            action,
            np.asarray(reward, dtype=np.float32),
            np.asarray(next_obs, dtype=np.float32),
            np.asarray(terminated),
            np.asarray(truncated),
        )
        self._returns += reward
        self._lengths += 1
        done = np.logical_or(terminated, truncated)
        if done.any():
            out.episode_returns = [float(r) for r in self._returns[done]]
            out.episode_lengths = [int(n) for n in self._lengths[done]]
            out.episode_successes = [_success(info, i) for i in np.flatnonzero(done)]
            self._returns[done] = 0.0
            self._lengths[done] = 0
            self.episodes[done] += 1
            seeds = [
                env_seed(self.seed, i, int(k)) if d else None
                for i, (k, d) in enumerate(zip(self.episodes, done))
            ]
            next_obs, _ = self.envs.reset(seed=seeds, options={"reset_mask": done})
        self.obs = np.asarray(next_obs, dtype=np.float32)
        return out

    def close(self) -> None:
        self.envs.close()


def _success(info: dict[str, Any], i: int) -> float | None:
    """Env i's info["is_success"] in a vector env's info dict (its `_is_success` mask says
    which envs gave one), or None."""
    if "is_success" not in info or not info.get("_is_success", np.ones(i + 1, bool))[i]:
        return None
    return float(info["is_success"][i])
