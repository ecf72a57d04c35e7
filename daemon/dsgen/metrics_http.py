"""The /metrics HTTP server: one thread, a bounded number of connections, bounded time.

prometheus_client's own server starts a thread per connection and waits on each for ever;
here one selector loop serves every connection. At most `max_connections` are open (a new
one evicts the oldest that has not finished its request), each has `read_seconds` to send
its request and `write_seconds` to take the answer. Answers come from prometheus_client's
WSGI app, so content negotiation (OpenMetrics, gzip, `name[]` filters) stays theirs.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

# Connections open at once: Prometheus scrapes with one; a few dashboards and curls fit.
MAX_CONNECTIONS = 32
# Seconds a client has to send its request line and headers, and to read the answer.
READ_SECONDS = 10.0
WRITE_SECONDS = 10.0
# A request larger than this (line + headers; a scrape's is ~200 bytes) is refused.
MAX_REQUEST_BYTES = 16 * 1024
# How often the loop wakes to close connections past their deadline.
TICK_SECONDS = 0.25

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


@dataclass
class _Conn:
    sock: socket.socket
    deadline: float
    inbox: bytearray = field(default_factory=bytearray)
    outbox: bytes = b""
    writing: bool = False


class BoundedServer:
    """Serves `app` on (address, port) from one daemon thread until `stop`."""

    def __init__(self, app: WsgiApp, address: str, port: int, *,
                 max_connections: int = MAX_CONNECTIONS, read_seconds: float = READ_SECONDS,
                 write_seconds: float = WRITE_SECONDS) -> None:
        self.app = app
        self.max_connections = max_connections
        self.read_seconds = read_seconds
        self.write_seconds = write_seconds
        family, kind, proto, _, sockaddr = socket.getaddrinfo(
            address, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        self.sock = socket.socket(family, kind, proto)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.bind(sockaddr)
            self.sock.listen(128)
        except OSError:
            self.sock.close()
            raise
        self.sock.setblocking(False)
        self.address = address
        self.port = int(self.sock.getsockname()[1])
        self._sel = selectors.DefaultSelector()
        self._sel.register(self.sock, selectors.EVENT_READ)
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._sel.register(self._wake_r, selectors.EVENT_READ)
        self._conns: dict[socket.socket, _Conn] = {}  # oldest first
        self._stop = threading.Event()
        self.rejected = 0  # connections closed early (evicted, too slow, too large)
        self.thread = threading.Thread(target=self._serve, name="dsgen-metrics", daemon=True)

    def start(self) -> None:
        """Start the serving thread."""
        self.thread.start()

    def stop(self) -> None:
        """Stop serving and close every socket (idempotent)."""
        self._stop.set()
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        if self.thread.is_alive() and self.thread is not threading.current_thread():
            self.thread.join(timeout=5)
        for c in list(self._conns.values()):
            self._close(c)
        for s in (self.sock, self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                s.close()
        with contextlib.suppress(Exception):
            self._sel.close()

    @property
    def open_connections(self) -> int:
        """Client connections open right now."""
        return len(self._conns)

    # -- the loop ----------------------------------------------------------------------------

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                events = self._sel.select(TICK_SECONDS)
            except OSError:
                break
            for key, _ in events:
                sock = key.fileobj
                if sock is self.sock:
                    self._accept()
                elif sock is self._wake_r:
                    with contextlib.suppress(OSError):
                        self._wake_r.recv(64)
                else:
                    conn = self._conns.get(sock)  # type: ignore[call-overload]
                    if conn is not None:
                        self._service(conn)
            now = time.monotonic()
            for c in [c for c in self._conns.values() if now > c.deadline]:
                self.rejected += 1
                self._close(c)

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # e.g. EMFILE: try again on the next event
                return
            if len(self._conns) >= self.max_connections:
                oldest = next((c for c in self._conns.values() if not c.writing), None)
                if oldest is None:
                    self.rejected += 1
                    sock.close()
                    continue
                self.rejected += 1
                self._close(oldest)
            sock.setblocking(False)
            conn = _Conn(sock, time.monotonic() + self.read_seconds)
            self._conns[sock] = conn
            self._sel.register(sock, selectors.EVENT_READ)

    def _service(self, c: _Conn) -> None:
        try:
            if c.writing:
                sent = c.sock.send(c.outbox)
                c.outbox = c.outbox[sent:]
                if not c.outbox:
                    self._close(c)
                return
            data = c.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(c)
            return
        if not data:
            self._close(c)
            return
        c.inbox += data
        end = c.inbox.find(b"\r\n\r\n")
        if end < 0:
            end = c.inbox.find(b"\n\n")
        if end < 0:
            if len(c.inbox) > MAX_REQUEST_BYTES:
                self.rejected += 1
                self._answer(c, _plain(431, "Request Header Fields Too Large"))
            return
        self._answer(c, self._respond(bytes(c.inbox[:end])))

    def _answer(self, c: _Conn, response: bytes) -> None:
        c.outbox, c.writing = response, True
        c.deadline = time.monotonic() + self.write_seconds
        self._sel.modify(c.sock, selectors.EVENT_WRITE)
        self._service(c)

    def _close(self, c: _Conn) -> None:
        self._conns.pop(c.sock, None)
        with contextlib.suppress(KeyError, ValueError, OSError):
            self._sel.unregister(c.sock)
        with contextlib.suppress(OSError):
            c.sock.close()

    # -- one request -------------------------------------------------------------------------

    def _respond(self, head: bytes) -> bytes:
        """The full HTTP/1.0 response to a request head (line + headers)."""
        lines = head.decode("latin-1").replace("\r\n", "\n").split("\n")
        parts = lines[0].split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            return _plain(400, "Bad Request")
        method, target, _ = parts
        path, _, query = target.partition("?")
        environ: dict[str, Any] = {
            "REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query,
            "SERVER_NAME": self.address, "SERVER_PORT": str(self.port),
            "SERVER_PROTOCOL": "HTTP/1.0", "SCRIPT_NAME": "",
            "wsgi.version": (1, 0), "wsgi.url_scheme": "http", "wsgi.input": None,
            "wsgi.errors": sys.stderr, "wsgi.multithread": False,
            "wsgi.multiprocess": False, "wsgi.run_once": False,
        }
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                environ["HTTP_" + name.strip().upper().replace("-", "_")] = value.strip()
        started: list[Any] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc: Any = None
                           ) -> None:
            started[:] = [status, headers]
        try:
            body = b"".join(self.app(environ, start_response))
        except Exception:  # a collector that raised: answer, keep serving
            return _plain(500, "Internal Server Error")
        status, headers = started or ["500 Internal Server Error", []]
        head_lines = [f"HTTP/1.0 {status}"] + [f"{k}: {v}" for k, v in headers
                                              if k.lower() not in ("content-length",
                                                                   "connection")]
        head_lines += [f"Content-Length: {len(body)}", "Connection: close"]
        out = ("\r\n".join(head_lines) + "\r\n\r\n").encode("latin-1")
        return out if method == "HEAD" else out + body


def _plain(code: int, text: str) -> bytes:
    body = f"{text}\n".encode()
    return (f"HTTP/1.0 {code} {text}\r\nContent-Type: text/plain\r\nContent-Length: "
            f"{len(body)}\r\nConnection: close\r\n\r\n").encode() + body
