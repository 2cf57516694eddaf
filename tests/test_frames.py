"""FrameReplayBuffer: frame stacks rebuilt exactly, never across episodes; memory; state; len."""

from __future__ import annotations

import logging
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.wrappers import FrameStackObservation

from sac.frames import FrameReplayBuffer

C, H, W = 3, 8, 8
A = 2

DEVICES = [
    "cpu",
    pytest.param(
        "cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
    ),
]


class PixelEnv(gym.Env):
    """(C, H, W) uint8 frames that encode where they come from: pixel [0, 0, 0] is the episode,
    [0, 0, 1] the step, [0, 0, 2] the env, the rest a pattern of all three. Episode e lasts
    lengths[e % len(lengths)] steps and is truncated where e % 3 == 2, else terminated."""

    def __init__(self, env_id: int, lengths: list[int]) -> None:
        self.observation_space = gym.spaces.Box(0, 255, (C, H, W), np.uint8)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (A,), np.float32)
        self.env_id, self.lengths = env_id, lengths
        self.episode, self.t = -1, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.episode += 1
        self.t = 0
        return self._frame(), {}

    def step(self, action):
        self.t += 1
        end = self.t >= self.lengths[self.episode % len(self.lengths)]
        terminated = end and self.episode % 3 != 2
        return self._frame(), 0.0, terminated, end and not terminated, {}

    def _frame(self) -> np.ndarray:
        pattern = np.arange(C * H * W).reshape(C, H, W)
        f = (pattern + 7 * self.episode + 3 * self.t + 50 * self.env_id) % 256
        f[0, 0, :3] = (self.episode % 256, self.t % 256, self.env_id)
        return f.astype(np.uint8)


def state_vector(env: int, episode: int, t: int, dim: int) -> np.ndarray:
    """An env's state (float64, as MuJoCo's) at step t of an episode: (env, episode, t, then
    fractions that tell the columns apart), so a state shows which frame it belongs to."""
    return np.array([env, episode, t, *(t + 0.125 * np.arange(1, dim - 2))], np.float64)[:dim]


class Driver:
    """num_envs FrameStackObservation(padding_type="reset") envs stepped as a trainer does, each
    transition recorded with a unique id (its reward, action [id, -id]), the stacks the env gave,
    and which of its env's frame writes it shows (for the reference of what can be sampled).
    With state_dim > 0 observations are {"pixels": the stack, "state": state_vector at its
    newest frame}, as the pixels-beside-the-state envs give them."""

    def __init__(self, k: int, lengths: list[list[int]], state_dim: int = 0) -> None:
        self.k, self.state_dim = k, state_dim
        self.envs = [
            FrameStackObservation(PixelEnv(i, ls), k, padding_type="reset")
            for i, ls in enumerate(lengths)
        ]
        self.n = len(self.envs)
        self.obs = np.stack([self._reset(i) for i in range(self.n)])
        self.state = self._states()
        self.new = np.ones(self.n, bool)  # the next step begins an episode
        self.writes = np.zeros(self.n, np.int64)  # frames the buffer has of each env
        self.start = np.zeros(self.n, np.int64)  # the write number of each episode's reset frame
        self.transitions: dict[int, dict[str, Any]] = {}

    def _reset(self, i: int) -> np.ndarray:
        return self.envs[i].reset()[0].reshape(-1, H, W)

    def _states(self) -> np.ndarray:
        """Each env's state now (at its newest frame): (n, state_dim) float64."""
        envs = [e.unwrapped for e in self.envs]
        return np.stack([state_vector(e.env_id, e.episode, e.t, self.state_dim) for e in envs])

    def _obs(self, pixels: np.ndarray, state: np.ndarray) -> Any:
        return {"pixels": pixels, "state": state} if self.state_dim else pixels

    def step(self, buf: FrameReplayBuffer) -> None:
        rows = []
        for i, env in enumerate(self.envs):
            if self.new[i]:
                self.start[i] = self.writes[i]
                self.writes[i] += 1  # the reset frame
            tid = len(self.transitions)
            action = np.array([tid, -tid], np.float32)
            frame, _, term, trunc, _ = env.step(action)
            next_obs = frame.reshape(-1, H, W)
            e = env.unwrapped
            next_state = state_vector(e.env_id, e.episode, e.t, self.state_dim)
            end = self.writes[i]
            self.writes[i] += 1
            self.transitions[tid] = {
                "env": i,
                "obs": self.obs[i].copy(),
                "obs_state": self.state[i].copy(),
                "action": action,
                "next_obs": next_obs,
                "next_state": next_state,
                "truncated": bool(trunc),
                "terminated": float(term),
                # the frames its stacks show: back to the reset frame, or k before its newest
                "first": max(int(self.start[i]), end - self.k),
            }
            rows.append(
                (self.obs[i], action, float(tid), next_obs, float(term), term or trunc, next_state)
            )
        obs, action, reward, next_obs, term, done, next_state = (np.array(x) for x in zip(*rows))
        buf.add(
            self._obs(obs, self.state), action, reward, self._obs(next_obs, next_state), term, done
        )
        self.new = done.copy()
        self.obs = np.stack([self._reset(i) if done[i] else next_obs[i] for i in range(self.n)])
        self.state = self._states()  # the reset state where an episode ended

    def restart(self, buf: FrameReplayBuffer) -> None:
        """A resume: every env begins a new episode."""
        buf.restart_episodes()
        self.obs = np.stack([self._reset(i) for i in range(self.n)])
        self.state = self._states()
        self.new[:] = True

    def sampleable(self, ring: int) -> set[int]:
        """Transitions whose frames are all among their env's newest `ring` frame writes."""
        return {
            tid for tid, t in self.transitions.items() if t["first"] >= self.writes[t["env"]] - ring
        }


