"""Checkpoint files written on a thread while training goes on.

Writing a checkpoint is I/O and serialisation of the weights and the optimiser state (over a
gigabyte for ResNet-50 with the paper's 8192-wide expander; benchmarks/step.py measures the
cost). Done inline, every step that checkpoints stalls for that long. :class:`BackgroundWriter` runs one write at a time
on a thread: the trainer hands it a job that owns copies of everything it writes (taken at
the checkpoint's step, so later steps cannot change what lands on disk), and joins it before
the next checkpoint, at the end of training and before a preempted process exits.

A failed write is raised again, unchanged, by the next :meth:`BackgroundWriter.wait` (the
next checkpoint, or the end of training): a full disk stops the run as it would inline,
one checkpoint later at most, and LATEST still names the last complete checkpoint.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

logger = logging.getLogger("multivic")


class BackgroundWriter:
    """At most one job at a time on a thread; :meth:`wait` joins it and re-raises its error."""

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def submit(self, job: Callable[[], None]) -> None:
        """Run ``job`` on a new thread, after the previous job has finished (its error raised here)."""
        self.wait()
        self._thread = threading.Thread(target=self._run, args=(job,), name="multivic-checkpoint", daemon=True)
        self._thread.start()

    def _run(self, job: Callable[[], None]) -> None:
        try:
            job()
        except BaseException as exc:  # handed to the training thread by wait()
            self._error = exc

    @property
    def failed(self) -> bool:
        """The last job has ended with an exception that no :meth:`wait` has raised yet (never blocks)."""
        return self._error is not None and (self._thread is None or not self._thread.is_alive())

    def join(self) -> BaseException | None:
        """Block until the job in flight is done; return (and forget) the exception it ended with."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        error, self._error = self._error, None
        return error

    def wait(self) -> None:
        """Block until the job in flight is done; raise the exception it ended with, if any."""
        error = self.join()
        if error is not None:
            raise error

    def wait_quietly(self) -> None:
        """:meth:`wait` while another exception is on its way out: log a failed write instead
        of hiding the exception that stopped training."""
        try:
            self.wait()
        except BaseException as exc:  # noqa: BLE001 - the one being raised already matters more
            logger.error("writing the last checkpoint failed too: %s", exc, exc_info=exc)
