"""Property-based tests (hypothesis) of the replay buffer against a plain list model."""

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sac.buffer import ReplayBuffer


def _batch(start: int, n: int):
    """n transitions whose fields encode their global index."""
    i = np.arange(start, start + n, dtype=np.float32)
    return i[:, None], np.stack([i, -i], 1), i, i[:, None] + 0.5, (i % 3 == 0).astype(np.float32)


@settings(max_examples=200, deadline=None)
@given(capacity=st.integers(1, 20), sizes=st.lists(st.integers(1, 30), max_size=12))
def test_buffer_holds_exactly_the_newest_capacity_transitions(capacity, sizes):
    buf = ReplayBuffer(capacity, 1, 2, "cpu")
    model: list[float] = []
    start = 0
    for n in sizes:
        buf.add(*_batch(start, n))
        model += list(range(start, start + n))
        start += n
    kept = model[-capacity:]
    assert len(buf) == len(kept)
    assert sorted(buf.reward[: len(buf)].tolist()) == kept
    n = len(buf)
    torch.testing.assert_close(buf.obs[:n, 0], buf.reward[:n])
    torch.testing.assert_close(buf.action[:n, 1], -buf.reward[:n])
    torch.testing.assert_close(buf.next_obs[:n, 0], buf.reward[:n] + 0.5)
    if kept:  # the next write goes over the oldest kept transition
        assert buf.reward[buf.pos].item() == kept[0] or len(buf) < capacity


@settings(max_examples=100, deadline=None)
@given(
    capacity=st.integers(1, 20),
    sizes=st.lists(st.integers(1, 30), max_size=8),
    more=st.integers(1, 25),
    seed=st.integers(0, 2**31 - 1),
)
def test_save_load_round_trip_continues_identically(capacity, sizes, more, seed):
    a = ReplayBuffer(capacity, 1, 2, "cpu", seed=seed)
    start = 0
    for n in sizes:
        a.add(*_batch(start, n))
        start += n
    b = ReplayBuffer(capacity, 1, 2, "cpu", seed=seed + 1)
    b.load_state_dict(a.state_dict())
    assert (len(b), b.pos) == (len(a), a.pos)
    for buf in (a, b):  # the same future: same writes and same samples
        buf.add(*_batch(start, more))
    for x, y in zip(a.sample(16), b.sample(16)):
        torch.testing.assert_close(x, y, rtol=0, atol=0)


def test_state_dict_saves_only_the_filled_part():
    buf = ReplayBuffer(1000, 4, 2, "cpu")
    buf.add(*[np.ones((10, *s), np.float32) for s in ((4,), (2,), (), (4,), ())])
    state = buf.state_dict()
    assert state["obs"].shape == (10, 4)
    assert state["obs"].untyped_storage().nbytes() == 10 * 4 * 4  # not a view of all 1000 rows
