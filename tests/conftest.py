"""Shared test helpers: tiny test envs registered with Gymnasium, a CLI runner, a config maker."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from sac.config import config_dir, register_configs

# Before any test module imports MuJoCo or dm_control (test_dmc's importorskip of shimmy, at
# collection): they pick their OpenGL backend once per process, and without a screen only EGL
# renders (a GLFW chosen then fails every later pixel env in the process).
os.environ.setdefault("MUJOCO_GL", "egl")

REPO = Path(__file__).resolve().parent.parent


class CountEnv(gym.Env):
    """obs = [t, episode id] (and the env's `tag`, if one is given); terminates after `length`
    steps (or truncates, if `truncate`). With `max_length`, each episode's length is drawn from
    [length, max_length] with the env's RNG, so it depends on the seed the episode starts from.
    With `count_episodes=False` the episode id stays 0, so observations depend on the episode's
    seed only (a resumed env counts its episodes from 0 again)."""

    def __init__(
        self,
        length: int = 3,
        truncate: bool = False,
        nan_after: int = -1,
        max_length: int = 0,
        tag: int = -1,
        count_episodes: bool = True,
    ) -> None:
        self.min_length, self.max_length = length, max(length, max_length)
        self.truncate = truncate
        self.nan_after = nan_after  # steps after which rewards are NaN (-1: never)
        self.tag = tag
        self.count_episodes = count_episodes
        self.total_steps = 0
        obs_dim = 2 if tag < 0 else 3
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)
        self.action_space = gym.spaces.Box(-2.0, 4.0, (1,), np.float32)
        self.episode = -1
        self.last_action: np.ndarray | None = None
        self.reset_seeds: list[int | None] = []  # the seed of each reset, in order
        self.lengths: list[int] = []  # each episode's length

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.reset_seeds.append(seed)
        self.t = 0
        self.episode += 1
        self.length = int(self.np_random.integers(self.min_length, self.max_length + 1))
        self.lengths.append(self.length)
        return self._obs(), {}

    def step(self, action):
        self.last_action = np.array(action)
        self.t += 1
        self.total_steps += 1
        done = self.t >= self.length
        reward = float("nan") if 0 <= self.nan_after < self.total_steps else 1.0
        return self._obs(), reward, done and not self.truncate, done and self.truncate, {}

    def _obs(self) -> np.ndarray:
        extra = [] if self.tag < 0 else [self.tag]
        episode = self.episode if self.count_episodes else 0
        return np.array([self.t, episode, *extra], dtype=np.float32)


gym.register("CountEnv-v0", entry_point=CountEnv)


class PointGoalEnv(gym.Env):
    """A goal-conditioned 2-D point (the Gymnasium-Robotics goal API): the point starts and
    the goal lies uniformly in [-1, 1]^2, both drawn from the reset seed; an action in
    [-1, 1]^2 moves the point by `speed` times it (clipped to the square); reward 0 within
    `radius` of the goal, else -1; info["is_success"] says which. Never terminates (unless
    `terminate_on_success`); a 50-step time limit. `key_order` orders the observation dict
    (gymnasium sorts a plain dict's keys; a list of pairs keeps its order)."""

    def __init__(
        self,
        speed: float = 0.2,
        radius: float = 0.15,
        terminate_on_success: bool = False,
        key_order: tuple[str, ...] = (),
    ) -> None:
        self.speed, self.radius = speed, radius
        self.terminate_on_success = terminate_on_success
        box = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        spaces = {"observation": box, "achieved_goal": box, "desired_goal": box}
        self.observation_space = gym.spaces.Dict(
            [(k, spaces[k]) for k in key_order] if key_order else spaces
        )
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos = self.np_random.uniform(-1, 1, 2).astype(np.float32)
        self.goal = self.np_random.uniform(-1, 1, 2).astype(np.float32)
        return self._obs(), {}

    def step(self, action):
        self.pos = np.clip(self.pos + self.speed * np.asarray(action), -1, 1).astype(np.float32)
        reward = float(self.compute_reward(self.pos, self.goal, {}))
        success = reward == 0.0
        return (
            self._obs(),
            reward,
            self.terminate_on_success and success,
            False,
            {"is_success": float(success)},
        )

    def compute_reward(self, achieved_goal, desired_goal, info):
        """Vectorised over leading dimensions, as the goal API asks."""
        distance = np.linalg.norm(np.asarray(achieved_goal) - desired_goal, axis=-1)
        return np.where(distance > self.radius, -1.0, 0.0).astype(np.float32)

    def _obs(self) -> dict[str, np.ndarray]:
        return {
            "observation": self.pos.copy(),
            "achieved_goal": self.pos.copy(),
            "desired_goal": self.goal.copy(),
        }


gym.register("PointGoal-v0", entry_point=PointGoalEnv, max_episode_steps=50)


def _dot_image(size: int, cell: np.ndarray) -> np.ndarray:
    """A 3x3 white dot centred on `cell` on black, channels-last uint8 (size, size, 3)."""
    image = np.zeros((size, size, 3), np.uint8)
    (r, c) = cell
    image[r - 1 : r + 2, c - 1 : c + 2] = 255
    return image


class DotEnv(gym.Env):
    """Observations are images, channels-last uint8 (20, 20, 3): a 3x3 white dot on black
    at a position drawn at each reset. One step per episode: an action in [-1, 1]^2 earns
    minus its distance to the dot's centre in the same coordinates. Acting well needs the
    image; the best blind action, the centre, earns about -0.81 on average."""

    SIZE = 20

    def __init__(self) -> None:
        self.observation_space = gym.spaces.Box(0, 255, (self.SIZE, self.SIZE, 3), np.uint8)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.cell = np.zeros(2, dtype=np.int64)

    def _image(self) -> np.ndarray:
        return _dot_image(self.SIZE, self.cell)

    def target(self) -> np.ndarray:
        return (self.cell - 1) / (self.SIZE - 3) * 2.0 - 1.0  # cells 1..SIZE-2 -> [-1, 1]

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.cell = self.np_random.integers(1, self.SIZE - 1, 2)
        return self._image(), {}

    def step(self, action):
        reward = -float(np.linalg.norm(np.asarray(action) - self.target()))
        return self._image(), reward, True, False, {}


gym.register("Dot-v0", entry_point=DotEnv)


class DotOffsetEnv(gym.Env):
    """A dot the env renders (rgb_array, 20 x 20, as DotEnv's image) and an offset its
    observation gives, both drawn at each reset in [-0.5, 0.5]^2. One step per episode: an
    action earns minus its distance to dot + offset. Acting well needs both the frame and
    the state: the best action blind to either earns about -0.38 on average."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"]}
    SIZE = 20

    def __init__(self, render_mode: str | None = None) -> None:
        self.render_mode = render_mode
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.cell = np.zeros(2, dtype=np.int64)
        self.offset = np.zeros(2, dtype=np.float32)

    def render(self) -> np.ndarray:
        return _dot_image(self.SIZE, self.cell)

    def target(self) -> np.ndarray:
        dot = (self.cell - 1) / (self.SIZE - 3) - 0.5  # cells 1..SIZE-2 -> [-0.5, 0.5]
        return dot + self.offset

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.cell = self.np_random.integers(1, self.SIZE - 1, 2)
        self.offset = self.np_random.uniform(-0.5, 0.5, 2).astype(np.float32)
        return self.offset.copy(), {}

    def step(self, action):
        reward = -float(np.linalg.norm(np.asarray(action) - self.target()))
        return self.offset.copy(), reward, True, False, {}


gym.register("DotOffset-v0", entry_point=DotOffsetEnv)


class CameraDictEnv(DotOffsetEnv):
    """DotOffsetEnv observing a Dict of its own: "camera" the rendered image (channels-last
    uint8), "offset" and a constant "tag", as robot envs give a camera beside joint readings."""

    def __init__(self, render_mode: str | None = None) -> None:
        super().__init__(render_mode)
        self.observation_space = gym.spaces.Dict(
            {
                "camera": gym.spaces.Box(0, 255, (self.SIZE, self.SIZE, 3), np.uint8),
                "offset": gym.spaces.Box(-1.0, 1.0, (2,), np.float32),
                "tag": gym.spaces.Box(0.0, 1.0, (1,), np.float32),
            }
        )

    def _obs(self) -> dict[str, np.ndarray]:
        return {
            "camera": self.render(),
            "offset": self.offset.copy(),
            "tag": np.ones(1, np.float32),
        }

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        return self._obs(), {}

    def step(self, action):
        _, reward, terminated, truncated, info = super().step(action)
        return self._obs(), reward, terminated, truncated, info


gym.register("CameraDict-v0", entry_point=CameraDictEnv)


@pytest.fixture
def make_cfg(tmp_path):
    """compose() the train config with overrides, as `sac-train` would."""
    register_configs()

    def _make(*overrides: str):
        with initialize_config_dir(version_base="1.3", config_dir=config_dir()):
            return compose("train", overrides=list(overrides))

    return _make


def run_cli(args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run a console script (sac-train / sac-eval) as a user would, in a subprocess."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "MUJOCO_GL": "egl"}
    env.pop("HYDRA_FULL_ERROR", None)
    exe = Path(sys.executable).parent / args[0]
    return subprocess.run(
        [str(exe), *args[1:]], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def assert_recorded_as_cuda_graphs() -> None:
    """Inductor counts each graph it ran without CUDA graphs (and logs why), each graph it
    split into pieces around ops CUDA graphs cannot take, and the inputs of the graphs it
    recorded that it copies in at each replay (the batch, so at least one per recording)."""
    from torch._dynamo.utils import counters

    assert counters["inductor"]["cudagraph_skips"] == 0
    assert counters["inductor"]["cudagraph_partitions"] == 0
    assert counters["inductor"]["cudagraph_recorded_non_static_inputs"] > 0


def compile_with(monkeypatch: pytest.MonkeyPatch, backend: Any) -> list[str]:
    """Make torch.compile use `backend` instead of Inductor, keeping the agent's other
    arguments (fullgraph, dynamic) and dropping Inductor's own (mode, options); reset Dynamo.
    Returns the names of the functions compiled from now on."""
    import torch

    real_compile = torch.compile
    compiled: list[str] = []

    def compile_(fn: Any, mode: Any = None, options: Any = None, **kwargs: Any) -> Any:
        compiled.append(fn.__name__)
        return real_compile(fn, backend=backend, **kwargs)

    monkeypatch.setattr(torch, "compile", compile_)
    torch._dynamo.reset()
    return compiled


def assert_same_state(saved: Any, restored: Any, where: str = "state") -> None:
    """Every tensor and value of `saved` equals, bit for bit, the one at the same place in
    `restored` (nested dicts, lists and tuples of tensors and plain values)."""
    import torch

    if isinstance(saved, torch.Tensor):
        assert isinstance(restored, torch.Tensor), where
        torch.testing.assert_close(restored.cpu(), saved.cpu(), rtol=0, atol=0, msg=where)
    elif isinstance(saved, dict):
        assert set(saved) == set(restored), where
        for key in saved:
            assert_same_state(saved[key], restored[key], f"{where}.{key}")
    elif isinstance(saved, (list, tuple)):
        assert len(saved) == len(restored), where
        for i, (a, b) in enumerate(zip(saved, restored)):
            assert_same_state(a, b, f"{where}[{i}]")
    else:
        assert saved == restored, where


def assert_encoder_trained_by_the_critic_loss_only(agent: Any, batch: Any) -> None:
    """The critic loss gives the image encoder gradients, the actor loss none (DrQ), on
    `batch` augmented as an update does."""
    batch = agent.augmented(batch)
    alpha = agent.log_alpha.detach().exp()
    encoder = list(agent.critic.encoder.parameters())

    loss, _, _ = agent.critic_loss(batch, alpha)
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in encoder)
    for p in [*agent.critic.parameters(), *agent.actor.parameters()]:
        p.grad = None

    # not frozen, as in the update: the detach alone keeps the actor loss off the encoder
    actor_loss, _ = agent.actor_loss(batch.obs, alpha)
    actor_loss.backward()
    assert all(p.grad is None for p in encoder)
    assert agent.critic.head[0].weight.grad is not None  # (what the update's freezing is for)
    # the actor's own head and MLP learn from it
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in agent.actor.parameters())
