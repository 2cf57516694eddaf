"""Env steps per second of one agent on different envs, in one run: a HalfCheetah run beside a
DeepMind Control Suite run and a Fetch run with HER (issue 21).

Every measurement trains from scratch in a fresh subprocess through the real trainer, with the
same agent (the defaults: 2x256 MLPs, batch 256, one update per env step, one env, CPU) on each
env's preset (`env=halfcheetah`, `env=dmc_walker_walk`, `env=fetch_reach`, whose HER buffer
relabels goals at sampling), and reports two rates from the trainer's `perf/sps` rows: during
the `--warmup` steps of random actions (the env, the runner and the buffer's add) and over the
`--steps` after it (each with a policy action and an update). Repeats alternate the envs.

An env may need another interpreter: gymnasium-robotics 1.4.2 builds the Fetch tasks only with
mujoco < 3.12, so `--python fetch_reach=/path/to/venv/bin/python` runs that env's workers in a
virtualenv with mujoco 3.11 and this checkout on its path (docs/configuration.md, Fetch).

    python experiments/bench_envs.py --python fetch_reach=/tmp/mj3venv/bin/python \
        --out experiments/results/env_speed.md
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ENVS = ("halfcheetah", "dmc_walker_walk", "fetch_reach")


def _rates(metrics: Path, warmup: int) -> tuple[float, float, int]:
    """Env steps/s before and after the warm-up boundary, and the updates after it, from the
    trainer's perf/sps rows (each row's rate covers the steps since the previous row)."""
    with metrics.open(newline="") as f:
        rows = [
            (int(r["step"]), float(r["perf/sps"]), int(float(r["perf/updates"])))
            for r in csv.DictReader(f)
            if r["perf/sps"]
        ]
    steps = [0] + [s for s, _, _ in rows]

    def rate(lo: int, hi: int) -> float:
        span = [(s - steps[i], sps) for i, (s, sps, _) in enumerate(rows) if lo < s <= hi]
        return sum(n for n, _ in span) / sum(n / sps for n, sps in span)

    end = rows[-1][0]
    updates = rows[-1][2] - next(u for s, _, u in rows if s >= warmup)
    return rate(0, warmup), rate(warmup, end), updates


def worker(args: argparse.Namespace) -> dict[str, Any]:
    from hydra import compose, initialize_config_dir

    from sac.config import config_dir, register_configs
    from sac.trainer import Trainer

    register_configs()
    overrides = [
        f"env={args.worker}",
        "device=cpu",
        f"seed={args.seed}",
        f"total_steps={args.warmup + args.steps}",
        f"agent.warmup_steps={args.warmup}",
        "agent.batch_size=256",
        "agent.hidden_sizes=[256,256]",
        "agent.updates_per_step=1",
        "eval_every=0",
        "eval_episodes=1",
        "checkpoint_every=0",
        "save_buffer=false",
        f"log_every={args.warmup // 4}",
    ]
    with initialize_config_dir(version_base="1.3", config_dir=config_dir(), job_name="bench"):
        cfg = compose("train", overrides=overrides)
    with tempfile.TemporaryDirectory(prefix="bench_envs_") as tmp:
        Trainer(cfg, Path(tmp)).train()
        warm, train, updates = _rates(Path(tmp) / "metrics.csv", args.warmup)
    import mujoco

    return {"env": cfg.env.id, "warmup_sps": warm, "train_sps": train, "updates": updates,
            "her": bool(cfg.her.enabled), "mujoco": mujoco.__version__}  # fmt: skip


def _spawn(args: argparse.Namespace, env: str, python: str, seed: int) -> dict[str, Any]:
    cmd = [python, __file__, "--worker", env, "--seed", str(seed)]
    cmd += ["--warmup", str(args.warmup), "--steps", str(args.steps)]
    print("running:", env, "seed", seed, "with", python, file=sys.stderr, flush=True)
    path = os.pathsep.join(filter(None, [str(HERE.parent), os.environ.get("PYTHONPATH")]))
    out = subprocess.run(
        cmd, capture_output=True, text=True, check=False, env={**os.environ, "PYTHONPATH": path}
    )
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"{env} failed:\n{out.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


def driver(args: argparse.Namespace) -> str:
    pythons = dict(p.split("=", 1) for p in args.python)
    results: dict[str, list[dict[str, Any]]] = {env: [] for env in args.envs}
    for r in range(args.repeats):
        order = args.envs if r % 2 == 0 else list(reversed(args.envs))
        for env in order:
            results[env].append(_spawn(args, env, pythons.get(env, sys.executable), r))
    base = statistics.median(m["train_sps"] for m in results[args.envs[0]])
    lines = [
        f"Env steps/s, medians of {args.repeats} runs each: {args.warmup} warm-up steps "
        f"(random actions), then {args.steps} steps with one update each (2x256, batch 256).",
        "",
        "| env preset | env id | HER | mujoco | warm-up steps/s | training steps/s | per run "
        f"| training ratio to {args.envs[0]} |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for env in args.envs:
        ms = results[env]
        warm = statistics.median(m["warmup_sps"] for m in ms)
        train = statistics.median(m["train_sps"] for m in ms)
        each = ", ".join(f"{m['train_sps']:.0f}" for m in ms)
        lines.append(
            f"| `env={env}` | {ms[0]['env']} | {'yes' if ms[0]['her'] else 'no'} | "
            f"{ms[0]['mujoco']} | {warm:.0f} | {train:.0f} | {each} | {train / base:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--envs", nargs="+", default=list(ENVS))
    parser.add_argument("--python", nargs="*", default=[], metavar="ENV=PYTHON")
    parser.add_argument("--warmup", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.worker:
        print("RESULT " + json.dumps(worker(args)), flush=True)
        return
    report = driver(args)
    print(report)
    if args.out:
        args.out.write_text(report)


if __name__ == "__main__":
    main()
