"""A replay buffer for stacked pixel observations that stores every frame once (DrQ-style
"SAC from pixels"; the issue "SAC from pixels").

An observation is a uint8 stack (k*C, H, W) of the k newest frames, oldest first, as Gymnasium's
FrameStackObservation(padding_type="reset") builds it: at a reset the first frame is repeated
k times. Storing obs and next_obs per transition would hold each frame 2k times; here each env
owns a ring of L = capacity // num_envs entries, and an entry is one frame (C, H, W) plus:

- its age, frames since its episode's reset frame, capped at k (a stack reaches back no further,
  so the cap loses nothing and fits in a uint8);
- the action, reward and terminated of the transition that ends at this frame (unused at age 0);
- with `state_dim` > 0, the env's state vector (float32) at this frame.

An env's first add of an episode writes the reset frame (obs's newest) at age 0 and next_obs's
newest frame at age 1; later adds write next_obs's newest frame only. An entry at slot p of
age a >= 1 is the transition whose stacks are: with frame j = 0..k at slot p - min(j, a), obs =
frames j = k..1 and next_obs = frames j = k-1..0. Clamping at the age repeats the reset frame, as
the env's padding did, so a stack never reaches into the previous episode; one gather of k + 1
frames builds both stacks of a sample.

Validity: an entry can be sampled iff its age is >= 1 and the min(age, k) entries before it in
its ring are still there. Once a ring is full each write overwrites its oldest entry and moves
every other one a step closer to the overwrite; the entry m places after the write head is
dropped when its capped age equals m (m = 1..k). A bool mask on the device marks the sampleable
entries; sampling draws u uniform in [0, len) with the buffer's generator and takes the entry
whose inclusive cumulative mask count first exceeds u (torch.searchsorted): exact, uniform,
reproducible, no host sync. The first sample after an add rebuilds the cumulative count,
O(capacity) on the device; everything else a sample does is O(batch).

Pixels beside the state (`state_dim` > 0): an observation is a dict {"pixels": the stack above,
"state": float (state_dim,)}, the state at the stack's newest frame, not stacked. Each entry
stores the state at its frame, so a sample's obs state is the entry before its row (obs's
newest frame, already among the k + 1 gathered) and next_obs's state its row's own.

Checks in `add`, always on (they compare host arrays of the step's own size): shapes and dtypes;
that a new episode's obs is a reset stack (k equal frames), that a continuing episode's obs
(state included) equals the env's previous next_obs, and that next_obs is obs shifted by one
frame. Together they guarantee that the stacks this buffer builds are the ones the env gave.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from sac.losses import PIXELS, STATE, Batch

log = logging.getLogger("sac")

# The per-entry stores, saved for the filled slots of each ring (ring 0 first).
_ENTRY_FIELDS = ("frames", "age", "action", "reward", "terminated")
_STATE_FIELD = "state"  # an entry field too, saved only by buffers with state_dim > 0
_OBS_KEYS = frozenset((PIXELS, STATE))  # an observation's keys with state_dim > 0


class FrameReplayBuffer:
    """Replay of stacked uint8 frames from `num_envs` envs, each frame stored once.

    `obs_shape` is the stacked observation's shape (frame_stack * C, H, W). `capacity` counts
    frames (entries), rounded down to a multiple of `num_envs`; each env keeps the newest
    capacity // num_envs of its own. A resume must call `restart_episodes` (the envs restart).

    With `state_dim` > 0 observations are dicts {"pixels": uint8 (k*C, H, W), "state": float
    (state_dim,)}, the state at the newest frame; each entry then also holds the state at its
    frame (float32), and a sample's obs and next_obs are dicts {"pixels": uint8 (B, k*C, H, W),
    "state": float32 (B, state_dim)}. With 0 (the default) they are plain uint8 stacks.
    """

    def __init__(
        self,
        capacity: int,
        obs_shape: tuple[int, int, int],
        frame_stack: int,
        act_dim: int,
        num_envs: int,
        device: torch.device | str,
        seed: int = 0,
        *,
        state_dim: int = 0,
    ) -> None:
        k = frame_stack
        if k < 1 or k > 255:  # ages capped at k live in a uint8
            raise ValueError(f"frame_stack must be in [1, 255], got {k}")
        if len(obs_shape) != 3 or obs_shape[0] % k or min(obs_shape) < 1:
            raise ValueError(
                f"obs_shape must be (frame_stack * C, H, W) with frame_stack={k}, got {obs_shape}"
            )
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        if state_dim < 0:
            raise ValueError(f"state_dim must be >= 0, got {state_dim}")
        ring = capacity // num_envs
        if ring < k + 1:  # the newest transition's two stacks need k + 1 frames
            raise ValueError(
                f"frame buffer capacity {capacity} gives each of {num_envs} envs {ring} frames; "
                f"frame_stack={k} needs at least {k + 1} per env"
            )
        if ring * num_envs != capacity:
            log.info(
                "frame buffer: %d frames (capacity %d rounded down to a multiple of num_envs=%d)",
                ring * num_envs,
                capacity,
                num_envs,
            )
        self.capacity = ring * num_envs
        self.ring = ring
        self.num_envs = num_envs
        self.frame_stack = k
        self.obs_shape = tuple(int(d) for d in obs_shape)
        self.frame_shape = (obs_shape[0] // k, obs_shape[1], obs_shape[2])
        self.act_dim = act_dim
        self.state_dim = state_dim
        self.device = torch.device(device)
        # Entry (env i, slot s) is row i * ring + s of every store.
        # Only `valid` needs a value up front: no entry is read before it is written (empty
        # leaves the pages of a large buffer unclaimed until then).
        on = {"device": self.device}
        self.frames = torch.empty(self.capacity, *self.frame_shape, dtype=torch.uint8, **on)
        self.age = torch.empty(self.capacity, dtype=torch.uint8, **on)
        self.action = torch.empty(self.capacity, act_dim, dtype=torch.float32, **on)
        self.reward = torch.empty(self.capacity, dtype=torch.float32, **on)
        self.terminated = torch.empty(self.capacity, dtype=torch.float32, **on)
        # Without a state it has no columns: no memory, and one code path for the stores.
        self.state = torch.empty(self.capacity, state_dim, dtype=torch.float32, **on)
        self.valid = torch.zeros(self.capacity, dtype=torch.bool, **on)
        self._cum = torch.empty(self.capacity, dtype=torch.int64, **on)  # cumsum of valid
        self._cum_stale = False
        # Host copies of what add() decides with, so it never reads the device.
        self._age = np.zeros((num_envs, ring), dtype=np.uint8)
        self._valid = np.zeros((num_envs, ring), dtype=bool)
        self.written = np.zeros(num_envs, dtype=np.int64)  # entries ever written per env
        self.open = np.zeros(num_envs, dtype=bool)  # the next add continues the env's episode
        self._last = np.zeros((num_envs, *self.obs_shape), dtype=np.uint8)  # previous next_obs
        self._last_state = np.zeros((num_envs, state_dim), dtype=np.float32)  # and its state
        self._count = 0  # sampleable entries
        self._back = torch.arange(k, -1, -1, device=self.device)  # j = k..0: oldest frame first
        # A generator of its own keeps sampling reproducible and independent of the policy noise.
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)

    @property
    def _fields(self) -> tuple[str, ...]:
        """The per-entry stores this buffer saves (the state only where it has one)."""
        return (*_ENTRY_FIELDS, _STATE_FIELD) if self.state_dim else _ENTRY_FIELDS

    def __len__(self) -> int:
        """Transitions that can be sampled now."""
        return self._count

    @property
    def nbytes(self) -> int:
        """Bytes of everything the buffer holds, device stores and host bookkeeping alike."""
        tensors = (*(getattr(self, f) for f in self._fields), self.valid, self._cum)
        arrays = (self._age, self._valid, self.written, self.open, self._last, self._last_state)
        return sum(t.nelement() * t.element_size() for t in tensors) + sum(a.nbytes for a in arrays)

    # ----------------------------------------------------------------------------- add
    def add(
        self,
        obs: np.ndarray | Mapping[str, np.ndarray],
        action: np.ndarray,
        reward: np.ndarray,
        next_obs: np.ndarray | Mapping[str, np.ndarray],
        terminated: np.ndarray,
        done: np.ndarray | None = None,
    ) -> None:
        """One vector step, row i from env i. `next_obs` is the true next observation (the last
        one where the episode ended); `done` (terminated or truncated) marks the envs whose next
        add begins a new episode, None meaning none did. With state_dim > 0, obs and next_obs are
        dicts {"pixels": uint8 (num_envs, k*C, H, W), "state": float (num_envs, state_dim)}."""
        n, k, c = self.num_envs, self.frame_stack, self.frame_shape[0]
        pixels, obs_state = self._split(obs, "obs")
        next_pixels, next_state = self._split(next_obs, "next_obs")
        action = np.asarray(action, dtype=np.float32)
        if action.size != n * self.act_dim:
            raise ValueError(f"action must have shape {(n, self.act_dim)}, got {action.shape}")
        action = action.reshape(n, self.act_dim)
        reward = np.asarray(reward, dtype=np.float32).reshape(-1)
        terminated = np.asarray(terminated, dtype=np.float32).reshape(-1)
        ended = np.zeros(n, bool) if done is None else np.asarray(done, dtype=bool).reshape(-1)
        if not (len(reward) == len(terminated) == len(ended) == n):
            raise ValueError(f"reward, terminated and done need one value per env ({n})")
        self._check_stacks(pixels, next_pixels)
        self._check_states(obs_state)

        rows: list[int] = []  # entries written, in order
        ages: list[int] = []
        frames: list[np.ndarray] = []
        states: list[np.ndarray] = []  # the state at each written frame
        touched: list[np.ndarray] = []  # entries whose validity may have changed
        for i in range(n):
            if self.open[i]:
                age = min(int(self._age[i, (self.written[i] - 1) % self.ring]) + 1, k)
            else:  # a new episode: its reset frame first
                rows.append(self._write(i, 0, touched))
                ages.append(0)
                frames.append(pixels[i, -c:])
                states.append(obs_state[i])
                age = 1
            rows.append(self._write(i, age, touched))
            ages.append(age)
            frames.append(next_pixels[i, -c:])
            states.append(next_state[i])
        self.open = ~ended
        self._last[:] = next_pixels
        self._last_state[:] = next_state

        # Rows with age 0 get zero action/reward/terminated: they end no transition.
        transition = np.asarray(ages) > 0
        step = np.cumsum(transition) - 1  # the env row each transition entry came from
        act = np.zeros((len(rows), self.act_dim), np.float32)
        rew = np.zeros(len(rows), np.float32)
        term = np.zeros(len(rows), np.float32)
        act[transition], rew[transition], term[transition] = (
            action[step[transition]],
            reward[step[transition]],
            terminated[step[transition]],
        )
        idx = self._to_device(np.asarray(rows, np.int64))
        self.frames.index_copy_(0, idx, self._to_device(np.stack(frames)))
        self.age.index_copy_(0, idx, self._to_device(np.asarray(ages, np.uint8)))
        self.action.index_copy_(0, idx, self._to_device(act))
        self.reward.index_copy_(0, idx, self._to_device(rew))
        self.terminated.index_copy_(0, idx, self._to_device(term))
        if self.state_dim:
            self.state.index_copy_(0, idx, self._to_device(np.stack(states)))
        # The final host validity of every entry touched, so the order of the writes above
        # cannot matter (with ring = k + 1 a write can drop an entry written earlier this add).
        changed = np.unique(np.concatenate(touched))
        self.valid[self._to_device(changed)] = self._to_device(self._valid.reshape(-1)[changed])
        self._cum_stale = True

    def _write(self, i: int, age: int, touched: list[np.ndarray]) -> int:
        """Book one entry of env i with `age` on the host; its flat row."""
        w, ring, k = int(self.written[i]), self.ring, self.frame_stack
        if w >= ring:  # the ring is full: the entry m after the head is dropped if its age is m
            m = np.arange(1, k + 1)
            slots = (w + m) % ring
            dropped = slots[(self._age[i, slots] == m) & self._valid[i, slots]]
            self._valid[i, dropped] = False
            self._count -= len(dropped)
            touched.append(i * ring + dropped)
            # The overwritten entry was the oldest, which no stack can complete: never valid.
        s = w % ring
        self._age[i, s] = age
        self._valid[i, s] = age > 0  # its episode's earlier frames are all newer than the head
        self._count += age > 0
        self.written[i] = w + 1
        touched.append(np.asarray([i * ring + s]))
        return i * ring + s

    def _split(
        self, x: np.ndarray | Mapping[str, np.ndarray], name: str
    ) -> tuple[np.ndarray, np.ndarray]:
        """An observation's checked pixels and its state as float32 ((num_envs, 0) without)."""
        n, d = self.num_envs, self.state_dim
        if d == 0:
            if isinstance(x, Mapping):
                raise ValueError(
                    f"{name} is a dict but this frame buffer has state_dim=0: pass the uint8 "
                    "frame stacks (or build the buffer with state_dim)"
                )
            pixels, state = np.asarray(x), np.zeros((n, 0), np.float32)
        else:
            if not isinstance(x, Mapping) or set(x) != _OBS_KEYS:
                got = sorted(map(str, x)) if isinstance(x, Mapping) else type(x).__name__
                raise ValueError(
                    f"{name} must be a dict with exactly the keys 'pixels' and 'state' "
                    f"(state_dim={d}), got {got}"
                )
            pixels, state = np.asarray(x[PIXELS]), np.asarray(x[STATE])
            if not np.issubdtype(state.dtype, np.floating) or state.shape != (n, d):
                raise ValueError(
                    f"{name}['state'] must be floats of shape {(n, d)}, "
                    f"got {state.dtype} {state.shape}"
                )
            state = state.astype(np.float32, copy=False)
        if pixels.dtype != np.uint8 or pixels.shape != (n, *self.obs_shape):
            what = f"{name}['pixels']" if d else name
            raise ValueError(
                f"{what} must be uint8 of shape {(n, *self.obs_shape)}, "
                f"got {pixels.dtype} {pixels.shape}"
            )
        return pixels, state

    def _check_states(self, obs_state: np.ndarray) -> None:
        """A continuing episode's obs state must be the previous next_obs's, as its pixels."""
        if not self.state_dim:
            return
        for i in np.flatnonzero(self.open):
            # compared as stored (float32); a NaN state is still the same state
            if not np.array_equal(obs_state[i], self._last_state[i], equal_nan=True):
                raise ValueError(
                    f"obs['state'] of env {i} is not its previous next_obs['state']: pass "
                    "done=True for the step that ended its episode (or call restart_episodes)"
                )

    def _check_stacks(self, obs: np.ndarray, next_obs: np.ndarray) -> None:
        """The stacks this buffer rebuilds must be the ones the envs gave (see module doc)."""
        c = self.frame_shape[0]
        for i in range(self.num_envs):
            if self.open[i]:
                if not np.array_equal(obs[i], self._last[i]):
                    raise ValueError(
                        f"obs of env {i} is not its previous next_obs: pass done=True for the "
                        "step that ended its episode (or call restart_episodes)"
                    )
            elif not (obs[i, :-c] == obs[i, c:]).all():
                raise ValueError(
                    f"env {i} begins an episode but its obs is not a reset stack (one frame "
                    f"repeated {self.frame_stack} times, FrameStackObservation padding 'reset')"
                )
        if not np.array_equal(next_obs[:, :-c], obs[:, c:]):
            raise ValueError("next_obs must be obs shifted by one frame (a frame stack)")

    def _to_device(self, x: np.ndarray) -> Tensor:
        return torch.from_numpy(np.ascontiguousarray(x)).to(self.device)

    def restart_episodes(self) -> None:
        """The envs start new episodes at the next add (a resume: the runner resets them); the
        stored entries of the episodes in progress stay sampleable, each is a whole transition."""
        self.open[:] = False

    # ----------------------------------------------------------------------------- sample
    def sample(self, batch_size: int, num_batches: int | None = None) -> Batch:
        """Uniform over the sampleable transitions, with replacement, drawn on the device; with
        `num_batches` = K, K batches stacked, each field (K, batch_size, ...). With state_dim > 0,
        obs and next_obs are dicts {"pixels": uint8 (..., k*C, H, W), "state": float32 (...,
        state_dim)}."""
        if self._count == 0:
            raise RuntimeError("cannot sample from an empty frame replay buffer")
        if self._cum_stale:
            torch.cumsum(self.valid, 0, out=self._cum)
            self._cum_stale = False
        n = batch_size * (num_batches or 1)
        u = torch.randint(0, self._count, (n,), device=self.device, generator=self.generator)
        rows = torch.searchsorted(self._cum, u, right=True)
        pixels, next_pixels, idx = self._stacks(rows)
        obs: Tensor | dict[str, Tensor] = pixels
        next_obs: Tensor | dict[str, Tensor] = next_pixels
        if self.state_dim:
            # the states at obs's newest frame (the entry before the row) and at next_obs's
            obs = {PIXELS: pixels, STATE: self.state.index_select(0, idx[:, -2])}
            next_obs = {PIXELS: next_pixels, STATE: self.state.index_select(0, rows)}
        fields = [
            obs,
            self.action.index_select(0, rows),
            self.reward.index_select(0, rows),
            next_obs,
            self.terminated.index_select(0, rows),
        ]
        if num_batches is not None:
            fields = [_split_batches(x, num_batches, batch_size) for x in fields]
        return Batch(*fields)

    def _stacks(self, rows: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """obs and next_obs (uint8, (len(rows), k*C, H, W)) of the transitions ending at rows,
        and the rows of their k + 1 frames (len(rows), k + 1), oldest first."""
        k, ring = self.frame_stack, self.ring
        slot = rows % ring
        back = torch.minimum(self._back, self.age.index_select(0, rows).long()[:, None])
        idx = (rows - slot)[:, None] + (slot[:, None] - back) % ring  # (n, k + 1)
        frame = self.frames[0].numel()
        frames = self.frames.index_select(0, idx.reshape(-1)).view(len(rows), k + 1, frame)
        shape = (len(rows), *self.obs_shape)
        # contiguous, as ReplayBuffer's fields are (compiled updates guard on strides)
        obs = frames[:, :k].reshape(shape).contiguous()
        return obs, frames[:, 1:].reshape(shape).contiguous(), idx

    # ----------------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """The filled slots of each ring (ring 0 first, slot order kept, so sampling resumes
        exactly), the write counts, the open episodes and the sampler's RNG state. The validity
        mask and the previous next_obs are rebuilt from these on load. "state" is saved only
        with state_dim > 0 (a state-less buffer's keys are as they always were)."""
        rows = self._filled_rows()
        # Full rings on the CPU are saved as they are: their filled rows are all rows, in
        # order, and a copy would double the largest thing in memory while it is written.
        whole = bool((self.written >= self.ring).all()) and self.device.type == "cpu"
        return {
            "capacity": self.capacity,
            "num_envs": self.num_envs,
            "frame_stack": self.frame_stack,
            **{
                name: getattr(self, name) if whole else getattr(self, name)[rows].cpu()
                for name in self._fields
            },
            "written": torch.from_numpy(self.written.copy()),
            "open": torch.from_numpy(self.open.copy()),
            "generator": self.generator.get_state(),
        }

    def _filled_rows(self) -> Tensor:
        filled = np.minimum(self.written, self.ring)
        rows = [np.arange(f) + i * self.ring for i, f in enumerate(filled)]
        return self._to_device(np.concatenate(rows).astype(np.int64))

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from `state_dict` exactly: sample() and add() go on as the saved buffer's
        would. The capacity, env count, frame stack, shapes and state_dim must match."""
        problem = self.state_problem(state)
        if problem:
            raise ValueError(f"saved frame buffer: {problem}")
        for key in ("capacity", "num_envs", "frame_stack"):
            if state[key] != getattr(self, key):
                raise ValueError(
                    f"saved frame buffer has {key} {state[key]}, this one {getattr(self, key)}"
                )
        if tuple(state["frames"].shape[1:]) != self.frame_shape:
            raise ValueError(
                f"saved frame buffer has frames {tuple(state['frames'].shape[1:])}, "
                f"this buffer's {self.frame_shape}"
            )
        if state["action"].shape[1] != self.act_dim:
            raise ValueError(
                f"saved frame buffer has {state['action'].shape[1]} action dims, "
                f"this one {self.act_dim}"
            )
        saved_dim = state[_STATE_FIELD].shape[1] if _STATE_FIELD in state else 0
        if saved_dim != self.state_dim:
            raise ValueError(
                f"saved frame buffer has state_dim {saved_dim} (0: pixels only), "
                f"this one {self.state_dim}"
            )
        self.written = state["written"].cpu().numpy().astype(np.int64)
        self.open = state["open"].cpu().numpy().astype(bool)
        rows = self._filled_rows()
        for name in self._fields:
            getattr(self, name)[rows] = state[name].to(self.device)
        self._age[:] = 0
        self._age.reshape(-1)[rows.cpu().numpy()] = state["age"].cpu().numpy()
        self._valid = _validity(self._age, self.written, self.frame_stack)
        self._count = int(self._valid.sum())
        self.valid.copy_(torch.from_numpy(self._valid.reshape(-1)))
        self._cum_stale = True
        newest = torch.as_tensor(
            np.arange(self.num_envs) * self.ring + (self.written - 1) % self.ring,
            device=self.device,
        )
        self._last[:] = self._stacks(newest)[1].cpu().numpy()  # rows of unused envs: unused
        self._last_state[:] = self.state.index_select(0, newest).cpu().numpy()
        saved_rng = state["generator"].cpu()
        if saved_rng.numel() == self.generator.get_state().numel():
            self.generator.set_state(saved_rng)
        else:  # saved by a generator of another device type (e.g. resuming a CUDA run on CPU)
            self.generator.manual_seed(int(self.written.sum()) * 1_000_003 + self._count)

    @staticmethod
    def state_problem(state: Any) -> str | None:
        """What is wrong with the structure of a saved `state_dict` (keys, types, shapes,
        integer ranges, each ring's ages counting up from its episodes' resets, the optional
        "state"), or None. For untrusted checkpoints: it never raises."""
        try:
            return _state_problem(state)
        except Exception as e:  # a crafted object can fail in ways no check foresaw
            return f"is not a frame buffer's state ({type(e).__name__})"


def _split_batches(
    x: Tensor | dict[str, Tensor], num_batches: int, batch_size: int
) -> Tensor | dict[str, Tensor]:
    """A field of num_batches * batch_size rows as (num_batches, batch_size, ...)."""
    if isinstance(x, dict):
        return {key: v.view(num_batches, batch_size, *v.shape[1:]) for key, v in x.items()}
    return x.view(num_batches, batch_size, *x.shape[1:])


def _validity(age: np.ndarray, written: np.ndarray, k: int) -> np.ndarray:
    """Which entries can be sampled, from their capped ages and the rings' write counts: an
    age >= 1 and no more than the number of entries older than it in its ring."""
    ring = age.shape[1]
    slot = np.arange(ring)[None, :]
    w = written[:, None]
    full = w >= ring
    older = np.where(full, (slot - w) % ring, slot)  # entries before it still in the ring
    stored = full | (slot < w)
    return stored & (age >= 1) & (np.minimum(age, k) <= older)


def _state_problem(state: Any) -> str | None:
    if not isinstance(state, dict):
        return "is not a dictionary"
    for key in ("capacity", "num_envs", "frame_stack"):
        if type(state.get(key)) is not int or state[key] < 1:
            return f"{key} is missing or not an integer >= 1"
    capacity, n, k = state["capacity"], state["num_envs"], state["frame_stack"]
    if capacity % n or capacity // n < k + 1 or k > 255:
        return f"capacity {capacity} does not give {n} envs rings of >= frame_stack + 1 frames"
    ring = capacity // n
    dtypes = {
        "frames": (torch.uint8, 4),
        "age": (torch.uint8, 1),
        "action": (torch.float32, 2),
        "reward": (torch.float32, 1),
        "terminated": (torch.float32, 1),
        "written": (torch.int64, 1),
        "open": (torch.bool, 1),
        "generator": (torch.uint8, 1),
    }
    for key, (dtype, ndim) in dtypes.items():
        x = state.get(key)
        if not isinstance(x, Tensor) or x.dtype != dtype or x.ndim != ndim:
            return f"{key} is missing or not a {ndim}-d {dtype} tensor"
    if len(state["written"]) != n or len(state["open"]) != n:
        return f"written and open must hold num_envs={n} values"
    written = state["written"].cpu().numpy()
    if (written < 0).any():
        return "written holds a negative count"
    if (state["open"].cpu().numpy() & (written == 0)).any():
        return "an env with no frames has an episode open"
    filled = np.minimum(written, ring)
    size = int(filled.sum())
    fields = _ENTRY_FIELDS
    if _STATE_FIELD in state:  # saved by a buffer with state_dim > 0
        x = state[_STATE_FIELD]
        if not isinstance(x, Tensor) or x.dtype != torch.float32 or x.ndim != 2:
            return f"{_STATE_FIELD} is not a 2-d {torch.float32} tensor"
        if x.shape[1] < 1:
            return f"{_STATE_FIELD} has no columns (a buffer without a state saves none)"
        fields = (*fields, _STATE_FIELD)
    for key in fields:
        if len(state[key]) != size:
            return f"{key} does not hold the {size} filled entries that written says"
    if min(state["frames"].shape[1:]) < 1:
        return "frames have an empty dimension"
    term = state["terminated"]
    if not ((term == 0) | (term == 1)).all():
        return "terminated holds values other than 0 and 1"
    age = state["age"].cpu().numpy()
    if (age > k).any():
        return f"age holds values above frame_stack={k}"
    start = 0
    for i, (w, f) in enumerate(zip(written.tolist(), filled.tolist())):
        # Oldest first: write w - f .. w - 1 is at slot (write % ring) of the env's rows.
        ages = age[start : start + f][(np.arange(w - f, w) % ring)] if f else age[:0]
        start += f
        if w == f and f and ages[0] != 0:
            return f"env {i}'s first entry is not an episode's reset frame (age 0)"
        up = np.minimum(ages[:-1].astype(np.int64) + 1, k)
        if ((ages[1:] != 0) & (ages[1:] != up)).any():
            return f"env {i}'s ages do not count up from its episodes' resets"
    return None
