"""Summarise finished runs from their metrics.csv: final eval return (and success rate, for
goal-conditioned envs), wall time, and the first step at which the eval return reached a
threshold. Writes a markdown table; with --every N, also each run's evaluations every N env
steps (the learning curve).

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
        "dir": str(run_dir),
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


def _steps(n: int) -> str:
    return f"{n // 1000}k" if n % 1000 == 0 else str(n)


def curve_table(run_dirs: list[Path], every: int) -> list[str]:
    """Each run's eval return (and success rate) at every multiple of `every` env steps up to
    the last evaluation of any run; "-" where a run has no evaluation at that step."""
    runs = [(d.name, load_run(d)) for d in run_dirs]
    last = max(run.evals[-1][0] for _, run in runs if run.evals)
    steps = list(range(every, last + 1, every))
    with_success = any(run.success for _, run in runs)
    what = "eval return (success rate)" if with_success else "eval return"
    lines = [
        f"{what[0].upper()}{what[1:]} every {_steps(every)} env steps:",
        "",
        "| run | " + " | ".join(_steps(s) for s in steps) + " |",
        "|---|" + "---|" * len(steps),
    ]
    for name, run in runs:
        cells = []
        for s in steps:
            mean = run.at(s)
            rate = run.success.get(s)
            cell = "-" if mean is None else f"{mean:.1f}"
            cells.append(cell if rate is None else f"{cell} ({rate:.2f})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run directories")
    parser.add_argument("--threshold", type=float, help="report the first eval step >= this")
    parser.add_argument("--every", type=int, help="also the evaluations every this many steps")
    parser.add_argument("--out", type=Path, help="also write the table to this markdown file")
    args = parser.parse_args()
    if args.every is not None and args.every <= 0:
        raise SystemExit(f"--every {args.every}: give a number of env steps > 0")
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
    if args.every is not None:
        lines += ["", *curve_table([Path(r["dir"]) for r in results], args.every)]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()
