"""Reading finished (or running) sac-train run directories: config and evaluation rows."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import yaml


@dataclass
class Run:
    """One run's identity and its evaluation curve."""

    path: Path
    env: str
    variant: str  # agent.name: sac, crossq, ...
    seed: int
    evals: list[tuple[int, float, float]]  # (env step, eval return mean, eval return std)
    wall_s: float
    # env step -> eval success rate, for envs that report info["is_success"] (else empty)
    success: dict[int, float] = field(default_factory=dict)

    def at(self, step: int) -> float | None:
        """The evaluation return at exactly `step`, if the run evaluated there."""
        return next((m for s, m, _ in self.evals if s == step), None)

    def first_reaching(self, threshold: float) -> int | None:
        """The first evaluation step with a return >= threshold."""
        return next((s for s, m, _ in self.evals if m >= threshold), None)

    def held_from(self, threshold: float) -> int | None:
        """The first step from which every later evaluation stayed >= threshold."""
        held = None
        for s, m, _ in reversed(self.evals):
            if m < threshold:
                break
            held = s
        return held


def load_run(run_dir: Path) -> Run:
    """A run from <run_dir>/config.yaml (the config it trained with) and metrics.csv."""
    config = run_dir / "config.yaml"
    if not config.is_file():  # runs from before config.yaml was written
        config = run_dir / ".hydra" / "config.yaml"
    cfg = yaml.safe_load(config.read_text())
    with (run_dir / "metrics.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    evals = [
        (int(r["step"]), float(r["eval/return_mean"]), float(r["eval/return_std"]))
        for r in rows
        if r.get("eval/return_mean")
    ]
    success = {
        int(r["step"]): float(r["eval/success_rate"]) for r in rows if r.get("eval/success_rate")
    }
    return Run(
        path=run_dir,
        env=cfg["env"]["id"],
        variant=cfg["agent"].get("name", "sac"),
        seed=int(cfg["seed"]),
        evals=evals,
        wall_s=float(rows[-1]["time"]) if rows else 0.0,
        success=success,
    )


def find_runs(paths: list[Path]) -> list[Run]:
    """Every run directory (one holding metrics.csv) at or below the given paths."""
    dirs = sorted(
        {
            m.parent
            for p in paths
            for m in [p / "metrics.csv", *p.rglob("metrics.csv")]
            if m.is_file() and "previous_" not in str(m.parent.name)
        }
    )
    return [load_run(d) for d in dirs]
