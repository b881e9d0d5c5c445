"""A threaded HTTP server that records requests and answers as scripted.

:class:`RecordingHTTPServer` is the base of the Slack stand-in as well; :class:`HttpSink`
is the plain version for webhooks and the Telegram Bot API.
"""

from __future__ import annotations

import io
import json
import socket
import struct
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


@dataclass(frozen=True)
class Reply:
    """One scripted answer. ``body`` may be JSON-able data, ``str`` or ``bytes``; ``delay``
    holds the answer back (to outlast a client's read timeout); ``drip`` sends the answer
    one byte every ``drip`` seconds (each read is quick, the whole answer is not);
    ``cut_after`` sends the status line, the headers (announcing the whole body's length
    unless ``announce_length`` is off) and only that many bytes of the body, then resets
    the connection."""

    status: int = 200
    body: Any = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drip: float = 0.0
    cut_after: int | None = None
    announce_length: bool = True

    def encoded(self) -> tuple[bytes, str]:
        if isinstance(self.body, bytes):
            return self.body, "text/plain; charset=utf-8"
        if isinstance(self.body, str):
            return self.body.encode("utf-8"), "text/plain; charset=utf-8"
        return json.dumps(self.body).encode("utf-8"), "application/json; charset=utf-8"


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes

    def header(self, name: str) -> str:
        lowered = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lowered:
                return value
        return ""

    def json(self) -> Any:
        return json.loads(self.body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: RecordingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        self._serve()

    def do_GET(self) -> None:
        self._serve()

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        request = RecordedRequest(
            method=self.command,
            path=self.path,
            headers=dict(self.headers.items()),
            body=self.rfile.read(length),
        )
        owner = self.server.owner
        reply = owner.dispatch(request)
        if reply.delay:
            owner.stopping.wait(reply.delay)
        head, payload = self._answer(reply)
        try:
            if reply.cut_after is not None:
                self.wfile.write(head + payload[: reply.cut_after])
                self._reset()
            elif reply.drip:
                for byte in head + payload:
                    self.wfile.write(bytes([byte]))
                    if owner.stopping.wait(reply.drip):
                        break
            else:
                self.wfile.write(head + payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (its timeout or deadline) before the answer came

    def _answer(self, reply: Reply) -> tuple[bytes, bytes]:
        """The status line and headers, as ``BaseHTTPRequestHandler`` writes them, and the
        body."""
        payload, content_type = reply.encoded()
        real, self.wfile = self.wfile, io.BytesIO()
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", content_type)
            if reply.announce_length:
                self.send_header("Content-Length", str(len(payload)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            head = self.wfile.getvalue()  # type: ignore[attr-defined]
        finally:
            self.wfile = real
        return head, payload

    def _reset(self) -> None:
        """Drop the connection with a TCP reset, as a crashing server or proxy does."""
        self.close_connection = True
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class RecordingHTTPServer:
    """Serves on ``127.0.0.1:<free port>`` in a thread; use as a context manager or call
    :meth:`start` / :meth:`stop`. Every request is recorded in :attr:`requests` (also
    those answered from the script)."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self.stopping = threading.Event()
        self._script: deque[Reply] = deque()
        self._shaping: deque[dict[str, Any]] = deque()
        self._lock = threading.Lock()
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{type(self).__name__}:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def answer_next(self, reply: Reply, times: int = 1) -> None:
        """Answer the next ``times`` requests with ``reply`` instead of the usual answer."""
        with self._lock:
            self._script.extend([reply] * times)

    def stall_next(self, seconds: float, times: int = 1) -> None:
        """Hold the next answers back for ``seconds`` (past the client's read timeout)."""
        self.answer_next(Reply(status=504, body=b"stalled", delay=seconds), times)

    def drip_next(self, seconds_per_byte: float, times: int = 1) -> None:
        """Send the next usual answers one byte every ``seconds_per_byte`` seconds: no read
        waits long, the whole answer takes minutes."""
        self._script_usual(times, drip=seconds_per_byte)

    def cut_next(self, after_bytes: int, *, announce_length: bool = True, times: int = 1) -> None:
        """Send only the first ``after_bytes`` bytes of the next usual answers' bodies, then
        reset the connection."""
        self._script_usual(times, cut_after=after_bytes, announce_length=announce_length)

    def _script_usual(self, times: int, **how: Any) -> None:
        with self._lock:
            self._shaping.extend([how] * times)

    def dispatch(self, request: RecordedRequest) -> Reply:
        with self._lock:
            self.requests.append(request)
            scripted = self._script.popleft() if self._script else None
            shaping = self._shaping.popleft() if self._shaping and scripted is None else {}
        reply = scripted if scripted is not None else self.respond(request)
        return replace(reply, **shaping) if shaping else reply

    def respond(self, request: RecordedRequest) -> Reply:
        """The usual answer when nothing is scripted; subclasses speak their protocol."""
        return Reply()


class HttpSink(RecordingHTTPServer):
    """Accepts every request with :attr:`default` (200 and ``{"ok": true}`` unless changed)."""

    def __init__(self, default: Reply | None = None) -> None:
        super().__init__()
        self.default = default or Reply(200, {"ok": True})

    def respond(self, request: RecordedRequest) -> Reply:
        return self.default

    def fail_next(
        self,
        status: int,
        body: Any = b"",
        headers: Mapping[str, str] | None = None,
        times: int = 1,
    ) -> None:
        self.answer_next(Reply(status, body, headers or {}), times)

    def redirect_next(self, location: str, status: int = 302, times: int = 1) -> None:
        self.answer_next(Reply(status, b"", {"Location": location}), times)
