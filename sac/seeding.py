"""A run's random streams, every one derived from its single `seed`.

Each consumer of randomness gets a stream of its own: the seed of stream `name` (with a key such
as an env's index and episode number) is drawn from NumPy's `SeedSequence(seed, spawn_key=...)`,
which hashes its inputs, so streams neither share numbers with each other nor with the streams of
another seed. (Seeding them all with `seed`, as before, made the warm-up actions repeat the
numbers that initialised the actor, drew the buffer's indices from the policy noise's own
Mersenne Twister stream, and made env i of seed s the env 0 of seed s + 1.)

The streams:
  torch   network initialisation and the policy's sampling noise (torch's global generator)
  warmup  the uniform actions of the warm-up steps
  buffer  the replay buffer's sample indices
  env     the training envs: one seed per (env index, episode), so every episode starts from a
          state fixed by the run's seed, and a resume at an episode's end replays exactly
  eval    the evaluation episodes (the trainer's, and sac-eval's with the same seed)
  python, numpy  the global `random` and `numpy.random` generators, for code outside sac
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

STREAMS = ("torch", "warmup", "buffer", "env", "eval", "python", "numpy")


def stream_seed(seed: int, stream: str, *key: int, bits: int = 64) -> int:
    """The seed of `stream` (and `key`) in a run seeded with `seed`: a `bits`-bit integer."""
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    sequence = np.random.SeedSequence(seed, spawn_key=(STREAMS.index(stream), *key))
    return int(sequence.generate_state(1, np.uint64 if bits == 64 else np.uint32)[0])


def env_seed(seed: int, env_index: int, episode: int) -> int:
    """The reset seed of training env `env_index`'s episode `episode` (counted from 0). 32 bits,
    the widest seed every env API takes (dm_control's RandomState stops at 2**32)."""
    return stream_seed(seed, "env", env_index, episode, bits=32)


def eval_seed(seed: int) -> int:
    """The reset seed of the first evaluation episode (the next ones follow from the env's RNG),
    the same for every evaluation of a run, so evaluations compare like with like."""
    return stream_seed(seed, "eval", bits=32)


def seed_everything(seed: int) -> None:
    """Seed torch's global generator (on every CUDA device too), `random` and `numpy.random`
    from their streams."""
    torch.manual_seed(stream_seed(seed, "torch"))
    random.seed(stream_seed(seed, "python"))
    np.random.seed(stream_seed(seed, "numpy", bits=32))


def global_rng_state() -> dict[str, Any]:
    """The global generators' states as tensors and plain data (what a checkpoint may hold)."""
    _, keys, pos, has_gauss, gauss = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "gauss": float(gauss),
        },
        "python": _python_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_global_rng_state(state: dict[str, Any]) -> None:
    """Put back what `global_rng_state` returned (checkpoints before numpy/python: torch only)."""
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    # A state these generators refuse (a damaged or crafted file) is a ValueError, as torch's.
    try:
        if "numpy" in state:
            saved = state["numpy"]
            keys = saved["keys"].cpu().numpy().astype(np.uint32)
            np.random.set_state(
                ("MT19937", keys, int(saved["pos"]), int(saved["has_gauss"]), float(saved["gauss"]))
            )
        if "python" in state:
            version, internal, gauss = state["python"]
            random.setstate((int(version), tuple(int(x) for x in internal), gauss))
    except (TypeError, ValueError, OverflowError, KeyError, AttributeError) as e:
        raise ValueError(f"a saved random state is not valid ({type(e).__name__}: {e})") from None


def _python_state() -> list[Any]:
    version, internal, gauss = random.getstate()
    return [version, list(internal), gauss]