LENGTHS = [[1, 2, 5, 1, 7], [3, 1, 4, 2, 9, 1], [2, 2, 1, 6, 3]]  # 1-step and < k episodes


def check_batch(batch, driver: Driver, allowed: set[int]) -> list[int]:
    """Every sampled row is a sampleable transition, field for field as the env gave it (the
    states too where the driver gives them)."""
    reward = batch.reward.cpu()
    ids = [int(r) for r in reward]
    assert torch.equal(reward, torch.tensor(ids, dtype=torch.float32))
    assert set(ids) <= allowed
    if driver.state_dim:
        check_states(batch, driver, ids)
        batch = batch._replace(obs=batch.obs["pixels"], next_obs=batch.next_obs["pixels"])
    obs, next_obs = batch.obs.cpu().numpy(), batch.next_obs.cpu().numpy()
    action, term = batch.action.cpu().numpy(), batch.terminated.cpu().numpy()
    for row, tid in enumerate(ids):
        t = driver.transitions[tid]
        np.testing.assert_array_equal(obs[row], t["obs"])
        np.testing.assert_array_equal(next_obs[row], t["next_obs"])
        np.testing.assert_array_equal(action[row], t["action"])
        assert term[row] == t["terminated"]
        # straight from the pixels: one episode, steps counting up, padded with the reset frame
        pix = np.concatenate([obs[row], next_obs[row][-C:]]).reshape(-1, C, H, W)[:, 0, 0, :3]
        assert (pix[:, 0] == pix[-1, 0]).all() and (pix[:, 2] == t["env"]).all()
        steps = pix[:, 1].astype(int)
        assert (steps == np.maximum(steps[-1] - np.arange(driver.k, -1, -1), 0)).all()
    return ids


def check_states(batch, driver: Driver, ids: list[int]) -> None:
    """obs's state is the env's at obs's newest frame, next_obs's at next_obs's: as recorded,
    and as the frames themselves say (pixel [0, 0, :3] is episode, step, env)."""
    d = driver.state_dim
    assert set(batch.obs) == set(batch.next_obs) == {"pixels", "state"}
    for o in (batch.obs, batch.next_obs):
        assert o["state"].dtype == torch.float32 and o["state"].shape == (len(ids), d)
        assert o["pixels"].dtype == torch.uint8 and o["state"].is_contiguous()
    state, next_state = batch.obs["state"].cpu().numpy(), batch.next_obs["state"].cpu().numpy()
    # channel 0 of the newest frame, row 0, its first three pixels
    newest = batch.obs["pixels"].cpu().numpy()[:, -C, 0, :3].astype(int)
    next_newest = batch.next_obs["pixels"].cpu().numpy()[:, -C, 0, :3].astype(int)
    for row, tid in enumerate(ids):
        t = driver.transitions[tid]
        np.testing.assert_array_equal(state[row], t["obs_state"].astype(np.float32))
        np.testing.assert_array_equal(next_state[row], t["next_state"].astype(np.float32))
        for s, pix in ((state[row], newest[row]), (next_state[row], next_newest[row])):
            env, episode, step = (int(v) for v in s[:3])
            assert (episode % 256, step % 256, env) == tuple(pix)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("k, ring", [(3, 12), (1, 5), (4, 5)])  # (4, 5): the least ring for k
