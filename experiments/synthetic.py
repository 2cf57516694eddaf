"""Shared by the benchmark scripts: fill a trainer's replay buffer with random transitions."""

from __future__ import annotations

import numpy as np

from sac.buffer import ReplayBuffer
from sac.frames import FrameReplayBuffer


def fill_randomly(buffer: ReplayBuffer, n: int, obs_dim: int, act_dim: int) -> None:
    """Add n random transitions (random data: no help from compression or caching)."""
    rng = np.random.default_rng(0)
    chunk = 100_000
    for start in range(0, n, chunk):
        k = min(chunk, n - start)
        buffer.add(
            rng.standard_normal((k, obs_dim), np.float32),
            rng.uniform(-1, 1, (k, act_dim)).astype(np.float32),
            rng.standard_normal(k, np.float32),
            rng.standard_normal((k, obs_dim), np.float32),
            np.zeros(k, np.float32),
        )


def fill_frames(buffer: FrameReplayBuffer, n: int, episode_length: int) -> None:
    """Add n transitions of random frames to a FrameReplayBuffer, one env, in episodes of
    `episode_length` steps, each observation the stack an env with frame stacking would give
    (random pixels: no help from compression)."""
    rng = np.random.default_rng(0)
    k, (c, h, w) = buffer.frame_stack, buffer.frame_shape
    act = np.zeros((1, buffer.act_dim), np.float32)
    reward, terminated = np.zeros(1, np.float32), np.zeros(1, bool)
    step = 0
    while step < n:
        frame = rng.integers(0, 256, (1, c, h, w), dtype=np.uint8)
        obs = np.concatenate([frame] * k, axis=1)  # a reset stack: the first frame k times
        for t in range(min(episode_length, n - step)):
            frame = rng.integers(0, 256, (1, c, h, w), dtype=np.uint8)
            next_obs = np.concatenate([obs[:, c:], frame], axis=1)
            done = np.array([t == episode_length - 1 or step == n - 1])
            buffer.add(obs, act, reward, next_obs, terminated, done)
            obs = next_obs
            step += 1
