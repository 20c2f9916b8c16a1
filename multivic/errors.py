"""User-facing errors: each carries a one-line message that names the problem and the fix.

The CLI prints these without a traceback (unless ``--debug``) and exits non-zero. Anything
else that escapes is a bug in multivic and is shown with its traceback.
"""


class MultivicError(Exception):
    """Base class of the errors a user can cause and fix."""


class ConfigError(MultivicError, ValueError):
    """A recipe or override is wrong: unknown key, wrong type, impossible value."""


class DataError(MultivicError, ValueError):
    """A data set on disk is missing, empty or unreadable."""


class RegistryError(MultivicError, KeyError):
    """An encoder name is unknown or a registration is invalid."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0]) if self.args else ""


class RunDirError(MultivicError):
    """A run directory is missing, incomplete or was made by a different recipe."""


class NonFiniteLossError(MultivicError, ValueError):
    """An objective's value or its inputs hold NaN or Inf: the model diverged or the data is corrupt.

    Every registered objective raises this one type, so the trainer handles divergence the same
    way whatever the loss.
    """


class Preempted(MultivicError):
    """Training stopped on SIGTERM or SIGUSR1 after writing a checkpoint; the same command resumes.

    The CLI exits with :attr:`exit_code` (75, EX_TEMPFAIL: "try again later"), which a scheduler
    script can tell from success (0), a user error (2) and a crash (1), and requeue the job on.
    """

    exit_code = 75