def test_stacks_equal_the_envs_and_never_cross_episodes_while_wrapping(device, k, ring):
    driver = Driver(k, LENGTHS)
    buf = FrameReplayBuffer(ring * 3, (k * C, H, W), k, A, num_envs=3, device=device, seed=1)
    for step in range(300):  # each ring wraps 30 times or more
        driver.step(buf)
        allowed = driver.sampleable(ring)
        assert len(buf) == len(allowed)
        if step % 5 == 0:
            batch = buf.sample(64)
            assert batch.obs.dtype == batch.next_obs.dtype == torch.uint8
            assert batch.obs.device.type == torch.device(device).type
            check_batch(batch, driver, allowed)
    assert driver.writes.min() > 30 * ring
    # every sampleable transition is drawn, about equally often (uniform)
    ids = check_batch(buf.sample(4000), driver, allowed)
    counts = np.bincount(ids)[sorted(allowed)]
    assert set(ids) == allowed
    assert counts.min() > 0.5 * counts.mean() and counts.max() < 1.5 * counts.mean()


def test_len_counts_only_sampleable_transitions():
    """Worked by hand, frame_stack 3 and rings of 4 frames (the least that works)."""
    k = 3
    long = Driver(k, [[1000]])
    buf = FrameReplayBuffer(4, (k * C, H, W), k, A, num_envs=1, device="cpu")
    assert len(buf) == 0
    lens = []
    for _ in range(6):
        long.step(buf)
        lens.append(len(buf))
    # frames: reset + 1 (one transition), +1, +1 (ring full: 3), then each write overwrites the
    # oldest and only the newest transition keeps all k + 1 of its frames
    assert lens == [1, 2, 3, 1, 1, 1]
    check_batch(buf.sample(50), long, long.sampleable(4))

    short = Driver(k, [[1]])  # 1-step episodes: (reset, final) pairs, each whole on its own
    buf = FrameReplayBuffer(4, (k * C, H, W), k, A, num_envs=1, device="cpu")
    lens = []
    for _ in range(5):
        short.step(buf)
        lens.append(len(buf))
    assert lens == [1, 2, 2, 2, 2]
    check_batch(buf.sample(50), short, short.sampleable(4))


def test_rewards_actions_terminated_line_up_in_stacked_batches():
    k = 2
    driver = Driver(k, LENGTHS)
    buf = FrameReplayBuffer(30, (k * C, H, W), k, A, num_envs=3, device="cpu", seed=3)
    for _ in range(40):
        driver.step(buf)
    b = buf.sample(16, 5)
    assert b.obs.shape == b.next_obs.shape == (5, 16, k * C, H, W)
    assert b.action.shape == (5, 16, A) and b.reward.shape == b.terminated.shape == (5, 16)
    assert b.action.dtype == b.reward.dtype == b.terminated.dtype == torch.float32
    torch.testing.assert_close(b.action[..., 0], b.reward)
    torch.testing.assert_close(b.action[..., 1], -b.reward)
    flat = type(b)(*(x.reshape(80, *x.shape[2:]) for x in b))
    check_batch(flat, driver, driver.sampleable(10))
    assert {driver.transitions[int(r)]["terminated"] for r in b.reward.reshape(-1)} == {0.0, 1.0}


def test_memory_is_the_frames_once_plus_small_metadata():
    k, capacity = 4, 120
    buf = FrameReplayBuffer(capacity, (k * C, H, W), k, A, num_envs=3, device="cpu")
    assert buf.frames.dtype == torch.uint8 and buf.frames.shape == (capacity, C, H, W)
    frame_bytes = capacity * C * H * W
    per_entry = 4 * A + 4 + 4 + 1 + 1 + 8 + 1 + 1  # action, reward, terminated, age, valid,
    # their cumulative count, and the host's age and valid
    per_env = 8 + 1 + k * C * H * W  # write count, open flag, previous next_obs
    assert buf.nbytes == frame_bytes + capacity * per_entry + 3 * per_env
    assert buf.nbytes < 1.25 * frame_bytes  # at 3x8x8 frames; far less at real frame sizes
    # a flat buffer of stacks would hold each frame 2k times
    assert 2 * k * frame_bytes > 6 * buf.nbytes


