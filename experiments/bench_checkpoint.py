"""Time and size of a checkpoint holding a full replay buffer (default: 1M HalfCheetah-v5
transitions), written and read through the trainer's real save/restore path.

    python experiments/bench_checkpoint.py [--env halfcheetah] [--transitions 1000000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from hydra import compose, initialize_config_dir
from synthetic import fill_randomly

from sac.config import config_dir, register_configs
from sac.trainer import Trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="halfcheetah", help="conf/env preset")
    parser.add_argument("--transitions", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, help="also write the markdown table here")
    parser.add_argument(
        "--drop-caches",
        action="store_true",
        help="load from a cold page cache (Linux, root: writes drop_caches)",
    )
    args = parser.parse_args()
    register_configs()
    with initialize_config_dir(version_base="1.3", config_dir=config_dir()):
        cfg = compose(
            "train",
            overrides=[
                f"env={args.env}",
                "device=cpu",
                "keep_checkpoints=1",
                f"agent.buffer_size={args.transitions}",
            ],
        )
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp)
        trainer = Trainer(cfg, run)
        fill_randomly(trainer.buffer, args.transitions, trainer.obs_dim, trainer.act_dim)
        trainer.step = args.transitions
        raw = sum(
            t[: len(trainer.buffer)].nbytes
            for t in (
                trainer.buffer.obs,
                trainer.buffer.action,
                trainer.buffer.reward,
                trainer.buffer.next_obs,
                trainer.buffer.terminated,
            )
        )
        saves, loads = [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            path = trainer.save()
            saves.append(time.perf_counter() - t0)
            if args.drop_caches:
                os.sync()
                Path("/proc/sys/vm/drop_caches").write_text("3\n")
            t0 = time.perf_counter()
            trainer.restore(path)  # load + copy into the preallocated buffer and the agent
            loads.append(time.perf_counter() - t0)
        size = path.stat().st_size
        trainer.close()
    cache = "cold page cache" if args.drop_caches else "warm page cache"
    table = (
        f"Load measured from a {cache}.\n\n"
        "| env | transitions | buffer raw bytes | checkpoint file | "
        f"save (median of {args.repeats}) | load + restore (median) |\n|---|---|---|---|---|---|\n"
        f"| {cfg.env.id} | {len(trainer.buffer):,} | {raw / 2**20:.0f} MiB | {size / 2**20:.0f} MiB"
        f" | {statistics.median(saves):.2f} s | {statistics.median(loads):.2f} s |\n"
    )
    print(table)
    if args.out:
        args.out.write_text(table)


if __name__ == "__main__":
    main()
