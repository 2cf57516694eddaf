"""One seed, independent streams: each consumer of randomness draws from a stream of its own."""

import itertools
import random

import numpy as np
import pytest
import torch

from sac.errors import SACError
from sac.seeding import (
    STREAMS,
    env_seed,
    eval_seed,
    global_rng_state,
    seed_everything,
    set_global_rng_state,
    stream_seed,
)
from sac.trainer import Trainer


def test_the_streams_of_one_seed_differ_and_are_reproducible():
    seeds = {name: stream_seed(0, name) for name in STREAMS}
    assert len(set(seeds.values())) == len(STREAMS)
    assert seeds == {name: stream_seed(0, name) for name in STREAMS}
    # the first numbers drawn from each differ (they did not when all were seeded with 0)
    draws = [torch.rand(4, generator=torch.Generator().manual_seed(s)) for s in seeds.values()]
    for a, b in itertools.combinations(draws, 2):
        assert not torch.equal(a, b)


def test_two_seeds_share_no_env_seed():
    # env i of seed s was env 0 of seed s + 1 when env seeds were seed + i
    seeds = [env_seed(s, i, k) for s in range(100) for i in range(8) for k in range(5)]
    assert len(set(seeds)) == len(seeds)
    assert all(0 <= s < 2**32 for s in seeds)
    assert len({eval_seed(s) for s in range(1000)}) == 1000
    assert eval_seed(0) not in {env_seed(0, i, k) for i in range(8) for k in range(100)}


def test_negative_seeds_are_refused():
    with pytest.raises(ValueError, match="seed must be >= 0"):
        stream_seed(-1, "torch")


def test_global_rng_state_round_trips():
    seed_everything(5)
    state = global_rng_state()
    first = (torch.rand(3), np.random.rand(3), random.random())
    torch.rand(10), np.random.rand(10), random.random()  # move every generator on
    set_global_rng_state(state)
    again = (torch.rand(3), np.random.rand(3), random.random())
    torch.testing.assert_close(first[0], again[0], rtol=0, atol=0)
    np.testing.assert_array_equal(first[1], again[1])
    assert first[2] == again[2]


def test_a_trainer_draws_each_stream_from_its_own_seed(make_cfg, tmp_path):
    trainer = Trainer(make_cfg("device=cpu", "seed=3", "env.num_envs=2"), tmp_path)
    try:
        # The warm-up actions no longer repeat the numbers that initialised the actor, and the
        # buffer's indices no longer come from the policy noise's stream.
        assert torch.initial_seed() == stream_seed(3, "torch")
        assert trainer.action_rng.initial_seed() == stream_seed(3, "warmup")
        assert trainer.buffer.generator.initial_seed() == stream_seed(3, "buffer")
        resets = [e.np_random_seed for e in trainer.envs.envs]
        assert resets == [env_seed(3, 0, 0), env_seed(3, 1, 0)]
    finally:
        trainer.close()


def test_a_negative_seed_is_a_config_error(make_cfg, tmp_path):
    with pytest.raises(SACError, match="seed must be >= 0"):
        Trainer(make_cfg("device=cpu", "seed=-1"), tmp_path)
