"""Crash-safety trials: start `sac-train`, SIGKILL it at a random moment (checkpoints are
written every few steps, so many kills land mid-write), then check that the run directory
still holds a checkpoint that loads and that `sac-train resume=...` continues from it.

    python experiments/sigkill_trials.py --trials 30
"""

from __future__ import annotations

import argparse
import csv
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sac.checkpoint import load_checkpoint
from sac.errors import SACError

ARGS = [
    "agent.warmup_steps=300",
    "eval_every=0",
    "log_every=100",
    "agent.batch_size=32",
    "agent.hidden_sizes=[32,32]",
    "device=cpu",
    "checkpoint_every=50",
    "total_steps=100000",
    "hydra.run.dir=run",
]


def trial(cwd: Path, delay: float) -> str:
    """One kill-and-resume; returns 'ok' or what went wrong."""
    exe = str(Path(sys.executable).parent / "sac-train")
    proc = subprocess.Popen(
        [exe, *ARGS], cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    metrics = cwd / "run" / "metrics.csv"
    while proc.poll() is None:  # wait until learning has started, then the random delay
        if metrics.exists() and any(r["perf/sps"] for r in csv.DictReader(metrics.open())):
            break
        time.sleep(0.05)
    time.sleep(delay)
    proc.kill()
    proc.wait()
    try:
        step = load_checkpoint(cwd / "run")["counters"]["env_steps"]
    except SACError as e:
        return f"no loadable checkpoint: {e}"
    resumed = subprocess.run(
        [exe, "resume=run", f"total_steps={step + 50}"], cwd=cwd, capture_output=True, text=True
    )
    if resumed.returncode != 0:
        return f"resume failed: {resumed.stderr.strip()[-300:]}"
    return "ok"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    results = []
    for i in range(args.trials):
        with tempfile.TemporaryDirectory() as tmp:
            outcome = trial(Path(tmp), rng.uniform(0.0, 4.0))
        results.append(outcome)
        print(f"trial {i + 1}/{args.trials}: {outcome}", flush=True)
    ok = results.count("ok")
    print(f"{ok}/{len(results)} trials left a run that loads and resumes")
    sys.exit(0 if ok == len(results) else 1)


if __name__ == "__main__":
    main()
