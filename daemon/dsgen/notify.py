"""The systemd notification protocol (sd_notify), implemented in-house without python-systemd.

systemd passes ``$NOTIFY_SOCKET`` (a filesystem path, or ``@name`` for an abstract socket) to
a ``Type=notify`` service; the service sends newline-separated ``KEY=VALUE`` assignments as
single AF_UNIX datagrams. ``$WATCHDOG_USEC`` (with ``$WATCHDOG_PID``) carries the watchdog
timeout. Outside systemd every method is a silent no-op. No method ever raises: a failed send
returns False and leaves the reason in :attr:`Notifier.last_error` for the caller to log.

Create the :class:`Notifier` once, early, in the main process and before any worker starts;
with ``unset_environment=True`` the variables are removed from ``os.environ`` so worker
processes (which must not talk to systemd: ``NotifyAccess=main``) do not inherit them.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import MutableMapping

# systemd's manager reads notifications into a PIPE_BUF-sized buffer and drops the whole
# datagram (with a warning) when it does not fit, so every message stays below this size.
MAX_DATAGRAM = 4095
# The variables this module consumes; unset together like sd_notify()/sd_watchdog_enabled().
ENV_VARS = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")
# How long a send may block when systemd's receive queue is full (never stall the main loop).
SEND_TIMEOUT_S = 2.0


def socket_address(value: str) -> str:
    """Turn a ``$NOTIFY_SOCKET`` value into a socket address (``@name`` → abstract, NUL-led)."""
    if value.startswith("@") and len(value) > 1:
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    raise ValueError(f"unsupported NOTIFY_SOCKET {value!r} (need an absolute path or @name)")


def watchdog_interval(environ: MutableMapping[str, str] | None = None) -> float | None:
    """Seconds between WATCHDOG=1 pings (half the timeout), or None if no watchdog is for us."""
    env = os.environ if environ is None else environ
    raw_usec = env.get("WATCHDOG_USEC", "").strip()
    if not raw_usec:
        return None
    try:
        usec = int(raw_usec)
    except ValueError:
        return None
    if usec <= 0:
        return None
    raw_pid = env.get("WATCHDOG_PID", "").strip()
    if raw_pid:
        try:
            pid = int(raw_pid)
        except ValueError:
            return None
        if pid <= 0 or pid != os.getpid():
            return None
    return usec / 2 / 1_000_000


def _one_line(text: str) -> str:
    """Collapse line breaks and NUL bytes so a value cannot start a new assignment."""
    return " ".join(text.replace("\0", " ").splitlines()).strip()


def _truncate_utf8(text: str, max_bytes: int) -> str:
    """Cut text to at most max_bytes of UTF-8 without splitting a character."""
    data = text.encode("utf-8", "replace")
    if len(data) <= max_bytes:
        return text
    return data[:max_bytes].decode("utf-8", "ignore")


def _monotonic_usec() -> int:
    """CLOCK_MONOTONIC in microseconds, the clock systemd compares MONOTONIC_USEC against."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


class Notifier:
    """Sends sd_notify messages to the service manager, or does nothing outside systemd."""

    def __init__(
        self,
        *,
        unset_environment: bool = False,
        environ: MutableMapping[str, str] | None = None,
    ) -> None:
        """Read $NOTIFY_SOCKET and the watchdog variables once; optionally remove them."""
        env = os.environ if environ is None else environ
        self.last_error: str | None = None
        self._address: str | None = None
        self._socket_value = env.get("NOTIFY_SOCKET") or None
        if self._socket_value is not None:
            try:
                self._address = socket_address(self._socket_value)
            except ValueError as e:
                self.last_error = str(e)
        self._watchdog_interval = watchdog_interval(env)
        if unset_environment:
            for name in ENV_VARS:
                env.pop(name, None)

    @property
    def enabled(self) -> bool:
        """True when running under a service manager that asked for notifications."""
        return self._socket_value is not None

    @property
    def socket_value(self) -> str | None:
        """The $NOTIFY_SOCKET value read at construction (None outside systemd)."""
        return self._socket_value

    def watchdog_interval(self) -> float | None:
        """Seconds between WATCHDOG=1 pings (half of $WATCHDOG_USEC), None if not enabled."""
        return self._watchdog_interval

    def send(self, *assignments: str) -> bool:
        """Send KEY=VALUE assignments in one datagram; True if sent or no-op, False on failure."""
        if self._socket_value is None:
            return True
        if self._address is None:
            return False  # last_error says why the socket value is unusable
        data = "\n".join(assignments).encode("utf-8", "replace")
        if not data or len(data) > MAX_DATAGRAM:
            self.last_error = f"notify message of {len(data)} bytes not sent (1–{MAX_DATAGRAM})"
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.settimeout(SEND_TIMEOUT_S)
                sent = sock.sendto(data, self._address)
        except OSError as e:
            self.last_error = f"notify to {self._socket_value!r} failed: {e}"
            return False
        if sent != len(data):
            self.last_error = f"notify to {self._socket_value!r} sent {sent} of {len(data)} bytes"
            return False
        self.last_error = None
        return True

    def ready(self, status: str | None = None) -> bool:
        """Tell systemd start-up (or a reload) is complete: READY=1, with an optional STATUS."""
        if status is None:
            return self.send("READY=1")
        return self.send("READY=1", self._status_line(status))

    def status(self, text: str) -> bool:
        """Publish a one-line status for `systemctl status` (newlines are folded into spaces)."""
        return self.send(self._status_line(text))

    def watchdog(self) -> bool:
        """Ping the watchdog: WATCHDOG=1 (send only while the main loop is healthy)."""
        return self.send("WATCHDOG=1")

    def stopping(self) -> bool:
        """Tell systemd a clean shutdown has begun: STOPPING=1."""
        return self.send("STOPPING=1")

    def reloading(self) -> bool:
        """Tell systemd a reload has begun: RELOADING=1 plus MONOTONIC_USEC in one datagram."""
        return self.send("RELOADING=1", f"MONOTONIC_USEC={_monotonic_usec()}")

    def extend_timeout(self, usec: int) -> bool:
        """Ask for usec more microseconds in the current start/stop/reload phase."""
        if isinstance(usec, bool) or not isinstance(usec, int) or usec <= 0:
            self.last_error = f"EXTEND_TIMEOUT_USEC needs a positive int, got {usec!r}"
            return False
        return self.send(f"EXTEND_TIMEOUT_USEC={usec}")

    def mainpid(self, pid: int) -> bool:
        """Tell systemd which process is the service's main process: MAINPID=pid."""
        if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
            self.last_error = f"MAINPID needs a positive int, got {pid!r}"
            return False
        return self.send(f"MAINPID={pid}")

    @staticmethod
    def _status_line(text: str) -> str:
        """STATUS=<text> on one line, short enough to fit a datagram with READY=1."""
        return "STATUS=" + _truncate_utf8(_one_line(str(text)), 1024)
