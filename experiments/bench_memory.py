"""Peak memory (RSS) of a training process whose replay buffer is full, against the raw bytes
of that buffer. The buffer is filled with random transitions (a real 1M-step run takes hours
here), then the real training loop runs on for `--steps` steps and writes a checkpoint with the
buffer, as a long run would.

    python experiments/bench_memory.py [--env halfcheetah] [--capacity 1000000] [--steps 2000]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
from pathlib import Path

from hydra import compose, initialize_config_dir
from synthetic import fill_randomly

from sac.config import config_dir, register_configs
from sac.trainer import Trainer


def rss_mib() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="halfcheetah")
    parser.add_argument("--capacity", type=int, default=1_000_000)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    register_configs()
    with tempfile.TemporaryDirectory() as tmp:
        with initialize_config_dir(version_base="1.3", config_dir=config_dir()):
            cfg = compose(
                "train",
                overrides=[
                    f"env={args.env}",
                    "device=cpu",
                    f"agent.buffer_size={args.capacity}",
                    f"total_steps={args.capacity + args.steps}",
                    "eval_every=0",
                    "eval_episodes=1",
                    "checkpoint_every=0",
                    "keep_checkpoints=1",
                ],
            )
        trainer = Trainer(cfg, Path(tmp))
        start = rss_mib()
        fill_randomly(trainer.buffer, args.capacity, trainer.obs_dim, trainer.act_dim)
        trainer.step = args.capacity  # past the warm-up: the loop acts and updates
        filled = rss_mib()
        trainer.train()
        peak = rss_mib()
    raw = args.capacity * (2 * trainer.obs_dim + trainer.act_dim + 2) * 4 / 2**20
    table = (
        "| env | buffer capacity | raw buffer bytes | RSS after start-up | RSS with full buffer "
        "| peak RSS (training + checkpoint) | peak minus buffer |\n"
        "|---|---|---|---|---|---|---|\n"
        f"| {cfg.env.id} | {args.capacity:,} | {raw:.0f} MiB | {start:.0f} MiB | {filled:.0f} MiB "
        f"| {peak:.0f} MiB | {peak - raw:.0f} MiB |\n"
    )
    print(table)
    if args.out:
        args.out.write_text(table)


if __name__ == "__main__":
    main()
