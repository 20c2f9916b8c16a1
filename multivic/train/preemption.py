"""Stop cleanly when the scheduler says so: SIGTERM or SIGUSR1 → checkpoint after this step, exit.

SLURM (``--signal``), Kubernetes and cloud spot instances send SIGTERM or SIGUSR1 some time
before they kill a job. The first signal only sets a flag; the loop finishes the optimiser step
it is in, writes a checkpoint and raises :class:`multivic.errors.Preempted` (exit code 75). A
second signal restores the default action and re-sends itself: the process exits at once.

With several processes the signal may reach them at different steps, so the flag is combined
over processes (one tiny all-reduce per step) and every process stops after the same step.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from types import FrameType
from typing import Any

logger = logging.getLogger("multivic")

STOP_SIGNALS = tuple(s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGUSR1", None)) if s is not None)


class StopRequests:
    """A context manager that turns :data:`STOP_SIGNALS` into a flag for the training loop.

    Handlers are only installed in the main thread (Python allows no other); elsewhere the
    signals keep their previous behaviour.
    """

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "StopRequests":
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signal is not None:  # the second one: no more waiting
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        self.signal = signum
        logger.warning(
            "received %s: stopping after this step with a checkpoint (send it again to exit at once)",
            signal.Signals(signum).name,
        )

    @property
    def requested(self) -> bool:
        """Whether this process received a stop signal."""
        return self.signal is not None
