"""Summarise finished runs from their metrics.csv: final eval return (and success rate, for
goal-conditioned envs), wall time, and the first step at which the eval return reached a
threshold. Writes a markdown table.

    python experiments/summarize_runs.py runs/multirun/<date>/* --threshold 1000 \
        --out experiments/results/inverted_pendulum.md
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from runs import load_run


def summarize(run_dir: Path, threshold: float | None) -> dict[str, object]:
    """One run's numbers from its metrics.csv and config."""
    run = load_run(run_dir)
    if not run.evals:
        raise SystemExit(f"{run_dir}: no evaluation rows in metrics.csv (did the run finish?)")
    step, mean, std = run.evals[-1]
    return {
        "run": run_dir.name,
        "env": run.env,
        "seed": run.seed,
        "step": step,
        "eval_mean": mean,
        "eval_std": std,
        "success": run.success.get(step),  # None: the env reports no success
        "reached": run.first_reaching(threshold) if threshold is not None else None,
        "held": run.held_from(threshold) if threshold is not None else None,
        "wall_s": run.wall_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run directories")
    parser.add_argument("--threshold", type=float, help="report the first eval step >= this")
    parser.add_argument("--out", type=Path, help="also write the table to this markdown file")
    args = parser.parse_args()
    results = [summarize(d, args.threshold) for d in args.runs if (d / "metrics.csv").is_file()]
    head = "| run | env | seed | final eval step | eval return (mean +- std, episodes) | "
    with_success = any(r["success"] is not None for r in results)
    if with_success:
        head += "eval success rate | "
    if args.threshold is not None:
        head += f"first eval >= {args.threshold:g} at step | >= {args.threshold:g} from step on | "
    head += "wall time (s) |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in results:
        line = f"| {r['run']} | {r['env']} | {r['seed']} | {r['step']} | "
        line += f"{r['eval_mean']:.1f} +- {r['eval_std']:.1f} | "
        if with_success:
            line += "- | " if r["success"] is None else f"{r['success']:.2f} | "
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
        rates = [r["success"] for r in results if r["success"] is not None]
        if len(rates) > 1:
            lines.append(
                f"mean success rate over runs: {statistics.mean(rates):.2f} "
                f"(std over runs {statistics.stdev(rates):.2f}, n={len(rates)})"
            )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()
