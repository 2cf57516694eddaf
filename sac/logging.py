"""One facade over the run's outputs: metrics CSV (always), Weights & Biases (optional) and the
live progress line on the console."""

from __future__ import annotations

import csv
import logging
import math
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sac.errors import SACError

log = logging.getLogger("sac")


class RunLogger:
    """Writes metric rows keyed by env step to metrics.csv and, when enabled, to W&B.

    `columns` fixes the CSV header (after `step` and `time`); a row fills the columns it has.
    """

    def __init__(
        self,
        run_dir: Path,
        columns: Sequence[str],
        config: Mapping[str, Any],
        wandb_cfg: Any | None = None,
        resume_step: int | None = None,
    ) -> None:
        self.path = run_dir / "metrics.csv"
        self.columns = ("step", "time", *columns)
        if resume_step is not None and self.path.exists():
            _truncate_csv(self.path, resume_step, self.columns)
        new = not self.path.exists()
        self._file = self.path.open("a", newline="")
        self._csv = csv.DictWriter(self._file, fieldnames=self.columns)
        if new:
            self._csv.writeheader()
        self._start = time.time()
        self._wandb = None
        if wandb_cfg is not None and wandb_cfg.enabled:
            self._wandb = _init_wandb(run_dir, config, wandb_cfg)

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        unknown = set(metrics) - set(self.columns)
        if unknown:  # a programming error, not a user one: keep the CSV's columns fixed
            raise KeyError(f"metrics not among the CSV columns: {sorted(unknown)}")
        row = {"step": step, "time": round(time.time() - self._start, 3), **metrics}
        self._csv.writerow(row)
        self._file.flush()
        if self._wandb is not None:
            self._wandb.log(dict(metrics), step=step)

    def close(self) -> None:
        self._file.close()
        if self._wandb is not None:
            self._wandb.finish()


def _truncate_csv(path: Path, last_step: int, columns: Sequence[str]) -> None:
    """Drop rows logged after `last_step` (they are logged again by the resumed run), by
    writing the kept rows to a temporary file and renaming it over the original."""
    with path.open(newline="") as f:
        rows = [
            r
            for r in csv.DictReader(f)
            if (r.get("step") or "").isdigit() and int(r["step"]) <= last_step
        ]
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def _init_wandb(run_dir: Path, config: Mapping[str, Any], cfg: Any) -> Any:
    try:
        import wandb
    except ImportError:
        raise SACError(
            "wandb.enabled=true but wandb is not installed: pip install 'sac[wandb]'"
        ) from None
    return wandb.init(
        project=cfg.project,
        entity=cfg.entity,
        group=cfg.group,
        tags=list(cfg.tags),
        mode=cfg.mode,
        dir=str(run_dir),
        name=run_dir.name,
        config=dict(config),
    )


class Progress:
    """A live progress line: redrawn in place on a terminal, one line per report otherwise."""

    def __init__(self, total_steps: int, stream: Any = None) -> None:
        self.total = total_steps
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last_draw = 0.0

    def update(
        self,
        step: int,
        sps: float,
        recent_return: float | None,
        last_eval: tuple[int, float] | None,
        force: bool = False,
    ) -> None:
        now = time.time()
        if not force and (not self.tty or now - self._last_draw < 0.5):
            return
        self._last_draw = now
        eta = (self.total - step) / sps if sps > 0 else math.inf
        parts = [
            f"step {step}/{self.total} ({100 * step / max(self.total, 1):.0f}%)",
            f"{sps:.0f} sps",
            f"return {recent_return:.1f}" if recent_return is not None else "return -",
            f"eval {last_eval[1]:.1f} @{last_eval[0]}" if last_eval else "eval -",
            f"ETA {_fmt_duration(eta)}",
        ]
        line = " | ".join(parts)
        if self.tty:
            self.stream.write("\r\033[K" + line)
            self.stream.flush()
        else:
            log.info(line)

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def _fmt_duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "-"
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