def test_capacity_is_split_evenly_over_the_envs(caplog):
    with caplog.at_level(logging.INFO, logger="sac"):
        buf = FrameReplayBuffer(50, (2 * C, H, W), 2, A, num_envs=3, device="cpu")
    assert buf.capacity == 48 and buf.ring == 16 and len(buf.frames) == 48
    assert "rounded down" in caplog.text
    with pytest.raises(ValueError, match="at least 4 per env"):
        FrameReplayBuffer(9, (3 * C, H, W), 3, A, num_envs=3, device="cpu")
    with pytest.raises(ValueError, match="obs_shape"):
        FrameReplayBuffer(30, (8, H, W), 3, A, num_envs=1, device="cpu")


def test_add_refuses_bad_input_and_broken_episodes():
    k = 3
    driver = Driver(k, [[4], [4]])
    buf = FrameReplayBuffer(20, (k * C, H, W), k, A, num_envs=2, device="cpu")
    obs = driver.obs
    act, zeros = np.zeros((2, A)), np.zeros(2)
    with pytest.raises(ValueError, match="uint8"):
        buf.add(obs.astype(np.float32), act, zeros, obs, zeros)
    with pytest.raises(ValueError, match="shape"):
        buf.add(obs[:1], act[:1], zeros[:1], obs[:1], zeros[:1])
    with pytest.raises(ValueError, match="action"):
        buf.add(obs, np.zeros((2, A + 1)), zeros, obs, zeros)
    with pytest.raises(ValueError, match="shifted"):
        buf.add(obs, act, zeros, obs + 1, zeros)  # next_obs's older frames are not obs's
    not_reset = obs.copy()
    not_reset[1, :C] += 1
    with pytest.raises(ValueError, match="reset stack"):
        buf.add(not_reset, act, zeros, not_reset, zeros)
    assert len(buf) == 0 and buf.written.sum() == 0  # nothing of a refused step is kept
    driver.step(buf)
    driver.step(buf)
    stale = driver.obs.copy()
    driver.step(buf)
    with pytest.raises(ValueError, match="previous next_obs"):  # e.g. a done forgotten
        buf.add(stale, act, zeros, np.concatenate([stale[:, C:], stale[:, -C:]], 1), zeros)


def _filled(k: int, ring: int, steps: int, seed: int = 0, state_dim: int = 0):
    driver = Driver(k, LENGTHS, state_dim)
    buf = FrameReplayBuffer(
        3 * ring, (k * C, H, W), k, A, num_envs=3, device="cpu", seed=seed, state_dim=state_dim
    )
    for _ in range(steps):
        driver.step(buf)
    if steps:
        buf.sample(8)  # the generator has moved on
    return driver, buf


def _tensors(batch) -> list[torch.Tensor]:
    """A batch's tensors, an observation dict's by key."""
    return [
        t for x in batch for t in ([x[key] for key in sorted(x)] if isinstance(x, dict) else [x])
    ]


def _same_batches(a: FrameReplayBuffer, b: FrameReplayBuffer) -> None:
    x, y = _tensors(a.sample(32, 2)), _tensors(b.sample(32, 2))
    assert len(x) == len(y) == 5 + 2 * bool(a.state_dim)
    for u, v in zip(x, y):
        assert torch.equal(u, v)


@pytest.mark.parametrize("steps", [0, 3, 200], ids=["empty", "partly-filled", "wrapped"])
def test_state_dict_restores_exactly(steps):
    k, ring = 3, 16
    driver, buf = _filled(k, ring, steps)
    state = buf.state_dict()
    assert FrameReplayBuffer.state_problem(state) is None
    stored = int(np.minimum(buf.written, ring).sum())
    assert len(state["frames"]) == stored and state["frames"].dtype == torch.uint8  # compact
    other = FrameReplayBuffer(3 * ring, (k * C, H, W), k, A, num_envs=3, device="cpu", seed=9)
    junk = Driver(k, LENGTHS)
    for _ in range(5):  # something to overwrite
        junk.step(other)
    other.load_state_dict(state)
    assert len(other) == len(buf)
    assert torch.equal(other.valid, buf.valid)
    if steps:
        _same_batches(buf, other)
    twin = _clone_driver(driver)
    for _ in range(40):  # further adds, the episodes in progress continuing
        driver.step(buf)
        twin.step(other)
        assert len(other) == len(buf)
        _same_batches(buf, other)
    check_batch(other.sample(200), twin, twin.sampleable(ring))


