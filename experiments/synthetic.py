"""Shared by the benchmark scripts: fill a trainer's replay buffer with random transitions."""

from __future__ import annotations

import numpy as np

from sac.buffer import ReplayBuffer


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
