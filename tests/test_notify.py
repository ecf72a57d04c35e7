"""sd_notify protocol: every message reaches a real AF_UNIX datagram socket as systemd expects."""

from __future__ import annotations

import os
import secrets
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dsgen import notify
from dsgen.notify import Notifier, socket_address, watchdog_interval

Receiver = tuple[socket.socket, str]  # bound socket, $NOTIFY_SOCKET value


def _bind(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(2.0)
    return sock


@pytest.fixture
def path_socket(tmp_path: Path) -> Iterator[Receiver]:
    """A datagram socket bound to a filesystem path, like systemd's /run/systemd/notify."""
    path = str(tmp_path / "notify")
    sock = _bind(path)
    yield sock, path
    sock.close()


@pytest.fixture
def abstract_socket() -> Iterator[Receiver]:
    """A datagram socket in the abstract namespace, named @dsgen-test-<random>."""
    name = f"dsgen-test-{secrets.token_hex(8)}"
    sock = _bind("\0" + name)
    yield sock, "@" + name
    sock.close()


@pytest.fixture(params=["path", "abstract"])
def receiver(request: pytest.FixtureRequest) -> Receiver:
    """Both kinds of notify socket, so every protocol test runs against each."""
    fixture = "path_socket" if request.param == "path" else "abstract_socket"
    result: Receiver = request.getfixturevalue(fixture)
    return result


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the environment of a service manager that may be running the suite."""
    for name in notify.ENV_VARS:
        monkeypatch.delenv(name, raising=False)


def _recv(sock: socket.socket) -> str:
    return sock.recv(65536).decode("utf-8")


def _assert_nothing_queued(sock: socket.socket) -> None:
    sock.setblocking(False)
    with pytest.raises(BlockingIOError):
        sock.recv(65536)


def _notifier(monkeypatch: pytest.MonkeyPatch, value: str) -> Notifier:
    monkeypatch.setenv("NOTIFY_SOCKET", value)
    return Notifier()


def test_ready_is_exactly_ready_1(receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    """ready() sends the single datagram b'READY=1' and reports success."""
    sock, value = receiver
    n = _notifier(monkeypatch, value)
    assert n.enabled
    assert n.ready() is True
    assert sock.recv(65536) == b"READY=1"
    assert n.last_error is None
    _assert_nothing_queued(sock)


def test_ready_with_status_is_one_datagram(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ready(status) carries READY=1 and STATUS=… in the same datagram, newline-separated."""
    sock, value = receiver
    n = _notifier(monkeypatch, value)
    assert n.ready("resumed: 42/116 videos")
    assert _recv(sock) == "READY=1\nSTATUS=resumed: 42/116 videos"


def test_status_line_is_verbatim(receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    """status(text) sends STATUS=<text> unchanged for a one-line UTF-8 progress text."""
    sock, value = receiver
    n = _notifier(monkeypatch, value)
    text = "42/116 videos, GENERAL 23.1%, SPACE 16.2%, TOON 7.0%, 8.2 patches/min — ÄÖÜ"
    assert n.status(text)
    assert _recv(sock) == "STATUS=" + text


def test_status_newlines_cannot_inject_assignments(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Newlines (and NULs) in a status are folded, so the text can never smuggle in READY=1."""
    sock, value = receiver
    n = _notifier(monkeypatch, value)
    assert n.status("line one\nREADY=1\r\nline\0three\n")
    msg = _recv(sock)
    assert msg == "STATUS=line one READY=1 line three"
    assert "\n" not in msg and "\0" not in msg


def test_status_is_capped_to_fit_a_datagram(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An over-long status is cut on a character boundary, not dropped by systemd's buffer."""
    sock, value = receiver
    n = _notifier(monkeypatch, value)
    assert n.status("é" * 5000)
    raw = sock.recv(65536)
    assert len(raw) < notify.MAX_DATAGRAM
    text = raw.decode("utf-8")  # would raise if a multi-byte character had been split
    assert text.startswith("STATUS=é") and set(text[len("STATUS="):]) == {"é"}


@pytest.mark.parametrize(
    ("method", "expected"),
    [("watchdog", "WATCHDOG=1"), ("stopping", "STOPPING=1")],
)
def test_simple_messages(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch, method: str, expected: str
) -> None:
    """watchdog() and stopping() each send exactly their one assignment."""
    sock, value = receiver
    n = _notifier(monkeypatch, value)
    assert getattr(n, method)() is True
    assert _recv(sock) == expected


def test_reloading_carries_monotonic_usec(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """reloading() sends RELOADING=1 and MONOTONIC_USEC=<CLOCK_MONOTONIC µs> in one datagram."""
    sock, value = receiver
    n = _notifier(monkeypatch, value)
    before = time.monotonic_ns() // 1000
    assert n.reloading()
    after = time.monotonic_ns() // 1000
    lines = _recv(sock).split("\n")
    assert len(lines) == 2
    assert lines[0] == "RELOADING=1"
    key, _, number = lines[1].partition("=")
    assert key == "MONOTONIC_USEC"
    assert number.isdigit()
    assert before <= int(number) <= after


def test_extend_timeout_and_mainpid(receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    """extend_timeout and mainpid send integer assignments; bad values send nothing."""
    sock, value = receiver
    n = _notifier(monkeypatch, value)
    assert n.extend_timeout(90_000_000)
    assert _recv(sock) == "EXTEND_TIMEOUT_USEC=90000000"
    assert n.mainpid(4242)
    assert _recv(sock) == "MAINPID=4242"
    assert n.extend_timeout(0) is False
    assert n.extend_timeout(True) is False
    assert n.mainpid(-1) is False
    assert n.last_error is not None
    _assert_nothing_queued(sock)


def test_messages_arrive_in_order(receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    """A whole life cycle arrives as separate datagrams, in the order they were sent."""
    sock, value = receiver
    n = _notifier(monkeypatch, value)
    assert n.status("loading state")
    assert n.ready()
    assert n.watchdog()
    assert n.reloading()
    assert n.ready()
    assert n.stopping()
    got = [_recv(sock).split("\n")[0] for _ in range(6)]
    assert got == ["STATUS=loading state", "READY=1", "WATCHDOG=1", "RELOADING=1", "READY=1",
                   "STOPPING=1"]


def test_socket_value_is_read_once(
    path_socket: Receiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The socket is taken from the environment at construction; later changes do not matter."""
    sock, value = path_socket
    n = _notifier(monkeypatch, value)
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "elsewhere"))
    assert n.ready()
    assert _recv(sock) == "READY=1"


def test_noop_when_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without $NOTIFY_SOCKET every method is a successful no-op that opens no socket."""

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("a socket was created although NOTIFY_SOCKET is unset")

    monkeypatch.setattr(socket, "socket", forbidden)
    n = Notifier()
    assert not n.enabled
    assert n.socket_value is None
    results = [n.ready(), n.ready("x"), n.status("x"), n.watchdog(), n.stopping(),
               n.reloading(), n.extend_timeout(1), n.mainpid(1)]
    assert results == [True] * len(results)
    assert n.last_error is None
    assert n.watchdog_interval() is None


def test_empty_socket_value_is_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    """NOTIFY_SOCKET= (empty) is treated like unset, as sd_notify does."""
    n = _notifier(monkeypatch, "")
    assert not n.enabled
    assert n.ready() is True


def test_vanished_socket_returns_false(
    path_socket: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the socket path is gone, sends return False with a reason instead of raising."""
    sock, value = path_socket
    n = _notifier(monkeypatch, value)
    sock.close()
    os.unlink(value)
    assert n.ready() is False
    assert n.last_error is not None and value in n.last_error
    assert n.watchdog() is False
    assert n.reloading() is False


def test_unbound_abstract_socket_returns_false(monkeypatch: pytest.MonkeyPatch) -> None:
    """An abstract name nobody listens on fails softly (ECONNREFUSED) instead of raising."""
    n = _notifier(monkeypatch, f"@dsgen-test-absent-{secrets.token_hex(8)}")
    assert n.status("x") is False
    assert n.last_error is not None


def test_recovers_after_a_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failed send does not poison the notifier: once the socket exists again, sends work."""
    path = str(tmp_path / "notify")
    n = _notifier(monkeypatch, path)
    assert n.watchdog() is False
    sock = _bind(path)
    try:
        assert n.watchdog() is True
        assert n.last_error is None
        assert _recv(sock) == "WATCHDOG=1"
    finally:
        sock.close()


@pytest.mark.parametrize("value", ["relative/notify", "@", "vsock:2:1234"])
def test_unusable_socket_value_returns_false(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A NOTIFY_SOCKET that is neither an absolute path nor @name fails softly with a reason."""
    n = _notifier(monkeypatch, value)
    assert n.enabled
    assert n.ready() is False
    assert n.last_error is not None and "NOTIFY_SOCKET" in n.last_error


def test_path_too_long_returns_false(monkeypatch: pytest.MonkeyPatch) -> None:
    """A path longer than sockaddr_un allows fails softly instead of raising."""
    n = _notifier(monkeypatch, "/" + "x" * 200)
    assert n.ready() is False
    assert n.last_error is not None


def test_socket_address_forms() -> None:
    """@name becomes a NUL-led abstract address; absolute paths pass through unchanged."""
    assert socket_address("@dsgen") == "\0dsgen"
    assert socket_address("/run/systemd/notify") == "/run/systemd/notify"
    with pytest.raises(ValueError):
        socket_address("notify")


def test_sockets_are_cloexec(path_socket: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    """The sending socket is created with SOCK_CLOEXEC, so no child could inherit it."""
    _, value = path_socket
    seen: list[int] = []
    real_socket = socket.socket

    def spy(family: int, kind: int, *args: object) -> socket.socket:
        seen.append(kind)
        return real_socket(family, kind)

    monkeypatch.setattr(socket, "socket", spy)
    n = _notifier(monkeypatch, value)
    assert n.ready()
    assert seen and all(k & socket.SOCK_CLOEXEC and k & socket.SOCK_DGRAM for k in seen)


def test_unset_environment_hides_variables_from_children(
    path_socket: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """unset_environment=True hides NOTIFY_SOCKET/WATCHDOG_* yet keeps notifying and the period."""
    sock, value = path_socket
    monkeypatch.setenv("NOTIFY_SOCKET", value)
    monkeypatch.setenv("WATCHDOG_USEC", "300000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    n = Notifier(unset_environment=True)
    for name in notify.ENV_VARS:
        assert name not in os.environ
    assert n.watchdog_interval() == 150.0
    assert n.ready()
    assert _recv(sock) == "READY=1"


def test_environment_kept_by_default(
    path_socket: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without unset_environment the variables stay, as sd_notify(0, …) leaves them."""
    _, value = path_socket
    monkeypatch.setenv("NOTIFY_SOCKET", value)
    Notifier()
    assert os.environ["NOTIFY_SOCKET"] == value


def test_explicit_environ_mapping(path_socket: Receiver) -> None:
    """An explicit environ mapping is read (and unset) instead of os.environ."""
    sock, value = path_socket
    env = {"NOTIFY_SOCKET": value, "WATCHDOG_USEC": "1000000", "OTHER": "1"}
    n = Notifier(unset_environment=True, environ=env)
    assert env == {"OTHER": "1"}
    assert n.watchdog_interval() == 0.5
    assert n.stopping()
    assert _recv(sock) == "STOPPING=1"


@pytest.mark.parametrize(
    ("usec", "pid", "expected"),
    [
        ("300000000", None, 150.0),  # WatchdogSec=5min, no WATCHDOG_PID: ping every 2.5 min
        ("1000000", "self", 0.5),  # WATCHDOG_PID names this process
        ("1000000", "other", None),  # meant for another process (e.g. our parent)
        ("1000000", "0", None),
        ("1000000", "abc", None),
        ("0", None, None),  # WatchdogSec=0: disabled
        ("-5", None, None),
        ("12s", None, None),
        ("", None, None),
        (None, "self", None),  # no WATCHDOG_USEC: no watchdog
    ],
)
def test_watchdog_interval(
    usec: str | None, pid: str | None, expected: float | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ping period is half of $WATCHDOG_USEC, and None unless the watchdog is ours."""
    if usec is not None:
        monkeypatch.setenv("WATCHDOG_USEC", usec)
    if pid is not None:
        value = {"self": str(os.getpid()), "other": str(os.getpid() + 1)}.get(pid, pid)
        monkeypatch.setenv("WATCHDOG_PID", value)
    assert watchdog_interval() == expected
    assert Notifier().watchdog_interval() == expected
