"""Helpers of the hostile-input tests (issue 24): a FIFO that cannot hang a test run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# Waits, then opens the FIFO's other end again and again (O_RDWR never blocks), until killed.
# A separate process: a reader blocked inside a library that holds the GIL stops every thread.
_RELEASER = """
import os, sys, time
path, timeout = sys.argv[1], float(sys.argv[2])
time.sleep(timeout)
open(sys.argv[3], "w").close()
while True:
    try:
        os.close(os.open(path, os.O_RDWR | os.O_NONBLOCK))
    except OSError:
        pass
    time.sleep(0.05)
"""


class Fifo:
    """A FIFO at ``path``. Code that opens it would block forever; after ``timeout`` seconds a
    helper process opens the other end (repeatedly), so a blocked reader or writer goes on and
    the test fails instead of hanging. :meth:`close` says whether it had to."""

    def __init__(self, path: Path, timeout: float = 15.0) -> None:
        self.path = Path(path)
        os.mkfifo(self.path)
        self._marker = self.path.with_name(f".{self.path.name}.fired")
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _RELEASER, str(self.path), str(timeout), str(self._marker)]
        )

    def close(self) -> bool:
        """Stop the helper; whether something blocked on the FIFO until it stepped in."""
        self._proc.kill()
        self._proc.wait(timeout=10)
        fired = self._marker.exists()
        self._marker.unlink(missing_ok=True)
        return fired

    def __del__(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
