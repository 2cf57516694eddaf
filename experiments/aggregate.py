"""Aggregate many sac-train runs into learning curves and a table at fixed step budgets.

Runs are grouped by env and variant (agent.name); seeds are the runs of a group. Statistics
follow Agarwal et al. 2021 ("Deep RL at the Edge of the Statistical Precipice") through their
`rliable` package: the interquartile mean (IQM) over seeds with 95% stratified-bootstrap
confidence intervals, next to the plain mean +- std and the published numbers
(experiments/published.csv).

    pip install -e ".[analysis]"
    python experiments/aggregate.py runs/suite --out experiments/results/learning \
        --budgets 20000 50000 100000 --threshold InvertedPendulum-v5=1000

writes <out>.md (the tables) and <out>.png (one panel per env: IQM curve and its 95% CI band
per variant).
"""

from __future__ import annotations

import argparse
import csv
import math
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np
from runs import Run, find_runs

PUBLISHED = Path(__file__).with_name("published.csv")
# rliable 1.2 hands arch a RandomState the way arch 7 deprecates; the numbers are unaffected.
warnings.filterwarnings("ignore", "random_state is deprecated", FutureWarning)


def iqm_ci(values: list[float], reps: int, seed: int = 0) -> tuple[float, float, float]:
    """IQM of `values` (one per seed) and its 95% stratified-bootstrap confidence interval."""
    from rliable import library as rly
    from rliable import metrics

    scores = {"x": np.asarray(values, dtype=float).reshape(-1, 1)}  # (runs, tasks)
    point, interval = rly.get_interval_estimates(
        scores,
        lambda x: np.array([metrics.aggregate_iqm(x)]),
        reps=reps,
        random_state=np.random.RandomState(seed),
    )
    return float(point["x"][0]), float(interval["x"][0, 0]), float(interval["x"][1, 0])


def group_runs(runs: list[Run]) -> dict[tuple[str, str], list[Run]]:
    groups: dict[tuple[str, str], list[Run]] = defaultdict(list)
    for run in runs:
        groups[(run.env, run.variant)].append(run)
    return {k: sorted(v, key=lambda r: r.seed) for k, v in sorted(groups.items())}


def curve(runs: list[Run], reps: int) -> tuple[list[int], np.ndarray]:
    """Eval steps every run reached, and rows (IQM, CI low, CI high) at each of them."""
    steps = sorted(set.intersection(*(set(s for s, _, _ in r.evals) for r in runs)))
    rows = [iqm_ci([r.at(s) for r in runs], reps) for s in steps]  # type: ignore[misc]
    return steps, np.array(rows).reshape(-1, 3)


def published_numbers() -> dict[tuple[str, int], list[str]]:
    out: dict[tuple[str, int], list[str]] = defaultdict(list)
    with PUBLISHED.open(newline="") as f:
        for row in csv.DictReader(f):
            spread = f" +- {row['spread']}" if row["spread"] else ""
            out[(row["env"], int(row["budget"]))].append(f"{row['mean']}{spread} ({row['source']})")
    return out


def budget_table(groups: dict[tuple[str, str], list[Run]], budgets: list[int], reps: int) -> str:
    published = published_numbers()
    lines = [
        "| env | variant | steps | seeds | IQM [95% CI] | mean +- std | per seed | published |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (env, variant), runs in groups.items():
        for budget in budgets:
            values = [r.at(budget) for r in runs]
            if any(v is None for v in values):
                continue  # not every seed evaluated at this budget
            iqm, lo, hi = iqm_ci(values, reps)  # type: ignore[arg-type]
            per_seed = ", ".join(f"{r.seed}: {v:.0f}" for r, v in zip(runs, values))
            std = float(np.std(values, ddof=1)) if len(values) > 1 else math.nan
            pub = "; ".join(published.get((env, budget), [])) or "-"
            lines.append(
                f"| {env} | {variant} | {budget} | {len(runs)} | {iqm:.0f} [{lo:.0f}, {hi:.0f}] "
                f"| {np.mean(values):.0f} +- {std:.0f} | {per_seed} | {pub} |"
            )
    return "\n".join(lines)


def threshold_table(groups: dict[tuple[str, str], list[Run]], thresholds: dict[str, float]) -> str:
    lines = [
        "| env | variant | threshold | seed | first eval >= threshold | held from step |",
        "|---|---|---|---|---|---|",
    ]
    for (env, variant), runs in groups.items():
        if env not in thresholds:
            continue
        t = thresholds[env]
        for r in runs:
            first, held = r.first_reaching(t), r.held_from(t)
            lines.append(
                f"| {env} | {variant} | {t:g} | {r.seed} | {first if first else 'not reached'} "
                f"| {held if held else 'no'} |"
            )
    return "\n".join(lines)


def plot(groups: dict[tuple[str, str], list[Run]], out: Path, reps: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs = sorted({env for env, _ in groups})
    cols = min(3, len(envs))
    rows = math.ceil(len(envs) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.6 * rows), squeeze=False)
    for ax, env in zip(axes.flat, envs):
        for (e, variant), runs in groups.items():
            if e != env:
                continue
            steps, stats = curve(runs, reps)
            ax.plot(steps, stats[:, 0], label=f"{variant} ({len(runs)} seeds)")
            ax.fill_between(steps, stats[:, 1], stats[:, 2], alpha=0.25)
        ax.set_title(env)
        ax.set_xlabel("env steps")
        ax.set_ylabel("eval return (IQM, 95% CI)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(envs) :]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", type=Path, help="run directories or their parents")
    parser.add_argument("--out", type=Path, required=True, help="writes OUT.md and OUT.png")
    parser.add_argument(
        "--budgets", type=int, nargs="+", default=[20_000, 50_000, 100_000, 300_000, 1_000_000]
    )
    parser.add_argument(
        "--threshold",
        action="append",
        default=[],
        metavar="ENV=RETURN",
        help="also report when each seed's eval return first reached RETURN (repeatable)",
    )
    parser.add_argument("--reps", type=int, default=20_000, help="bootstrap resamples")
    args = parser.parse_args()
    try:
        thresholds = {k: float(v) for k, v in (t.split("=", 1) for t in args.threshold)}
    except ValueError:
        parser.error("--threshold takes ENV=RETURN, e.g. InvertedPendulum-v5=1000")
    runs = [r for r in find_runs(args.paths) if r.evals]
    if not runs:
        parser.error(f"no run with evaluation rows under {', '.join(map(str, args.paths))}")
    groups = group_runs(runs)
    parts = [
        f"# Learning results ({len(runs)} runs)\n",
        "Deterministic evaluation return (mean over the evaluation's episodes) at fixed env-step "
        "budgets; IQM and 95% stratified-bootstrap CI over seeds (rliable).\n",
        budget_table(groups, args.budgets, args.reps),
    ]
    if thresholds:
        parts += ["", threshold_table(groups, thresholds)]
    parts += ["", "| run | env | variant | seed | wall time (s) |", "|---|---|---|---|---|"]
    parts += [f"| {r.path} | {r.env} | {r.variant} | {r.seed} | {r.wall_s:.0f} |" for r in runs]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join(parts) + "\n"
    args.out.with_suffix(".md").write_text(text)
    plot(groups, args.out.with_suffix(".png"), args.reps)
    print(text)
    print(f"wrote {args.out.with_suffix('.md')} and {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
