"""Replay buffer: wrap-around, sampling, device placement."""

import numpy as np
import pytest
import torch

from sac.buffer import ReplayBuffer


def _rows(start: int, n: int, obs_dim: int = 3, act_dim: int = 2):
    """n transitions whose every field encodes its global index."""
    i = np.arange(start, start + n, dtype=np.float32)
    return (
        np.repeat(i[:, None], obs_dim, 1),
        np.repeat(i[:, None], act_dim, 1),
        i,
        np.repeat(i[:, None] + 0.5, obs_dim, 1),
        (i % 2 == 0).astype(np.float32),
    )


def test_fills_then_wraps_around_overwriting_the_oldest():
    buf = ReplayBuffer(5, 3, 2, "cpu")
    buf.add(*_rows(0, 3))
    assert len(buf) == 3 and buf.pos == 3
    buf.add(*_rows(3, 4))  # 3, 4 fit; 5, 6 wrap to slots 0, 1
    assert len(buf) == 5 and buf.pos == 2
    assert buf.reward.tolist() == [5, 6, 2, 3, 4]
    assert buf.obs[:, 0].tolist() == [5, 6, 2, 3, 4]
    assert buf.next_obs[0].tolist() == [5.5] * 3
    assert buf.terminated.tolist() == [0, 1, 1, 0, 1]


def test_add_more_than_capacity_keeps_the_newest():
    buf = ReplayBuffer(4, 3, 2, "cpu")
    buf.add(*_rows(0, 1))
    buf.add(*_rows(1, 10))
    assert sorted(buf.reward.tolist()) == [7, 8, 9, 10]
    assert len(buf) == 4


def test_sample_returns_consistent_rows_from_the_filled_part():
    buf = ReplayBuffer(100, 3, 2, "cpu", seed=0)
    buf.add(*_rows(0, 10))
    b = buf.sample(1000)
    assert b.obs.shape == (1000, 3) and b.action.shape == (1000, 2) and b.reward.shape == (1000,)
    assert b.reward.max() <= 9 and b.reward.min() >= 0  # never an unwritten slot
    assert set(b.reward.tolist()) == set(range(10))  # every filled slot is reachable
    # the fields of a sampled row belong to the same transition
    torch.testing.assert_close(b.obs[:, 0], b.reward)
    torch.testing.assert_close(b.next_obs[:, 0], b.reward + 0.5)
    torch.testing.assert_close(b.terminated, (b.reward % 2 == 0).float())


def test_stacked_batches_are_independent_consistent_samples():
    """sample(B, K): K batches stacked (K, B, ...) for SAC.update_many, from one draw."""
    buf = ReplayBuffer(100, 3, 2, "cpu", seed=0)
    buf.add(*_rows(0, 10))
    b = buf.sample(200, 4)
    assert b.obs.shape == (4, 200, 3) and b.action.shape == (4, 200, 2)
    assert b.reward.shape == b.terminated.shape == (4, 200)
    torch.testing.assert_close(b.obs[..., 0], b.reward)  # rows stay whole transitions
    torch.testing.assert_close(b.next_obs[..., 1], b.reward + 0.5)
    torch.testing.assert_close(b.action[..., 1], b.reward)
    for k in range(4):  # each batch covers the filled part on its own, not a slice of it
        assert set(b.reward[k].tolist()) == set(range(10))
    assert not torch.equal(b.reward[0], b.reward[1])


def test_sampling_is_reproducible_by_seed():
    a, b = ReplayBuffer(50, 3, 2, "cpu", seed=7), ReplayBuffer(50, 3, 2, "cpu", seed=7)
    for buf in (a, b):
        buf.add(*_rows(0, 50))
    torch.testing.assert_close(a.sample(32).reward, b.sample(32).reward)


def test_empty_buffer_refuses_to_sample():
    with pytest.raises(RuntimeError, match="empty"):
        ReplayBuffer(5, 3, 2, "cpu").sample(2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_storage_and_samples_stay_on_the_gpu():
    buf = ReplayBuffer(10, 3, 2, "cuda")
    buf.add(*_rows(0, 10))
    b = buf.sample(4)
    assert all(t.is_cuda for t in b)
