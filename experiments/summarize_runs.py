"""Summarise finished runs from their metrics.csv: final eval return, wall time, and the first
step at which the eval return reached a threshold. Writes a markdown table.

    python experiments/summarize_runs.py runs/multirun/<date>/* --threshold 1000 \
        --out experiments/results/inverted_pendulum.md
"""

from __future__ import annotations

import argparse
import csv
import statistics
from pathlib import Path

import yaml


def summarize(run_dir: Path, threshold: float | None) -> dict[str, object]:
    """One run's numbers from <run_dir>/metrics.csv and <run_dir>/.hydra/config.yaml."""
    cfg = yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text())
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    evals = [
        (int(r["step"]), float(r["eval/return_mean"]), float(r["eval/return_std"]))
        for r in rows
        if r["eval/return_mean"]
    ]
    if not evals:
        raise SystemExit(f"{run_dir}: no evaluation rows in metrics.csv (did the run finish?)")
    reached = next((s for s, m, _ in evals if threshold is not None and m >= threshold), None)
    # first step from which every later evaluation stayed at or above the threshold
    held = None
    if threshold is not None:
        for s, m, _ in reversed(evals):
            if m < threshold:
                break
            held = s
    step, mean, std = evals[-1]
    return {
        "run": run_dir.name,
        "env": cfg["env"]["id"],
        "seed": cfg["seed"],
        "step": step,
        "eval_mean": mean,
        "eval_std": std,
        "reached": reached,
        "held": held,
        "wall_s": float(rows[-1]["time"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run directories")
    parser.add_argument("--threshold", type=float, help="report the first eval step >= this")
    parser.add_argument("--out", type=Path, help="also write the table to this markdown file")
    args = parser.parse_args()
    results = [summarize(d, args.threshold) for d in args.runs if (d / "metrics.csv").is_file()]
    head = "| run | env | seed | final eval step | eval return (mean +- std, episodes) | "
    if args.threshold is not None:
        head += f"first eval >= {args.threshold:g} at step | >= {args.threshold:g} from step on | "
    head += "wall time (s) |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in results:
        line = f"| {r['run']} | {r['env']} | {r['seed']} | {r['step']} | "
        line += f"{r['eval_mean']:.1f} +- {r['eval_std']:.1f} | "
        if args.threshold is not None:
            for k in ("reached", "held"):
                line += f"{r[k] if r[k] is not None else 'not reached'} | "
        lines.append(line + f"{r['wall_s']:.0f} |")
    means = [r["eval_mean"] for r in results]
    if len(means) > 1:
        lines.append(
            f"\nmean over runs: {statistics.mean(means):.1f} "
            f"(std over runs {statistics.stdev(means):.1f}, n={len(means)})"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()