def test_a_full_cpu_buffer_is_saved_without_a_copy_of_its_frames():
    """Written as they are: a copy would double the largest thing in memory at each
    checkpoint. A partly filled buffer's state holds only its filled rows."""
    _, full = _filled(3, 16, 200)
    assert full.state_dict()["frames"].data_ptr() == full.frames.data_ptr()
    _, partly = _filled(3, 16, 3)
    assert partly.state_dict()["frames"].data_ptr() != partly.frames.data_ptr()


def _clone_driver(driver: Driver) -> Driver:
    """A driver in the same state (the envs' progress included), stepping a second buffer."""
    import copy

    return copy.deepcopy(driver)


def test_restart_episodes_keeps_the_stored_transitions_and_starts_anew():
    k, ring = 3, 16
    driver, buf = _filled(k, ring, 11)
    assert buf.open.any()
    fresh = FrameReplayBuffer(3 * ring, (k * C, H, W), k, A, num_envs=3, device="cpu")
    fresh.load_state_dict(buf.state_dict())
    before = len(fresh)
    # a continuing obs is refused now: the resumed envs begin new episodes
    stale_driver = _clone_driver(driver)
    fresh.restart_episodes()
    with pytest.raises(ValueError, match="reset stack"):
        stale_driver.step(fresh)
    assert len(fresh) == before  # the episodes cut short stay sampleable, whole transitions
    driver.restart(fresh)
    driver.step(fresh)
    assert len(fresh) == len(driver.sampleable(ring))
    for _ in range(30):
        driver.step(fresh)
    check_batch(fresh.sample(500), driver, driver.sampleable(ring))


def test_sampling_is_reproducible_by_seed_and_refuses_an_empty_buffer():
    _, a = _filled(2, 10, 30, seed=5)
    _, b = _filled(2, 10, 30, seed=5)
    _same_batches(a, b)
    _, c = _filled(2, 10, 30, seed=6)
    assert not torch.equal(a.sample(64).reward, c.sample(64).reward)
    with pytest.raises(RuntimeError, match="empty"):
        FrameReplayBuffer(10, (2 * C, H, W), 2, A, num_envs=1, device="cpu").sample(4)


def _without(state: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in state.items() if k != key}


def _aged(state: dict[str, Any], change: str) -> torch.Tensor:
    age = state["age"].clone()
    if change == "above k":
        age[5] = 4
    else:  # an age 2 made 3: it no longer follows its predecessor's age 1
        age[int(torch.nonzero(age == 2)[0])] = 3
    return age


def _emptied(state: dict[str, Any]) -> dict[str, Any]:
    fields = ("frames", "age", "action", "reward", "terminated")
    return {**state, **{f: state[f][:0] for f in fields}, "written": torch.zeros(3).long()}


# name: (damage done to a real state of 3 envs, frame_stack 3, rings of 8; what the phrase names)
DAMAGES = {
    "not a dict": (lambda s: list(s), "dictionary"),
    "missing frames": (lambda s: _without(s, "frames"), "frames"),
    "missing capacity": (lambda s: _without(s, "capacity"), "capacity"),
    "capacity a float": (lambda s: {**s, "capacity": 24.0}, "capacity"),
    "capacity not a multiple": (lambda s: {**s, "capacity": 25}, "capacity"),
    "ring too small": (lambda s: {**s, "capacity": 9}, "capacity"),
    "frames float": (lambda s: {**s, "frames": s["frames"].float()}, "frames"),
    "frames 3-d": (lambda s: {**s, "frames": s["frames"][:, 0]}, "frames"),
    "frames a string": (lambda s: {**s, "frames": "frames"}, "frames"),
    "action float64": (lambda s: {**s, "action": s["action"].double()}, "action"),
    "a reward short": (lambda s: {**s, "reward": s["reward"][:-1]}, "reward"),
    "frames short": (lambda s: {**s, "frames": s["frames"][:-2]}, "frames"),
    "written per env": (lambda s: {**s, "written": torch.zeros(4).long()}, "written"),
    "written negative": (lambda s: {**s, "written": -s["written"]}, "negative"),
    "written and rows": (lambda s: {**s, "written": s["written"].clamp(max=5)}, "written"),
    "age above k": (lambda s: {**s, "age": _aged(s, "above k")}, "above frame_stack"),
    "ages skip": (lambda s: {**s, "age": _aged(s, "skip")}, "count up"),
    "terminated 0.5": (lambda s: {**s, "terminated": s["terminated"] + 0.5}, "terminated"),
    "generator int64": (lambda s: {**s, "generator": s["generator"].long()}, "generator"),
    "open with no frames": (lambda s: {**_emptied(s), "open": torch.ones(3).bool()}, "open"),
}


