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


class Progress(logging.Filter):
    """The progress line. On a terminal it is redrawn in place (at most twice a second) and
    cleared before any log record prints; every `force`d update is also a log line (console
    and train.log). Off a terminal only the forced updates appear."""

    def __init__(
        self, total_steps: int, start_step: int = 0, warmup_steps: int = 0, stream: Any = None
    ) -> None:
        super().__init__()
        self.total = total_steps
        self.warmup = warmup_steps
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._mark = (time.perf_counter(), start_step)  # for a live steps-per-second estimate
        self._sps = 0.0
        self._drawn = False
        if self.tty:
            log.addFilter(self)

    def filter(self, record: logging.LogRecord) -> bool:
        """Runs before each "sac" log record is handled: clear the line it would run into."""
        if self._drawn:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self._drawn = False
        return True

    def update(
        self,
        step: int,
        recent_return: float | None,
        last_eval: tuple[int, float] | None,
        force: bool = False,
    ) -> None:
        now = time.perf_counter()
        if not force and (not self.tty or now - self._mark[0] < 0.5):
            return
        if step > self._mark[1]:
            sps = (step - self._mark[1]) / (now - self._mark[0])
            # random warm-up steps are far faster than learning ones: forget them for the ETA
            fresh = self._sps == 0 or self._mark[1] <= self.warmup < step
            self._sps = sps if fresh else 0.7 * self._sps + 0.3 * sps
        self._mark = (now, step)
        eta = (self.total - step) / self._sps if self._sps > 0 else math.inf
        line = " | ".join(
            [
                f"step {step}/{self.total} ({100 * step / max(self.total, 1):.0f}%)",
                f"{self._sps:.0f} sps",
                f"return {recent_return:.1f}" if recent_return is not None else "return -",
                f"eval {last_eval[1]:.1f} @{last_eval[0]}" if last_eval else "eval -",
                f"ETA {_fmt_duration(eta)}",
            ]
        )
        if force:
            log.info(line)
        else:
            self.stream.write("\r\033[K" + line)
            self.stream.flush()
            self._drawn = True

    def close(self) -> None:
        self.filter(logging.makeLogRecord({}))
        log.removeFilter(self)


def _fmt_duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "-"
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
