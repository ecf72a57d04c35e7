"""The DsgenError family: every error a user can see, with its exit code."""

from __future__ import annotations

# Exit codes (borg style): 0 ok, 1 warning (finished, some targets short),
# 2 error (bad config or input), 130 interrupted by the user (128 + SIGINT),
# 143 terminated (128 + SIGTERM). Documented in README "Exit codes".
EXIT_OK = 0
EXIT_WARNING = 1
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


class DsgenError(Exception):
    """Base of all errors dsgen reports to the user instead of a traceback."""

    exit_code = EXIT_ERROR

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  → {self.hint}"

    def __reduce__(self) -> tuple[object, ...]:
        # Subclasses take other constructor arguments than Exception.args: rebuild from the
        # attributes, so every error crosses process boundaries (a worker's VideoError).
        return (_restore, (type(self), dict(self.__dict__)))


def _restore(cls: type[DsgenError], attrs: dict[str, object]) -> DsgenError:
    """Unpickle a DsgenError of any subclass from its attributes."""
    err = cls.__new__(cls)
    Exception.__init__(err, attrs.get("message", ""))
    err.__dict__.update(attrs)
    return err


class ConfigError(DsgenError):
    """The config file is missing, unreadable or has a bad key or value."""

    def __init__(self, file: str, key: str, problem: str, fix: str) -> None:
        super().__init__(f"{file}: {key}: {problem}", hint=fix)
        self.file = file
        self.key = key


class VideoError(DsgenError):
    """A video cannot be opened, probed or decoded."""

    def __init__(self, path: str, stage: str, reason: str, hint: str | None = None) -> None:
        super().__init__(f"{path}: {stage}: {reason}", hint=hint)
        self.path = path
        self.stage = stage
        self.reason = reason


class StateError(DsgenError):
    """The state database is unusable (locked, corrupt, from a newer version)."""


class StateInUse(StateError):
    """Another dsgen process holds the state dir's lock."""


class StateDamaged(StateError):
    """SQLite reports the state database damaged (malformed page, not a database)."""


class StateFull(StateError):
    """The state's filesystem is full: the transaction was rolled back, nothing changed."""


class OutputError(DsgenError):
    """The output root cannot be written (permissions, read-only filesystem, I/O error)."""


class DiskFullError(DsgenError):
    """The output filesystem has no space left; the write was rolled back."""

    exit_code = EXIT_WARNING
