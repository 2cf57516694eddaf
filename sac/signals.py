"""Graceful stop: SIGINT, SIGTERM and SIGUSR2 ask a run to finish its step, checkpoint and return.

SIGUSR2 is the signal SLURM sends through submitit (--signal=USR2@signal_delay_s) before the
time limit, and on preemption where the cluster sets preempt_send_user_signal; it does not exist
on Windows. After the run has stopped and saved, SIGUSR2 is handed on to the handler installed
before ours (submitit's requeues the job), and a second SIGINT exits at once.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from types import TracebackType
from typing import Any

log = logging.getLogger("sac")

SIGUSR2: int | None = getattr(signal, "SIGUSR2", None)
STOP_SIGNALS = tuple(s for s in (signal.SIGINT, signal.SIGTERM, SIGUSR2) if s is not None)


class GracefulStop:
    """While entered (`with stop:`), the stop signals set `signal` instead of interrupting;
    the loop asks `requested` between steps. Handlers go back to what they were on exit.

    Checkpoints are written atomically, so the exit on a second SIGINT leaves the last one
    intact.
    """

    def __init__(self, program: str = "sac-train") -> None:
        self.program = program
        self.signal: int | None = None  # the last stop signal received
        self._usr2_received = False  # whether SIGUSR2 took part in the stop (see hand_on)
        self._old_handlers: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.signal is not None

    @property
    def name(self) -> str | None:
        """The stop signal's name (SIGTERM, ...), None if no stop was asked for."""
        return signal.Signals(self.signal).name if self.signal is not None else None

    def __enter__(self) -> GracefulStop:
        self._old_handlers = {}
        if threading.current_thread() is not threading.main_thread():
            return self  # only the main thread may install handlers
        for sig in STOP_SIGNALS:
            if sig == SIGUSR2 and signal.getsignal(sig) is signal.SIG_IGN:
                continue  # someone chose to ignore it; a stray SIGUSR2 must not stop the run
            self._old_handlers[sig] = signal.signal(sig, self._on_signal)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for sig, handler in self._old_handlers.items():
            signal.signal(sig, handler)

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self.signal is not None and signum == signal.SIGINT:
            os.write(
                2,
                f"\n{self.program}: second interrupt, exiting now without a checkpoint\n".encode(),
            )
            os._exit(130)
        self.signal = signum
        # SLURM may send SIGTERM too (a preemption): SIGUSR2 is handed on whichever came last.
        self._usr2_received = self._usr2_received or signum == SIGUSR2
        name = signal.Signals(signum).name
        os.write(2, f"\n{self.program}: {name} received, saving a checkpoint ...\n".encode())

    def hand_on(self) -> None:
        """After a stop that SIGUSR2 took part in (checkpoint written, files closed), call the
        SIGUSR2 handler that was installed before ours: under submitit (SLURM, or its local
        executor) that one requeues the job and exits, and the requeued job resumes from the
        checkpoint. Without one (SIG_DFL), this returns and sac-train exits 128 + the signal."""
        previous = self._old_handlers.get(SIGUSR2) if SIGUSR2 is not None else None
        if not self._usr2_received or not callable(previous):
            return
        name = getattr(previous, "__qualname__", repr(previous))
        log.info("handing SIGUSR2 on to the handler installed before %s's: %s", self.program, name)
        previous(SIGUSR2, None)
