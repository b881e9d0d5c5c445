"""A local SMTP server (aiosmtpd) that records mail, counts connections and can refuse.

Point Django at it with ``EMAIL_BACKEND = smtp``, ``EMAIL_HOST = 127.0.0.1``,
``EMAIL_PORT = server.port`` (the ``smtp_server`` fixture does).
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any, Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.servers import free_port


@dataclass(frozen=True)
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    peer: Any

    @property
    def message(self) -> EmailMessage:
        parsed = message_from_bytes(self.raw, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed

    def part(self, content_type: str) -> str:
        """The decoded body part of ``content_type`` (``text/plain`` or ``text/html``)."""
        for part in self.message.walk():
            if part.get_content_type() == content_type and not part.is_multipart():
                return str(part.get_content())
        raise LookupError(f"no {content_type} part")


def _raw(envelope: Envelope) -> bytes:
    content = envelope.original_content or envelope.content or b""
    return content.encode("utf-8") if isinstance(content, str) else bytes(content)


class _Handler:
    def __init__(self, owner: SMTPServer) -> None:
        self.owner = owner

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list
    ) -> str:
        reply = self.owner._rcpt_reply(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        delay = self.owner._take_stall()
        if delay:
            await asyncio.sleep(delay)
        self.owner._record(
            ReceivedMail(
                mail_from=str(envelope.mail_from),
                rcpt_tos=list(envelope.rcpt_tos),
                raw=_raw(envelope),
                peer=session.peer,
            )
        )
        if self.owner._take_cut():
            assert server.transport is not None
            server.transport.write(b"25")  # the first bytes of "250 …", then a reset
            server.transport.abort()
        return "250 Message accepted for delivery"


class _CountingSMTP(SMTP):
    def __init__(self, owner: SMTPServer, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._owner = owner
        self._drip = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._drip = self._owner._connected()
        super().connection_made(transport)

    async def push(self, status: Any) -> None:
        """Every reply of a dripping session goes out one byte at a time."""
        if not self._drip:
            await super().push(status)
            return
        response = status.encode("ascii") if isinstance(status, str) else bytes(status)
        for byte in response + b"\r\n":
            self._writer.write(bytes([byte]))
            await self._writer.drain()
            await asyncio.sleep(self._drip)


class _Controller(Controller):
    def __init__(self, owner: SMTPServer, **kwargs: Any) -> None:
        super().__init__(_Handler(owner), **kwargs)
        self._owner = owner

    def factory(self) -> SMTP:
        return _CountingSMTP(self._owner, self.handler, **self.SMTP_kwargs)


class SMTPServer:
    """SMTP on ``127.0.0.1:<free port>``.

    * :attr:`messages` — every accepted mail; :attr:`connections` — TCP connections made by
      clients since :meth:`start` (the controller's own start-up probe is not counted).
    * :meth:`refuse` — always answer RCPT for an address with a reply (``550`` by default).
    * :meth:`answer_next` — answer the next N RCPT commands with a reply (e.g. ``421``).
    * :meth:`stall_next` — hold the next N DATA replies back for some seconds.
    * :meth:`cut_next` — the next N DATA replies stop after two bytes and the connection
      is reset (the mail was received; the client cannot know).
    * :meth:`drip_next` — the next N connections get every reply (greeting included) one
      byte every few hundredths of a second: no read waits long, a session takes long.
    """

    def __init__(self) -> None:
        self.host = "127.0.0.1"
        self.port = free_port(self.host)
        self.messages: list[ReceivedMail] = []
        self.connections = 0
        self._refused: dict[str, str] = {}
        self._rcpt_script: deque[str] = deque()
        self._stalls: deque[float] = deque()
        self._drips: deque[float] = deque()
        self._cuts = 0
        self._lock = threading.Lock()
        self._controller = _Controller(self, hostname=self.host, port=self.port)

    def start(self) -> Self:
        self._controller.start()
        with self._lock:
            self.connections = 0
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def refuse(self, address: str, reply: str = "550 5.1.1 No such user here") -> None:
        with self._lock:
            self._refused[address.lower()] = reply

    def answer_next(self, reply: str, times: int = 1) -> None:
        with self._lock:
            self._rcpt_script.extend([reply] * times)

    def stall_next(self, seconds: float, times: int = 1) -> None:
        with self._lock:
            self._stalls.extend([seconds] * times)

    def cut_next(self, times: int = 1) -> None:
        with self._lock:
            self._cuts += times

    def _take_cut(self) -> bool:
        with self._lock:
            if not self._cuts:
                return False
            self._cuts -= 1
            return True

    def drip_next(self, seconds_per_byte: float, times: int = 1) -> None:
        with self._lock:
            self._drips.extend([seconds_per_byte] * times)

    def _connected(self) -> float:
        """Count the connection; how slowly to answer it (0: at once)."""
        with self._lock:
            self.connections += 1
            return self._drips.popleft() if self._drips else 0.0

    def _rcpt_reply(self, address: str) -> str:
        with self._lock:
            if self._rcpt_script:
                return self._rcpt_script.popleft()
            return self._refused.get(address.lower(), "")

    def _take_stall(self) -> float:
        with self._lock:
            return self._stalls.popleft() if self._stalls else 0.0

    def _record(self, mail: ReceivedMail) -> None:
        with self._lock:
            self.messages.append(mail)
