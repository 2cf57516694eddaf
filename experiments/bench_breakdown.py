"""Where a training step's time goes, and the fastest step the CPU's matmul rate allows.

Runs this project's collection loop on the CPU, one env (a copy of the Trainer's inner loop
with a timer around each phase: act, env step, buffer add, sample, update; no logging or
evaluation), and times each phase over `--steps` env steps after `--warmup` random-action
steps. It then counts the floating-point work of one
gradient update with PyTorch's FlopCounterMode (every matmul of the forward and backward
passes) and measures this machine's matmul rate at the update's widest shape, which gives a
floor: the update cannot take less than (update FLOPs / matmul rate) at this precision.

    python experiments/bench_breakdown.py                               # HalfCheetah-v5, fp32
    python experiments/bench_breakdown.py --matmul-precision medium     # bf16 inner products
    python experiments/bench_breakdown.py --compile                     # compile=true

With `--compile` the agent's losses go through torch.compile, compiled by a few untimed
updates at the end of the warm-up (the FLOP count is the same).

The "ceiling" column is the env steps/s of a step made of the measured non-update phases plus
an update that did nothing but its matmuls at the measured rate: no implementation of the same
maths at the same precision can beat it on this machine. Compare it with Stable-Baselines3's
steps/s from bench_speed.py to see which speed-up is still possible.
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from bench_speed import cpu_model  # experiments/ is on sys.path when run as a script
from torch.utils.flop_counter import FlopCounterMode

from sac.agent import SAC
from sac.buffer import ReplayBuffer
from sac.compiled import PROBATION_STEPS, Updater, make_updater
from sac.config import MATMUL_PRECISIONS, AgentConfig
from sac.envs import EnvRunner, make_vector_env, space_dims

PHASES = ("act", "env", "buffer add", "sample", "update")


def time_phases(args: argparse.Namespace) -> tuple[dict[str, float], Updater, ReplayBuffer]:
    """Seconds per env step spent in each phase, over the timed window."""
    torch.manual_seed(args.seed)
    envs = make_vector_env(args.env, None, 1)
    runner = EnvRunner(envs, args.seed)
    obs_dim, act_dim = space_dims(envs)
    cfg = AgentConfig(batch_size=args.batch_size, hidden_sizes=[args.hidden, args.hidden])
    agent = SAC(obs_dim, act_dim, cfg)
    updater = make_updater(agent, compile=args.compile)
    buffer = ReplayBuffer(args.buffer_size, obs_dim, act_dim, "cpu", seed=args.seed)
    rng = np.random.default_rng(args.seed)
    totals = dict.fromkeys(PHASES, 0.0)
    try:
        for i in range(args.warmup + args.steps):
            timed = i >= args.warmup
            t0 = time.perf_counter()
            if timed:
                action = agent.act(torch.as_tensor(runner.obs)).numpy()
            else:
                action = rng.uniform(-1, 1, (1, act_dim)).astype(np.float32)
            t1 = time.perf_counter()
            tr = runner.step(action)
            t2 = time.perf_counter()
            buffer.add(tr.obs, tr.action, tr.reward, tr.next_obs, tr.terminated)
            t3 = time.perf_counter()
            if args.compile and i == args.warmup - 1:  # compile outside the timed window
                for _ in range(PROBATION_STEPS):  # the compiling (and guarded) updates
                    updater.update(buffer.sample(args.batch_size))
            if timed:
                batch = buffer.sample(args.batch_size)
                t4 = time.perf_counter()
                updater.update(batch)
                t5 = time.perf_counter()
                for name, seconds in zip(PHASES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
                    totals[name] += seconds
    finally:
        runner.close()
    return {k: v / args.steps for k, v in totals.items()}, updater, buffer


def update_flops(updater: Updater, buffer: ReplayBuffer, batch_size: int) -> int:
    """Floating-point operations of one update's matmuls, forward and backward (FlopCounterMode
    counts matmuls and convolutions only; the elementwise work is not in it). Compiled code
    runs eagerly here, the same maths: a dispatch mode such as FlopCounterMode cannot run
    inside it (and compile=true compiles with fullgraph, which then refuses to run)."""
    counter = FlopCounterMode(display=False)
    with torch.compiler.set_stance("force_eager"), counter:
        updater.update(buffer.sample(batch_size))
    return counter.get_total_flops()


def matmul_rate(n: int, repeats: int = 400) -> float:
    """FLOP/s of an (n x n) @ (n x n) matmul, the median of five timings."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(50):
        a @ b
    rates = []
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(repeats):
            a @ b
        rates.append(2 * n**3 * repeats / (time.perf_counter() - t))
    return statistics.median(rates)


def report(args: argparse.Namespace, phases: dict[str, float], flops: int, rate: float) -> str:
    step = sum(phases.values())
    floor = flops / rate
    other = step - phases["update"]
    rows = [f"| {name} | {1e3 * s:.3f} | {100 * s / step:.1f}% |" for name, s in phases.items()]
    lines = [
        f"# Step time breakdown, {args.env}",
        "",
        f"One env, batch {args.batch_size}, 2x{args.hidden} MLPs, one update per env step,"
        f" float32 matmul precision `{args.matmul_precision}`, compile={args.compile},"
        f" {torch.get_num_threads()} torch"
        f" threads; {args.steps} timed steps after {args.warmup} random-action steps.",
        "",
        "| phase | ms per env step | share |",
        "|---|---|---|",
        *rows,
        f"| **total** | **{1e3 * step:.3f}** | {1 / step:.1f} env steps/s |",
        "",
        "| quantity | value |",
        "|---|---|",
        f"| FLOPs of one update (FlopCounterMode) | {flops / 1e9:.3f} GFLOP |",
        f"| matmul rate, {args.hidden}x{args.hidden} @ {args.hidden}x{args.hidden}"
        f" | {rate / 1e9:.1f} GFLOP/s |",
        f"| update floor (FLOPs / matmul rate) | {1e3 * floor:.3f} ms |",
        f"| update as measured | {1e3 * phases['update']:.3f} ms"
        f" ({phases['update'] / floor:.2f}x the floor) |",
        f"| ceiling: other phases + update floor | {1e3 * (other + floor):.3f} ms"
        f" = {1 / (other + floor):.1f} env steps/s |",
        "",
        "## Setup",
        "",
        f"- command: `python {' '.join(sys.argv)}`",
        f"- date: {dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}",
        f"- python {platform.python_version()}, torch {torch.__version__}",
        f"- CPU: {cpu_model()}",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--env", default="HalfCheetah-v5", help="Gymnasium env id")
    p.add_argument("--warmup", type=int, default=1000, help="random-action steps, not timed")
    p.add_argument("--steps", type=int, default=2000, help="timed env steps")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--hidden", type=int, default=256, help="width of the 2 hidden layers")
    p.add_argument("--buffer-size", type=int, default=1_000_000)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--matmul-precision",
        default="highest",
        choices=MATMUL_PRECISIONS,
        help="torch.set_float32_matmul_precision for the whole measurement",
    )
    p.add_argument("--compile", action="store_true", help="compile=true (torch.compile)")
    p.add_argument("--out", type=Path, help="also write the markdown report here")
    args = p.parse_args(argv)
    if args.warmup < args.batch_size:
        p.error(f"--warmup must be >= --batch-size ({args.batch_size}) so sampling can start")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.set_float32_matmul_precision(args.matmul_precision)

    phases, updater, buffer = time_phases(args)
    text = report(
        args, phases, update_flops(updater, buffer, args.batch_size), matmul_rate(args.hidden)
    )
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()
