"""Logger backends behind the RunLogger facade (sac/logging.py): the metrics CSV (always on),
TensorBoard and Weights & Biases (chosen with `logger=`). Each backend takes metric rows keyed
by env step and, where it can show them, videos; the optional packages import lazily."""

from __future__ import annotations

import csv
import math
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from sac.errors import SACError

# The names `logger=` accepts. CSV is always written; naming it changes nothing.
LOGGER_CHOICES = ("csv", "tensorboard", "wandb")
# The W&B metric that holds the env step, the x axis of every other metric.
WANDB_STEP_METRIC = "global_step"


class Logger(Protocol):
    """What the facade asks of a backend."""

    def log(self, step: int, metrics: Mapping[str, float]) -> None: ...

    def log_video(self, step: int, key: str, path: Path) -> None: ...

    def close(self) -> None: ...


def logger_names(choice: Any, wandb_enabled: bool = False) -> list[str]:
    """The optional backends to run: `logger=` (a name, a list of names, or null/none) plus
    wandb when `wandb.enabled=true` (an alias). CSV is always on and not listed."""
    if choice is None or choice == "none":
        names: list[Any] = []
    elif isinstance(choice, str):
        names = [choice]
    elif isinstance(choice, Sequence):  # a list from the command line (a ListConfig)
        names = list(choice)
    else:
        names = [choice]
    for name in names:
        if name not in LOGGER_CHOICES:
            raise SACError(
                f"logger={_show(choice)}: unknown logger '{name}'; choose from "
                f"{', '.join(LOGGER_CHOICES)} or a list such as logger=[tensorboard,wandb] "
                "(CSV is always written)"
            )
    chosen = [n for n in dict.fromkeys(names) if n != "csv"]
    if wandb_enabled and "wandb" not in chosen:
        chosen.append("wandb")
    return chosen


def _show(choice: Any) -> str:
    if isinstance(choice, Sequence) and not isinstance(choice, str):
        return "[" + ",".join(str(c) for c in choice) + "]"
    return str(choice)


class CSVLogger:
    """metrics.csv: one row per call, `step` and `time` (s since the run started, the time
    between its processes left out) first, then the fixed `columns`; a row fills the columns
    it has. Flushed per row, so a killed run keeps its rows.

    With `resume_step`, rows logged after that step (by a run that went on past its last
    checkpoint) are dropped first: the resumed run logs them again, and its time goes on from
    the last row kept.
    """

    def __init__(self, path: Path, columns: Sequence[str], resume_step: int | None = None) -> None:
        self.path = path
        self.columns = ("step", "time", *columns)
        elapsed = 0.0
        if resume_step is not None and path.exists():
            elapsed = _truncate_csv(path, resume_step, self.columns)
        new = not path.exists()
        self._file = path.open("a", newline="")
        self._csv = csv.DictWriter(self._file, fieldnames=self.columns)
        if new:
            self._csv.writeheader()
        self._start = time.time() - elapsed

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        unknown = set(metrics) - set(self.columns)
        if unknown:  # a programming error, not a user one: keep the CSV's columns fixed
            raise KeyError(f"metrics not among the CSV columns: {sorted(unknown)}")
        row = {"step": step, "time": round(time.time() - self._start, 3), **metrics}
        self._csv.writerow(row)
        self._file.flush()

    def log_video(self, step: int, key: str, path: Path) -> None:
        """Videos stay where they were written (the run's videos/ directory)."""

    def close(self) -> None:
        self._file.close()


def _truncate_csv(path: Path, last_step: int, columns: Sequence[str]) -> float:
    """Drop rows logged after `last_step` (they are logged again by the resumed run), by
    writing the kept rows to a temporary file and renaming it over the original; return the
    time of the last row kept (0 without one)."""
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
    times = [float(r["time"]) for r in rows if _is_number(r.get("time"))]
    return max(times, default=0.0)


def _is_number(text: str | None) -> bool:
    try:
        return math.isfinite(float(text or "nan"))
    except ValueError:
        return False


class TensorBoardLogger:
    """Scalars in TensorBoard event files under `log_dir`, one tag per metric, against the env
    step. Videos are not sent: SummaryWriter.add_video needs the frames in memory and moviepy."""

    def __init__(self, log_dir: Path, resume_step: int | None = None) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise SACError(
                "logger=tensorboard but tensorboard is not installed: "
                "pip install 'sac[tensorboard]'"
            ) from None
        # purge_step hides the events an earlier process logged after the checkpoint being
        # resumed (TensorBoard drops them on reading), as the CSV drops its rows: the resumed
        # run logs those steps again.
        purge = None if resume_step is None else resume_step + 1
        try:
            self._writer = SummaryWriter(str(log_dir), purge_step=purge)
        except OSError as e:
            raise SACError(
                f"cannot write TensorBoard logs to {log_dir}: {e}; set tensorboard.log_dir=..."
            ) from None

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        for key, value in metrics.items():
            self._writer.add_scalar(key, value, step)

    def log_video(self, step: int, key: str, path: Path) -> None:
        """Not sent (see the class docstring); the MP4 is in the run's videos/ directory."""

    def close(self) -> None:
        self._writer.close()


class WandbLogger:
    """A Weights & Biases run: the resolved config, every metric against the env step
    (`global_step`), eval videos. With `run_id` (from a checkpoint) it continues that run."""

    def __init__(
        self, run_dir: Path, config: Mapping[str, Any], cfg: Any, run_id: str | None = None
    ) -> None:
        try:
            import wandb
        except ImportError:
            raise SACError(
                "logger=wandb (or wandb.enabled=true) but wandb is not installed: "
                "pip install 'sac[wandb]'"
            ) from None
        self._wandb = wandb
        try:
            self._run = wandb.init(
                project=cfg.project,
                entity=cfg.entity,
                group=cfg.group,
                tags=list(cfg.tags),
                mode=cfg.mode,
                dir=str(run_dir),
                name=run_dir.name,
                config=dict(config),
                id=run_id,
                resume="allow" if run_id else None,
            )
        except Exception as e:  # wandb raises many types (usage, network, auth); say which
            detail = " ".join(str(e).split())[:300]
            raise SACError(
                f"W&B could not start ({type(e).__name__}: {detail}); check wandb.* and your "
                "login (wandb login), or log without an account: wandb.mode=offline"
            ) from None
        self.run_id: str = self._run.id
        # The env step is a metric of its own rather than W&B's `step`: a resumed run logs the
        # steps after its checkpoint again, and W&B drops rows whose `step` goes backwards.
        self._run.define_metric(WANDB_STEP_METRIC)
        self._run.define_metric("*", step_metric=WANDB_STEP_METRIC)

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        self._run.log({**metrics, WANDB_STEP_METRIC: step})

    def log_video(self, step: int, key: str, path: Path) -> None:
        self._run.log({key: self._wandb.Video(str(path), format="mp4"), WANDB_STEP_METRIC: step})

    def close(self) -> None:
        self._run.finish()
