"""The run's outputs as the trainer sees them: one facade (RunLogger) over the logger backends
of sac/loggers.py (metrics CSV always, TensorBoard and W&B on request), and the live progress
line on the console."""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from sac.loggers import CSVLogger, Logger, TensorBoardLogger, WandbLogger, logger_names

log = logging.getLogger("sac")


class RunLogger:
    """The one logger the trainer talks to: fans metric rows (keyed by env step) and videos out
    to metrics.csv, always, and to the backends `logger=` names (TensorBoard, W&B).

    `state()` is what a checkpoint keeps of the loggers (the W&B run id); a resumed run passes
    it back as `state` so it continues the same W&B run. With `resume_step`, what was logged
    after that step is dropped (CSV rows) or hidden (TensorBoard events): it is logged again.
    """

    def __init__(
        self,
        run_dir: Path,
        columns: Sequence[str],
        cfg: DictConfig,
        resume_step: int | None = None,
        state: Mapping[str, Any] | None = None,
    ) -> None:
        self._state: dict[str, Any] = dict(state or {})  # kept even if W&B is off this time
        self._backends: list[Logger] = []
        try:
            # The optional backends start first: one that fails (W&B cannot log in, a package
            # is missing) stops the run before metrics.csv is touched.
            for name in logger_names(cfg.logger, cfg.wandb.enabled):
                if name == "wandb":
                    config = OmegaConf.to_container(cfg, resolve=True)
                    run = WandbLogger(
                        run_dir, config, cfg.wandb, run_id=self._state.get("wandb_run_id")
                    )
                    self._state["wandb_run_id"] = run.run_id
                    self._backends.append(run)
                elif name == "tensorboard":
                    log_dir = cfg.tensorboard.log_dir or run_dir / "tensorboard"
                    self._backends.append(TensorBoardLogger(Path(log_dir), resume_step))
            self._backends.insert(0, CSVLogger(run_dir / "metrics.csv", columns, resume_step))
        except BaseException:
            self.close()
            raise

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        for backend in self._backends:
            backend.log(step, metrics)

    def log_video(self, step: int, key: str, path: Path) -> None:
        """Hand a finished MP4 to the backends that show videos (W&B)."""
        for backend in self._backends:
            backend.log_video(step, key, path)

    def state(self) -> dict[str, Any]:
        """For the checkpoint: plain strings only (it loads with weights_only=True)."""
        return dict(self._state)

    def close(self) -> None:
        """Close every backend; one that fails to close (W&B's final sync) is reported, not
        raised: the run's checkpoint and CSV are already safe."""
        for backend in reversed(self._backends):
            try:
                backend.close()
            except Exception as e:
                log.warning("could not close the %s: %s", type(backend).__name__, e)
        self._backends = []


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