@pytest.mark.parametrize("steps", [0, 5, 40])
def test_state_problem_accepts_real_states(steps):
    assert FrameReplayBuffer.state_problem(_filled(3, 8, steps)[1].state_dict()) is None


@pytest.mark.parametrize("name", DAMAGES)
def test_state_problem_names_damage_and_load_refuses_it(name):
    state = _filled(3, 8, 40)[1].state_dict()
    damage, phrase = DAMAGES[name]
    damaged = damage(state)
    problem = FrameReplayBuffer.state_problem(damaged)
    assert isinstance(problem, str) and phrase in problem
    buf = FrameReplayBuffer(24, (9, H, W), 3, A, num_envs=3, device="cpu")
    with pytest.raises(ValueError, match="saved frame buffer"):
        buf.load_state_dict(damaged)


@pytest.mark.parametrize("junk", [None, 3, "state", {"capacity": True}, {"frames": object()}])
def test_state_problem_never_raises(junk):
    assert isinstance(FrameReplayBuffer.state_problem(junk), str)


def test_load_refuses_another_buffers_shape():
    state = _filled(3, 8, 10)[1].state_dict()
    for other in (
        FrameReplayBuffer(30, (9, H, W), 3, A, num_envs=3, device="cpu"),  # capacity
        FrameReplayBuffer(24, (9, H, 4), 3, A, num_envs=3, device="cpu"),  # frame shape
        FrameReplayBuffer(24, (9, H, W), 3, A + 1, num_envs=3, device="cpu"),  # actions
    ):
        with pytest.raises(ValueError, match="saved frame"):
            other.load_state_dict(state)


# ----------------------------------------------------------------- pixels beside the state
D = 5  # state_dim: (env, episode, step) and two more columns


def _state_buffer(k: int, ring: int, num_envs: int = 3, **kwargs: Any) -> FrameReplayBuffer:
    shape = (k * C, H, W)
    return FrameReplayBuffer(
        ring * num_envs, shape, k, A, num_envs=num_envs, device="cpu", state_dim=D, **kwargs
    )


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("k, ring", [(3, 12), (1, 5), (4, 5)])
def test_states_are_those_of_their_stacks_newest_frames_across_episodes_and_wraps(device, k, ring):
    driver = Driver(k, LENGTHS, state_dim=D)
    buf = FrameReplayBuffer(
        ring * 3, (k * C, H, W), k, A, num_envs=3, device=device, seed=1, state_dim=D
    )
    seen: set[int] = set()
    for step in range(150):  # each ring wraps 12 times or more
        driver.step(buf)
        allowed = driver.sampleable(ring)
        assert len(buf) == len(allowed)
        if step % 5 == 0:
            batch = buf.sample(64)
            assert batch.obs["state"].device.type == torch.device(device).type
            seen |= set(check_batch(batch, driver, allowed))
    assert driver.writes.min() > 12 * ring
    seen |= set(check_batch(buf.sample(2000), driver, allowed))
    assert allowed <= seen
    # the final transitions of terminated and of truncated episodes (next state: not a reset's)
    ends = [driver.transitions[t] for t in seen]
    assert any(t["terminated"] for t in ends) and any(t["truncated"] for t in ends)


