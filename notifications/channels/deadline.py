"""An overall deadline for a provider call: connect, send the request, read the whole answer.

Socket timeouts count per operation, so a server that answers one byte every few seconds
never trips them and holds the worker for as long as it likes. :meth:`Deadline.enforce`
bounds the whole call instead, whatever library makes it (slack-sdk's urllib, smtplib, the
channels' own HTTP client):

* while the block runs, every socket the calling thread creates is noted — Python announces
  each new socket with the ``socket.__new__`` audit event (PEP 578), the one public hook
  that sees the sockets a library opens inside its own calls;
* when the deadline passes, those sockets are shut down: the blocked read or write returns
  at once and the library raises its usual error (connection closed, incomplete read),
  which the block turns into :class:`DeadlineExceeded`; a connect attempted after the
  deadline is refused by the same hook.

Blocks nest (a batch budget around per-message deadlines): each socket belongs to every
block open in the thread, and whichever deadline passes first stops it. DNS lookups are
the resolver's, not sockets of this thread: they are bounded by its own timeout.
"""

from __future__ import annotations

import math
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

MAX_DEADLINE_SECONDS = 300.0


class DeadlineExceeded(TimeoutError):
    """The call did not finish (answer read in full) within its deadline."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"no complete answer within {seconds:g}s (the call's overall deadline)")
        self.seconds = seconds


@dataclass(frozen=True)
class Deadline:
    """At most ``seconds`` (0 < seconds ≤ :data:`MAX_DEADLINE_SECONDS`) for one call, end to
    end. The bound is what lets a claim's lease be longer than any send (see
    ``notifications.sending.ClaimLease``)."""

    seconds: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.seconds) and 0 < self.seconds <= MAX_DEADLINE_SECONDS):
            raise ValueError(
                f"a call deadline is more than 0 and at most {MAX_DEADLINE_SECONDS:g} seconds, "
                f"not {self.seconds!r}"
            )

    @contextmanager
    def enforce(self) -> Iterator[Call]:
        """Run the block under this deadline. Any exception the block raises after the
        deadline passed becomes :class:`DeadlineExceeded` (chained to the library's error);
        the yielded :class:`Call` says whether it passed, for a block that returns a
        partial answer instead of raising."""
        call = Call(self.seconds)
        _install_hook()
        stack = _stack()
        stack.append(call)
        call.start()
        try:
            yield call
        except Exception as exc:
            if call.expired:
                raise DeadlineExceeded(self.seconds) from exc
            raise
        finally:
            call.finish()
            stack.remove(call)


CALL_DEADLINE = Deadline(20.0)


class Call:
    """One enforced block: the sockets it created and whether its deadline has passed."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._open = True
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def start(self) -> None:
        self._timer.start()

    def finish(self) -> None:
        self._timer.cancel()
        with self._lock:
            self._open = False
            self._sockets.clear()

    def adopt(self, sock: socket.socket) -> None:
        with self._lock:
            if self._open:
                self._sockets.append(sock)

    def _expire(self) -> None:
        with self._lock:
            if not self._open:
                return
            self.expired = True
            for sock in self._sockets:
                _shut(sock)


def _shut(sock: socket.socket) -> None:
    """Shut the descriptor down under any TLS layer (``SSLSocket.shutdown`` would also drop
    its TLS object under the thread still reading through it). A socket already closed or
    detached has nothing left to stop."""
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass


_local = threading.local()
_hook_lock = threading.Lock()
_hook_installed = False


def _stack() -> list[Call]:
    stack: list[Call] | None = getattr(_local, "calls", None)
    if stack is None:
        stack = _local.calls = []
    return stack


def _audit(event: str, args: tuple[Any, ...]) -> None:
    """Runs for every audit event of the process, so it does nothing unless this thread is
    inside an enforced block and the event is about a socket."""
    if not event.startswith("socket."):
        return
    calls: list[Call] | None = getattr(_local, "calls", None)
    if not calls:
        return
    if event == "socket.__new__":
        for call in calls:
            call.adopt(args[0])
    elif event == "socket.connect":
        for call in calls:
            if call.expired:
                raise DeadlineExceeded(call.seconds)


def _install_hook() -> None:
    """Audit hooks cannot be removed, so the one hook is added once per process."""
    global _hook_installed
    if _hook_installed:
        return
    with _hook_lock:
        if not _hook_installed:
            sys.addaudithook(_audit)
            _hook_installed = True
