"""Hindsight Experience Replay (Andrychowicz et al. 2017): a replay buffer that keeps each env's
episodes intact and, when it samples, swaps a share of the desired goals for goals that the
same episode achieved, with the rewards recomputed for them.

Layout: each `add` writes one row per env (as ReplayBuffer), so vector step t of env i lives in
slot (t mod L) * num_envs + i, L = capacity / num_envs: each env owns a column of L slots in
which its episodes follow each other, across the wrap-around. Per slot, on the buffer's device:
the vector step its episode started at and the one after its last (`ep_end`, -1 where the slot
may not be sampled: an unfinished or an overwritten episode). On the host, per env: its intact
finished episodes, and the runs of consecutive vector steps they cover (the segments sampling
draws from), so neither an add nor a sample costs more than O(episode length + batch).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from sac.buffer import ReplayBuffer
from sac.losses import Batch

log = logging.getLogger("sac")

STRATEGIES = ("future", "final", "episode")

# (achieved goals, desired goals) -> rewards, numpy batches: the env's compute_reward
RewardFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


class HerReplayBuffer(ReplayBuffer):
    """A ReplayBuffer of whole episodes from `num_envs` envs whose samples are relabelled.

    Only transitions of finished episodes are sampled; when the oldest episode of an env
    starts to be overwritten, all of it stops being sampled at once. Of each batch, the first
    int(batch_size * n_sampled_goal / (n_sampled_goal + 1)) rows get a new goal: the achieved
    goal (of next_obs) at a step t' of their own episode, t' uniform in [t, T - 1] (`future`),
    T - 1 (`final`) or uniform over the episode (`episode`), where t is the row's step and T
    the episode's length; it replaces the desired goal in obs and next_obs, and
    `compute_reward` rates the row's achieved goal against it (one call per sample).
    `terminated` stays as stored, so a time limit still bootstraps.

    `achieved` and `desired` are the goals' slices of the flat observation.
    """

    def __init__(
        self,
        capacity: int,
        obs_dim: int,
        act_dim: int,
        num_envs: int,
        achieved: slice,
        desired: slice,
        compute_reward: RewardFn,
        strategy: str = "future",
        n_sampled_goal: int = 4,
        device: torch.device | str = "cpu",
        seed: int = 0,
    ) -> None:
        if num_envs < 1 or capacity < num_envs or capacity % num_envs:
            raise ValueError(
                f"HER buffer capacity must be a positive multiple of num_envs ({num_envs}), "
                f"got {capacity}"
            )
        if strategy not in STRATEGIES:
            raise ValueError(f"HER strategy must be one of {STRATEGIES}, got '{strategy}'")
        if n_sampled_goal < 0:
            raise ValueError(f"n_sampled_goal must be >= 0, got {n_sampled_goal}")
        super().__init__(capacity, obs_dim, act_dim, device, seed)
        self.num_envs = num_envs
        self.rows = capacity // num_envs  # vector steps held: each env's column of slots
        self.achieved, self.desired = achieved, desired
        self.compute_reward = compute_reward
        self.strategy = strategy
        self.her_ratio = n_sampled_goal / (n_sampled_goal + 1)
        i64 = {"dtype": torch.int64, "device": self.device}
        self.ep_start = torch.zeros(capacity, **i64)  # vector step the slot's episode began
        self.ep_end = torch.full((capacity,), -1, **i64)  # one past its last; -1: not sampled
        self.steps = 0  # vector steps added
        self.open_start = [0] * num_envs  # where each env's episode in progress began
        self.episodes: list[deque[tuple[int, int]]] = [deque() for _ in range(num_envs)]
        self.segments: list[deque[list[int]]] = [deque() for _ in range(num_envs)]
        self._table: tuple[Tensor, Tensor, Tensor, Tensor] | None = None  # see _sampling_table
        self._count = 0  # sampleable transitions
        self._warned_long = False

    def __len__(self) -> int:
        """Transitions that can be sampled: those of finished episodes still whole."""
        return self._count

    # ----------------------------------------------------------------------------- add
    def add(
        self,
        obs: np.ndarray,
        action: np.ndarray,
        reward: np.ndarray,
        next_obs: np.ndarray,
        terminated: np.ndarray,
        done: np.ndarray | None = None,
    ) -> None:
        """One vector step: a row per env, and `done` (terminated or truncated) per env."""
        if done is None:
            raise ValueError("HerReplayBuffer.add needs `done`: it keeps whole episodes")
        n = self.num_envs
        done = np.asarray(done, dtype=bool).reshape(-1)
        if len(obs) != n or len(done) != n:
            raise ValueError(f"expected one row and one done flag per env ({n}), got {len(obs)}")
        t = self.steps
        old = t - self.rows  # the vector step whose slots this one takes over
        for i in range(n):
            episodes = self.episodes[i]
            if episodes and episodes[0][0] <= old:  # the oldest episode starts being lost
                start, end = episodes.popleft()
                self.ep_end[self._slots(i, start, end)] = -1  # all of it, at once
                segment = self.segments[i][0]
                segment[0] = end
                if segment[0] == segment[1]:
                    self.segments[i].popleft()
                self._changed(-(end - start))
        pos = self.pos
        super().add(obs, action, reward, next_obs, terminated)
        self.ep_end[pos : pos + n] = -1  # open episodes are not sampled
        self.steps = t + 1
        for i in np.flatnonzero(done):
            start, end = self.open_start[i], t + 1
            self.open_start[i] = end
            if end - start > self.rows:  # it overwrote its own start: not whole, never sampled
                self._warn_long(end - start)
                continue
            slots = self._slots(i, start, end)
            self.ep_start[slots] = start
            self.ep_end[slots] = end
            self.episodes[i].append((start, end))
            segments = self.segments[i]
            if segments and segments[-1][1] == start:
                segments[-1][1] = end
            else:  # after a resume's abandoned partial episode, or the first one
                segments.append([start, end])
            self._changed(end - start)

    def restart_episodes(self) -> None:
        """The envs start new episodes at the next step (a resume: the runner resets them), so
        the stored part of the episodes in progress is never sampled."""
        self.open_start = [self.steps] * self.num_envs

    def _slots(self, env: int, start: int, end: int) -> Tensor:
        """The slots of env `env`'s vector steps [start, end)."""
        steps = torch.arange(start, end, device=self.device)
        return steps % self.rows * self.num_envs + env

    def _changed(self, count: int) -> None:
        self._count += count
        self._table = None

    def _warn_long(self, length: int) -> None:
        if not self._warned_long:
            self._warned_long = True
            log.warning(
                "an episode of %d steps does not fit in its env's %d slots of the HER buffer "
                "(agent.buffer_size / env.num_envs) and is not sampled; raise agent.buffer_size",
                length,
                self.rows,
            )

    # ----------------------------------------------------------------------------- sample
    def _sampling_table(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Every segment's env, first vector step, and cumulative transition counts (before
        and including it), on the device; rebuilt only after the episodes changed."""
        if self._table is None:
            rows = [(i, b, e - b) for i, segs in enumerate(self.segments) for b, e in segs]
            env, begin, count = (list(c) for c in zip(*rows)) if rows else ([], [], [])
            cum = np.cumsum(count, dtype=np.int64)
            self._table = tuple(  # type: ignore[assignment]
                torch.as_tensor(np.asarray(x, dtype=np.int64), device=self.device)
                for x in (env, begin, cum - count, cum)
            )
        return self._table  # type: ignore[return-value]

    def sample(self, batch_size: int, num_batches: int | None = None) -> Batch:
        """Uniform over the sampleable transitions, with replacement; with `num_batches` = K,
        K batches stacked (K, batch_size, ...), each relabelled as described above."""
        if self._count == 0:
            raise RuntimeError("no finished episode in the HER buffer to sample from")
        k = num_batches or 1
        n = batch_size * k
        env, begin, before, cum = self._sampling_table()
        u = torch.randint(0, self._count, (n,), device=self.device, generator=self.generator)
        seg = torch.searchsorted(cum, u, right=True)
        step = begin[seg] + (u - before[seg])
        env_of = env[seg]
        slot = step % self.rows * self.num_envs + env_of
        obs, action, reward, next_obs, terminated = (
            getattr(self, name).index_select(0, slot) for name in Batch._fields
        )
        m = int(batch_size * self.her_ratio)
        if m > 0:
            rows = (
                torch.arange(k, device=self.device)[:, None] * batch_size
                + torch.arange(m, device=self.device)
            ).reshape(-1)
            goals = self._goals(slot[rows], step[rows], env_of[rows])
            obs[rows, self.desired] = goals
            next_obs[rows, self.desired] = goals
            achieved = next_obs[rows, self.achieved]
            new = np.asarray(
                self.compute_reward(achieved.cpu().numpy(), goals.cpu().numpy()), np.float32
            ).reshape(-1)
            if new.shape != (len(rows),):
                raise ValueError(f"compute_reward gave {new.shape[0]} rewards for {len(rows)}")
            reward[rows] = torch.as_tensor(new).to(self.device)
        batch = [obs, action, reward, next_obs, terminated]
        if num_batches is not None:
            batch = [x.view(num_batches, batch_size, *x.shape[1:]) for x in batch]
        return Batch(*batch)

    def _goals(self, slot: Tensor, step: Tensor, env: Tensor) -> Tensor:
        """The achieved goals at the steps the strategy draws in each slot's episode."""
        start, end = self.ep_start[slot], self.ep_end[slot]
        if self.strategy == "final":
            goal_step = end - 1
        else:
            first = step if self.strategy == "future" else start
            r = torch.rand(
                len(slot), dtype=torch.float64, device=self.device, generator=self.generator
            )
            # floor(r * length) < length, and float rounding cannot reach past the last step
            goal_step = torch.minimum(first + (r * (end - first)).long(), end - 1)
        goal_slot = goal_step % self.rows * self.num_envs + env
        return self.next_obs.index_select(0, goal_slot)[:, self.achieved]

    # ----------------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """ReplayBuffer's state plus the episode bookkeeping: per-slot episode bounds, the
        episodes in progress, and each env's intact finished episodes, oldest first."""
        episodes = [(i, s, e) for i, eps in enumerate(self.episodes) for s, e in eps]
        return {
            **super().state_dict(),
            "num_envs": self.num_envs,
            "steps": self.steps,
            "open_start": list(self.open_start),
            "ep_start": self._filled(self.ep_start),
            "ep_end": self._filled(self.ep_end),
            "episodes": torch.tensor(episodes, dtype=torch.int64).reshape(-1, 3),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from `state_dict` exactly (the episodes in progress stay open: a resume
        calls `restart_episodes`)."""
        if state.get("num_envs") != self.num_envs:
            raise ValueError(
                f"saved HER buffer has {state.get('num_envs')} envs, this one {self.num_envs}"
            )
        super().load_state_dict(state)
        n = self.size
        self.ep_start[:n].copy_(state["ep_start"])
        self.ep_end[:n].copy_(state["ep_end"])
        self.ep_end[n:] = -1
        self.steps = int(state["steps"])
        self.open_start = [int(s) for s in state["open_start"]]
        self.episodes = [deque() for _ in range(self.num_envs)]
        self.segments = [deque() for _ in range(self.num_envs)]
        self._count = 0
        for i, start, end in state["episodes"].tolist():
            self.episodes[i].append((start, end))
            segments = self.segments[i]
            if segments and segments[-1][1] == start:
                segments[-1][1] = end
            else:
                segments.append([start, end])
            self._count += end - start
        self._table = None
