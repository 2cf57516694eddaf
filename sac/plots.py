"""The picture of one run: its returns over env steps, drawn from metrics.csv."""

from __future__ import annotations

import csv
from pathlib import Path

PLOT_NAME = "returns.png"


def plot_run(run_dir: Path, title: str) -> Path | None:
    """Draw <run_dir>/metrics.csv's training-episode and evaluation returns into
    <run_dir>/returns.png; returns its path, or None when there is nothing to draw yet.

    Reads the whole CSV, so a resumed run's picture shows all of its segments.
    """
    with (run_dir / "metrics.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    train = [
        (int(r["step"]), float(r["train/episode_return"]))
        for r in rows
        if r.get("train/episode_return")
    ]
    evals = [
        (int(r["step"]), float(r["eval/return_mean"]), float(r["eval/return_std"] or 0.0))
        for r in rows
        if r.get("eval/return_mean")
    ]
    if not train and not evals:
        return None

    # The object-oriented API without pyplot: no global figure state, no GUI backend.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4), dpi=100)
    ax = fig.add_subplot()
    if train:
        steps, returns = zip(*train)
        ax.plot(steps, returns, ".", ms=3, alpha=0.35, color="tab:gray", label="training episodes")
        window = max(1, min(10, len(returns) // 5))
        smooth = [
            sum(returns[max(0, i - window + 1) : i + 1])
            / len(returns[max(0, i - window + 1) : i + 1])
            for i in range(len(returns))
        ]
        ax.plot(steps, smooth, color="tab:gray", lw=1, label=f"training, mean of last {window}")
    if evals:
        steps, means, stds = zip(*evals)
        ax.plot(steps, means, "o-", ms=3, color="tab:blue", label="evaluation (deterministic)")
        ax.fill_between(
            steps,
            [m - s for m, s in zip(means, stds)],
            [m + s for m, s in zip(means, stds)],
            color="tab:blue",
            alpha=0.2,
            label="evaluation +- std over episodes",
        )
    ax.set_title(title)
    ax.set_xlabel("env steps")
    ax.set_ylabel("return")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    path = run_dir / PLOT_NAME
    tmp = path.with_name(f".{PLOT_NAME}.tmp")
    fig.savefig(tmp, format="png")
    tmp.replace(path)  # a reader never sees half a file
    return path
