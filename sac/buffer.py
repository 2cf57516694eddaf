"""Replay buffer: preallocated tensors on the run's device, circular, sampled on the device."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from sac.losses import Batch

_FIELDS = ("obs", "action", "reward", "next_obs", "terminated")


class ReplayBuffer:
    """Stores (obs, action, reward, next_obs, terminated); the oldest entries are overwritten."""

    def __init__(
        self, capacity: int, obs_dim: int, act_dim: int, device: torch.device | str, seed: int = 0
    ) -> None:
        if capacity < 1:
            raise ValueError(f"buffer capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.device = torch.device(device)
        f32 = {"dtype": torch.float32, "device": self.device}
        self.obs = torch.empty(capacity, obs_dim, **f32)
        self.action = torch.empty(capacity, act_dim, **f32)
        self.reward = torch.empty(capacity, **f32)
        self.next_obs = torch.empty(capacity, obs_dim, **f32)
        self.terminated = torch.empty(capacity, **f32)
        self.pos = 0  # next slot to write
        self.size = 0  # number of valid entries
        # A generator of its own keeps sampling reproducible and independent of the policy noise.
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)

    def __len__(self) -> int:
        return self.size

    def add(
        self,
        obs: np.ndarray,
        action: np.ndarray,
        reward: np.ndarray,
        next_obs: np.ndarray,
        terminated: np.ndarray,
        done: np.ndarray | None = None,
    ) -> None:
        """Append a batch of n transitions (leading dimension n), wrapping around at capacity.
        `done` (terminated or truncated, per row) tells where episodes end: this buffer does
        not need it, sac.her's does, so the trainer passes it to either."""
        n = len(obs)
        if n > self.capacity:  # only the newest `capacity` survive anyway
            obs, action, reward, next_obs, terminated = (
                x[-self.capacity :] for x in (obs, action, reward, next_obs, terminated)
            )
            n = self.capacity
        values = [
            torch.as_tensor(np.asarray(v, dtype=np.float32)).to(self.device)
            for v in (obs, action, reward, next_obs, terminated)
        ]
        stores = [getattr(self, name) for name in _FIELDS]
        first = min(n, self.capacity - self.pos)  # the part that fits before the end
        for store, value in zip(stores, values):
            value = value.reshape(n, *store.shape[1:])
            store[self.pos : self.pos + first] = value[:first]
            if first < n:  # wrap around to the start
                store[: n - first] = value[first:]
        self.pos = (self.pos + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def restart_episodes(self) -> None:
        """A resume restarts the envs' episodes in progress: the transitions stored of them
        stay as they are here (each is whole); sac.her's buffer, which samples by episode,
        closes them off."""

    def sample(self, batch_size: int, num_batches: int | None = None) -> Batch:
        """Uniform sample with replacement; indices are drawn on the device. With
        `num_batches` = K, K such batches stacked, each field (K, batch_size, ...), in one
        draw (for SAC.update_many)."""
        if self.size == 0:
            raise RuntimeError("cannot sample from an empty replay buffer")
        n = batch_size * (num_batches or 1)
        idx = torch.randint(0, self.size, (n,), device=self.device, generator=self.generator)
        # index_select: the same rows as x[idx], in half the time of advanced indexing on CPU
        rows = [getattr(self, name).index_select(0, idx) for name in Batch._fields]
        if num_batches is not None:
            rows = [x.view(num_batches, batch_size, *x.shape[1:]) for x in rows]
        return Batch(*rows)

    # ----------------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """The filled part only, as plain tensors (slot layout kept, so sampling resumes
        exactly), plus the write position and the sampler's RNG state."""
        n = self.size
        return {
            "capacity": self.capacity,
            "pos": self.pos,
            "size": n,
            **{name: self._filled(getattr(self, name)) for name in _FIELDS},
            "generator": self.generator.get_state(),
        }

    def _filled(self, store: Tensor) -> Tensor:
        """store[:size] on the CPU, holding only its own rows: a saved view would drag the
        whole preallocated storage along, so a partial one is copied; a full CPU buffer is
        saved as it is (no second copy of the largest thing in memory)."""
        if self.size == self.capacity and store.device.type == "cpu":
            return store
        return store[: self.size].to("cpu", copy=True)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from `state_dict`; the capacity and the shapes must match."""
        if state["capacity"] != self.capacity:
            raise ValueError(
                f"saved buffer has capacity {state['capacity']}, this one {self.capacity}"
            )
        n = int(state["size"])
        for name in _FIELDS:
            store = getattr(self, name)
            saved = state[name]
            if saved.shape[1:] != store.shape[1:] or saved.shape[0] != n:
                raise ValueError(
                    f"saved buffer field {name} has shape {tuple(saved.shape)}, expected "
                    f"({n}, {', '.join(map(str, store.shape[1:]))})"
                )
            store[:n].copy_(saved)
        self.size = n
        self.pos = int(state["pos"])
        saved_rng = state["generator"].cpu()
        if saved_rng.numel() == self.generator.get_state().numel():
            self.generator.set_state(saved_rng)
        else:  # saved by a generator of another device type (e.g. resuming a CUDA run on CPU)
            self.generator.manual_seed(self.pos * 1_000_003 + n)