def test_states_in_stacked_batches_and_sampling_as_without_them():
    k = 2
    driver = Driver(k, LENGTHS, state_dim=D)
    buf = _state_buffer(k, 10, seed=3)
    plain_driver = Driver(k, LENGTHS)
    plain = FrameReplayBuffer(30, (k * C, H, W), k, A, num_envs=3, device="cpu", seed=3)
    for _ in range(40):
        driver.step(buf)
        plain_driver.step(plain)
    b, p = buf.sample(16, 5), plain.sample(16, 5)
    assert b.obs["pixels"].shape == b.next_obs["pixels"].shape == (5, 16, k * C, H, W)
    assert b.obs["state"].shape == b.next_obs["state"].shape == (5, 16, D)
    assert b.action.shape == (5, 16, A) and b.reward.shape == b.terminated.shape == (5, 16)
    assert isinstance(p.obs, torch.Tensor) and p.obs.dtype == torch.uint8
    # the state changes nothing else: the same rows, the same stacks
    assert torch.equal(b.reward, p.reward) and torch.equal(b.obs["pixels"], p.obs)
    assert torch.equal(b.next_obs["pixels"], p.next_obs)

    def flat(o: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {key: v.reshape(80, *v.shape[2:]) for key, v in o.items()}

    rest = (x.reshape(80, *x.shape[2:]) for x in (b.action, b.reward, b.terminated))
    action, reward, terminated = rest
    flat_b = type(b)(flat(b.obs), action, reward, flat(b.next_obs), terminated)
    check_batch(flat_b, driver, driver.sampleable(10))


def test_add_refuses_bad_states_and_a_continuing_episodes_changed_state():
    k = 3
    driver = Driver(k, [[6], [6]], state_dim=D)
    buf = _state_buffer(k, 10, num_envs=2)
    pix, st = driver.obs, driver.state
    act, zeros = np.zeros((2, A)), np.zeros(2)
    good = {"pixels": pix, "state": st}
    keys = "obs must be a dict with exactly the keys 'pixels' and 'state'"
    cases = [  # what obs or next_obs is, what the message begins with (named "obs" here)
        (pix, keys + r" \(state_dim=5\), got ndarray"),
        ({"pixels": pix}, keys + r".*\['pixels'\]"),
        ({**good, "goal": st}, keys),
        ({"pixels": pix, "states": st}, keys),
        ({**good, "state": st[:, :-1]}, r"obs\['state'\] must be floats of shape \(2, 5\)"),
        ({**good, "state": st[:1]}, r"obs\['state'\] must be floats of shape"),
        ({**good, "state": st[:, :, None]}, r"obs\['state'\] must be floats of shape"),
        ({**good, "state": st.astype(np.int64)}, r"obs\['state'\] must be floats"),
        ({**good, "pixels": pix.astype(np.float32)}, r"obs\['pixels'\] must be uint8"),
    ]
    for obs, phrase in cases:
        with pytest.raises(ValueError, match=f"^{phrase}"):
            buf.add(obs, act, zeros, good, zeros)
        with pytest.raises(ValueError, match=f"^next_{phrase}"):
            buf.add(good, act, zeros, obs, zeros)
    plain = FrameReplayBuffer(20, (k * C, H, W), k, A, num_envs=2, device="cpu")
    with pytest.raises(ValueError, match="state_dim=0"):
        plain.add(good, act, zeros, good, zeros)
    with pytest.raises(ValueError, match="state_dim"):
        FrameReplayBuffer(20, (k * C, H, W), k, A, num_envs=2, device="cpu", state_dim=-1)
    assert len(buf) == 0 and buf.written.sum() == 0  # nothing of a refused step is kept

    driver.step(buf)
    driver.step(buf)
    assert buf.open.all()
    written = buf.written.copy()
    nxt = np.concatenate([driver.obs[:, C:], driver.obs[:, -C:]], 1)  # a valid shift
    changed = driver.state.copy()
    changed[1, 3] += 1e-3
    with pytest.raises(ValueError, match=r"obs\['state'\] of env 1 is not its previous next_obs"):
        buf.add(
            {"pixels": driver.obs, "state": changed},
            act,
            zeros,
            {"pixels": nxt, "state": changed},
            zeros,
        )
    assert (buf.written == written).all()
    driver.step(buf)  # the true states go on
    check_batch(buf.sample(50), driver, driver.sampleable(10))


def test_nan_and_half_precision_states():
    """A NaN state equals itself (an episode with one goes on); any float dtype is stored as
    float32."""
    k = 2
    buf = _state_buffer(k, 4, num_envs=1)
    pix = np.zeros((1, k * C, H, W), np.uint8)  # a reset stack, and its own shift
    act, zeros = np.zeros((1, A)), np.zeros(1)

    def add(before: list[float], after: list[float], dtype: type = np.float64) -> None:
        state = (
            np.resize(np.asarray(before, dtype), (1, D)),
            np.resize(np.asarray(after, dtype), (1, D)),
        )
        buf.add(
            {"pixels": pix, "state": state[0]},
            act,
            zeros,
            {"pixels": pix, "state": state[1]},
            zeros,
        )

    add([np.nan, 1.0], [np.nan, 2.0], np.float16)
    add([np.nan, 2.0], [np.nan, 3.0])
    with pytest.raises(ValueError, match="previous next_obs"):
        add([np.nan, 2.5], [np.nan, 4.0])
    batch = buf.sample(20)
    got = {(float(o[1]), float(n[1])) for o, n in zip(batch.obs["state"], batch.next_obs["state"])}
    assert got == {(1.0, 2.0), (2.0, 3.0)}
    assert torch.isnan(batch.obs["state"][:, 0]).all()
    assert buf.state.dtype == torch.float32


@pytest.mark.parametrize("steps", [0, 3, 200], ids=["empty", "partly-filled", "wrapped"])
def test_state_dict_with_states_restores_exactly(steps):
    k, ring = 3, 16
    driver, buf = _filled(k, ring, steps, state_dim=D)
    state = buf.state_dict()
    assert FrameReplayBuffer.state_problem(state) is None
    stored = int(np.minimum(buf.written, ring).sum())
    assert state["state"].dtype == torch.float32 and state["state"].shape == (stored, D)
    other = _state_buffer(k, ring, seed=9)
    junk = Driver(k, LENGTHS, state_dim=D)
    for _ in range(5):  # something to overwrite
        junk.step(other)
    other.load_state_dict(state)
    assert len(other) == len(buf)
    if steps:
        _same_batches(buf, other)
    # the episodes in progress go on: add() checks their states against the rebuilt copy
    twin = _clone_driver(driver)
    for _ in range(40):
        driver.step(buf)
        twin.step(other)
        _same_batches(buf, other)
    check_batch(other.sample(200), twin, twin.sampleable(ring))


def test_a_full_cpu_buffer_is_saved_without_a_copy_of_its_states():
    _, full = _filled(3, 16, 200, state_dim=D)
    saved = full.state_dict()
    assert saved["state"].data_ptr() == full.state.data_ptr()
    assert saved["frames"].data_ptr() == full.frames.data_ptr()
    _, partly = _filled(3, 16, 3, state_dim=D)
    assert partly.state_dict()["state"].data_ptr() != partly.state.data_ptr()


def test_load_refuses_a_buffer_with_another_state():
    stateless = _filled(3, 8, 10)[1].state_dict()
    stateful = _filled(3, 8, 10, state_dim=D)[1].state_dict()
    assert set(stateful) - set(stateless) == {"state"}  # the state-less keys as they were

    def make(d: int) -> FrameReplayBuffer:
        return FrameReplayBuffer(24, (9, H, W), 3, A, num_envs=3, device="cpu", state_dim=d)

    for saved, d, phrase in (
        (stateless, D, "state_dim 0 .*this one 5"),
        (stateful, 0, "state_dim 5 .*this one 0"),
        (stateful, D + 1, "state_dim 5 .*this one 6"),
    ):
        buf = make(d)
        with pytest.raises(ValueError, match=phrase):
            buf.load_state_dict(saved)
        assert buf.written.sum() == 0  # untouched
    make(D).load_state_dict(stateful)
    make(0).load_state_dict(stateless)


STATE_DAMAGES = {
    "float64": lambda s: s.double(),
    "1-d": lambda s: s[:, 0].contiguous(),
    "3-d": lambda s: s[:, :, None],
    "a row short": lambda s: s[:-1],
    "a row more": lambda s: torch.cat([s, s[:1]]),
    "no columns": lambda s: s[:, :0],
    "a list": lambda s: s.tolist(),
}


@pytest.mark.parametrize("steps", [0, 5, 40])
def test_state_problem_accepts_real_states_with_a_state(steps):
    assert (
        FrameReplayBuffer.state_problem(_filled(3, 8, steps, state_dim=D)[1].state_dict()) is None
    )


@pytest.mark.parametrize("name", STATE_DAMAGES)
def test_state_problem_names_a_damaged_state(name):
    state = _filled(3, 8, 40, state_dim=D)[1].state_dict()
    damaged = {**state, "state": STATE_DAMAGES[name](state["state"])}
    problem = FrameReplayBuffer.state_problem(damaged)
    assert isinstance(problem, str) and problem.startswith("state "), problem
    buf = FrameReplayBuffer(24, (9, H, W), 3, A, num_envs=3, device="cpu", state_dim=D)
    with pytest.raises(ValueError, match="saved frame buffer: state "):
        buf.load_state_dict(damaged)


def test_a_state_costs_its_floats_once_per_entry():
    k, capacity = 4, 120
    plain = FrameReplayBuffer(capacity, (k * C, H, W), k, A, num_envs=3, device="cpu")
    buf = FrameReplayBuffer(capacity, (k * C, H, W), k, A, num_envs=3, device="cpu", state_dim=D)
    assert buf.state.dtype == torch.float32 and buf.state.shape == (capacity, D)
    # the store, and the host's copy of each env's newest state
    assert buf.nbytes - plain.nbytes == capacity * D * 4 + 3 * D * 4
