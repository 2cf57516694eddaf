"""Time of one SAC gradient update alone: no env, no buffer, no logging.

Builds this project's agent for HalfCheetah's sizes (obs 17, act 6; batch 256, 2x256 by
default), runs `--warmup` updates (compilation happens there), then times `--repeats` blocks
of `--updates` updates on random batches already on the device, and prints the median and
spread of the time per update. On CUDA each block ends with a synchronize, so the time is the
device's, not the launch queue's.

    python experiments/bench_update.py                          # CPU, eager
    python experiments/bench_update.py --device cuda --cudagraphs

It is the update's share of `bench_speed.py`'s steps/s, without the env's noise: use it to
compare two versions of the update (e.g. with farm-bench or hyperfine on two checkouts), and
`bench_speed.py` for claims against Stable-Baselines3.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from sac.agent import SAC, Batch
from sac.config import AgentConfig


def random_batches(n: int, size: int, obs: int, act: int, device: str) -> list[Batch]:
    """`n` batches of random transitions (1% terminal), on `device`."""
    g = torch.Generator().manual_seed(0)
    return [
        Batch(
            torch.randn(size, obs, generator=g).to(device),
            (torch.rand(size, act, generator=g) * 2 - 1).to(device),
            torch.randn(size, generator=g).to(device),
            torch.randn(size, obs, generator=g).to(device),
            (torch.rand(size, generator=g) < 0.01).float().to(device),
        )
        for _ in range(n)
    ]


def time_updates(args: argparse.Namespace) -> list[float]:
    """Seconds per update, one value per timed block."""
    torch.manual_seed(0)
    cfg = AgentConfig(batch_size=args.batch_size, hidden_sizes=[args.hidden] * 2)
    flags = {"compile": True} if args.compile else {}
    if args.cudagraphs:
        flags["cudagraphs"] = True
    agent = SAC(args.obs_dim, args.act_dim, cfg, args.device, **flags)
    batches = random_batches(8, args.batch_size, args.obs_dim, args.act_dim, args.device)
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    for i in range(args.warmup):
        agent.update(batches[i % len(batches)])
    sync()
    if (args.compile or args.cudagraphs) and not agent.compiled:
        print("warning: compilation failed, the timings below are eager")
    blocks = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        for i in range(args.updates):
            agent.update(batches[i % len(batches)])
        sync()
        blocks.append((time.perf_counter() - t0) / args.updates)
    return blocks


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--compile", action="store_true", help="compile=true")
    p.add_argument("--cudagraphs", action="store_true", help="cudagraphs=true (CUDA)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--hidden", type=int, default=256, help="width of both hidden layers")
    p.add_argument("--obs-dim", type=int, default=17)
    p.add_argument("--act-dim", type=int, default=6)
    p.add_argument("--warmup", type=int, default=50, help="untimed updates (compile here)")
    p.add_argument("--updates", type=int, default=100, help="updates per timed block")
    p.add_argument("--repeats", type=int, default=5, help="timed blocks")
    args = p.parse_args(argv)
    blocks = time_updates(args)
    ms = [1e3 * b for b in blocks]
    print(
        f"update: median {statistics.median(ms):.3f} ms (min {min(ms):.3f}, max {max(ms):.3f};"
        f" {args.repeats} blocks of {args.updates}) on {args.device}, batch {args.batch_size},"
        f" 2x{args.hidden}, compile={args.compile}, cudagraphs={args.cudagraphs},"
        f" torch {torch.__version__}, {torch.get_num_threads()} threads"
    )


if __name__ == "__main__":
    main()
