"""The small HTTP client of the channels that POST to an HTTP API (webhook, Telegram), and
:class:`HttpChannel`, the part of such a channel they share.

Because a webhook URL comes from a user, the client also guards the network it runs in: the
host is resolved once, every address is checked (no loopback, private, link-local, shared or
reserved ranges unless ``allow_private``), and the connection is made to exactly the address
that was checked, so a second DNS answer cannot point the request elsewhere. Redirects are
never followed: a 3xx is a failure that names its target. :func:`saved_url_refusal` runs the
same check when a webhook URL is saved.

Each request runs under an overall :class:`~notifications.channels.deadline.Deadline`
(connect, send, read the answer); :class:`HttpTimeouts` only bound each single operation.
An answer that stops before the body it announced is a retry, never a verdict.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import socket
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, Generic, TypeVar
from urllib.parse import SplitResult, urlsplit

from django.conf import settings

from notifications.channels.base import Outcome, bounded_retry_after
from notifications.channels.deadline import CALL_DEADLINE, Deadline, DeadlineExceeded

MAX_RESPONSE_BYTES = 64 * 1024


@dataclass(frozen=True)
class HttpTimeouts:
    """Seconds to wait for the TCP (and TLS) connection, then for each read of the answer.
    They bound one operation each; the whole request is bounded by a ``Deadline``."""

    connect: float = 3.0
    read: float = 10.0


DEFAULT_TIMEOUTS = HttpTimeouts()


@dataclass(frozen=True)
class HttpReply:
    """An answer; ``complete`` is false when the connection ended before the body its
    ``Content-Length`` announced (a reset or a server that died mid-answer)."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    complete: bool = True

    def header(self, name: str) -> str:
        lowered = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lowered:
                return value
        return ""

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


class PrivateAddressError(Exception):
    """The URL's host resolves to an address outside the public internet."""


class UnusableURLError(Exception):
    """The URL is not an http(s) URL with a host."""


Resolved = tuple[int, tuple[Any, ...]]  # (address family, socket address)


def resolve(host: str, port: int) -> list[Resolved]:
    """Every TCP address ``host`` resolves to, in the resolver's order."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [(family, sockaddr) for family, _, _, _, sockaddr in infos]


def non_public_address(addresses: Sequence[Resolved]) -> str:
    """The first address that is not globally routable (loopback, RFC 1918, link-local,
    carrier-grade NAT, multicast, reserved…), or ``""`` when all of them are public."""
    for _, sockaddr in addresses:
        ip = ipaddress.ip_address(sockaddr[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if not ip.is_global or ip.is_multicast:
            return str(ip)
    return ""


def _connect_pinned(addresses: Sequence[Resolved], timeouts: HttpTimeouts) -> socket.socket:
    last_error: OSError = OSError("no address to connect to")
    for family, sockaddr in addresses:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeouts.connect)
            sock.connect(sockaddr)
        except OSError as exc:
            sock.close()
            last_error = exc
            continue
        sock.settimeout(timeouts.read)
        return sock
    raise last_error


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to addresses resolved (and checked) beforehand, not to a fresh DNS answer."""

    def __init__(self, host: str, port: int, addresses: Sequence[Resolved], timeouts: HttpTimeouts):
        super().__init__(host, port, timeout=timeouts.read)
        self._addresses = addresses
        self._timeouts = timeouts

    def connect(self) -> None:
        self.sock = _connect_pinned(self._addresses, self._timeouts)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, addresses: Sequence[Resolved], timeouts: HttpTimeouts):
        self._tls = ssl.create_default_context()
        super().__init__(host, port, timeout=timeouts.read, context=self._tls)
        self._addresses = addresses
        self._timeouts = timeouts

    def connect(self) -> None:
        sock = _connect_pinned(self._addresses, self._timeouts)
        try:
            self.sock = self._tls.wrap_socket(sock, server_hostname=self.host)
        except OSError:
            sock.close()
            raise


def allow_private_addresses() -> bool:
    """``settings.NOTIFLOW_WEBHOOK_ALLOW_PRIVATE``, read at call time (off by default)."""
    return settings.NOTIFLOW_WEBHOOK_ALLOW_PRIVATE


@dataclass(frozen=True)
class CheckedURL:
    """An http(s) URL whose host resolved to ``addresses``, each of them allowed."""

    parts: SplitResult
    host: str
    port: int
    addresses: list[Resolved]


def check_url(url: str, *, allow_private: bool) -> CheckedURL:
    """Parse ``url`` and resolve its host once. Raises :class:`UnusableURLError`,
    :class:`PrivateAddressError` (unless ``allow_private``) or ``socket.gaierror``."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise UnusableURLError(f"{url!r} is not an http(s) URL with a host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise UnusableURLError(f"{url!r} has an invalid port") from exc
    host = parts.hostname
    try:
        addresses = resolve(host, port)
    except UnicodeError as exc:
        raise UnusableURLError(f"{host!r} is not a valid host name") from exc
    if not allow_private:
        private = non_public_address(addresses)
        if private:
            raise PrivateAddressError(
                f"{host} resolves to a private address ({private}); set "
                "NOTIFLOW_WEBHOOK_ALLOW_PRIVATE=1 to send to internal hosts"
            )
    return CheckedURL(parts, host, port, addresses)


def saved_url_refusal(url: str) -> str | None:
    """Why a webhook URL must not be saved — it cannot be requested, or its host resolves to
    a private address while :func:`allow_private_addresses` is off — or None. A host that
    does not resolve now is let through: the check runs again before every send."""
    try:
        check_url(url, allow_private=allow_private_addresses())
    except (UnusableURLError, PrivateAddressError) as exc:
        return str(exc)
    except OSError:  # socket.gaierror: checked again when sending
        pass
    return None


def _cut_off(response: http.client.HTTPResponse, data: bytes) -> bool:
    """Whether the server announced more body than arrived (reading stops at
    ``MAX_RESPONSE_BYTES`` by choice; that is not a cut)."""
    announced = response.getheader("Content-Length") or ""
    if not announced.strip().isdigit():
        return False
    return len(data) < min(int(announced), MAX_RESPONSE_BYTES)


def post(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    timeouts: HttpTimeouts,
    deadline: Deadline = CALL_DEADLINE,
    allow_private: bool,
) -> HttpReply:
    """POST ``body`` to ``url`` once: no proxy, no redirects, no retries, and back by
    ``deadline`` with the whole answer (at most ``MAX_RESPONSE_BYTES`` of its body).

    Raises :class:`UnusableURLError`, :class:`PrivateAddressError` (before connecting),
    :class:`DeadlineExceeded` or the socket/HTTP error that stopped the request;
    :func:`outcome_for_error` maps those.
    """
    target = check_url(url, allow_private=allow_private)
    parts = target.parts
    connection_class = _PinnedHTTPSConnection if parts.scheme == "https" else _PinnedHTTPConnection
    connection = connection_class(target.host, target.port, target.addresses, timeouts)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    with deadline.enforce() as call:
        try:
            connection.request("POST", path, body=body, headers=dict(headers))
            response = connection.getresponse()
            data = response.read(MAX_RESPONSE_BYTES)
            reply = HttpReply(
                response.status, dict(response.getheaders()), data, not _cut_off(response, data)
            )
        finally:
            connection.close()
    if call.expired and not reply.complete:
        raise DeadlineExceeded(deadline.seconds)
    return reply


def parse_retry_after(value: str, *, now: float) -> float | None:
    """``Retry-After`` as seconds from ``now`` — delay-seconds (a number) or an HTTP date —
    within the bounds of :func:`~notifications.channels.base.bounded_retry_after`. Never
    raises: a value that means nothing (garbage, negative, NaN) is ``None``; a date already
    past is 0; anything beyond the cap (``1e12``, year 9999) is the cap."""
    value = value.strip()
    if not value:
        return None
    try:
        return bounded_retry_after(float(value))
    except ValueError:
        pass
    try:
        return bounded_retry_after(max(0.0, parsedate_to_datetime(value).timestamp() - now))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def outcome_for_status(reply: HttpReply, *, service: str, now: float) -> Outcome:
    """Map a webhook-style HTTP answer: 2xx sent; an answer cut off mid-way retry (it is no
    verdict); 429 and 5xx retry (honouring ``Retry-After``); 3xx failed, naming the
    redirect; any other status failed."""
    status = reply.status
    if 200 <= status < 300:
        return Outcome.sent(provider_id=reply.header("X-Request-Id"))
    if not reply.complete:
        return Outcome.retry(
            f"{service} answered {status} but the connection ended after {len(reply.body)} "
            "bytes of the body it announced"
        )
    if 300 <= status < 400:
        location = reply.header("Location") or "no Location header"
        return Outcome.failed(
            f"{service} answered {status} redirecting to {location}; redirects are not followed"
        )
    excerpt = reply.body[:200].decode("utf-8", "replace").strip()
    detail = f"{service} answered {status}" + (f": {excerpt}" if excerpt else "")
    if status == 429 or status >= 500:
        return Outcome.retry(detail, after=parse_retry_after(reply.header("Retry-After"), now=now))
    return Outcome.failed(detail)


def outcome_for_error(exc: Exception, *, service: str, timeouts: HttpTimeouts) -> Outcome:
    """Map what :func:`post` raised. Network trouble is worth a retry; a URL that cannot work
    (bad scheme, private address, certificate that does not verify) is not."""
    if isinstance(exc, UnusableURLError | PrivateAddressError):
        return Outcome.failed(f"{service}: {exc}")
    if isinstance(exc, http.client.InvalidURL):
        return Outcome.failed(f"{service}: the URL cannot be requested ({exc})")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return Outcome.failed(f"{service}: TLS certificate does not verify: {exc.verify_message}")
    if isinstance(exc, socket.gaierror):
        return Outcome.retry(f"{service}: host name does not resolve ({exc.strerror})")
    if isinstance(exc, DeadlineExceeded):
        return Outcome.retry(f"{service}: {exc}")
    if isinstance(exc, TimeoutError):
        return Outcome.retry(
            f"{service}: no answer within {timeouts.connect:g}s to connect / "
            f"{timeouts.read:g}s to read"
        )
    if isinstance(exc, OSError | http.client.HTTPException):
        return Outcome.retry(f"{service}: connection failed ({type(exc).__name__}: {exc})")
    raise exc


LimitsT = TypeVar("LimitsT")


class HttpChannel(Generic[LimitsT]):
    """A channel that sends each message as one POST: ``timeouts``, ``deadline``, the
    channel's ``limits`` (its ``default_limits`` unless given) and ``clock`` are fixed at
    construction, and
    :meth:`request` maps a failed request with :func:`outcome_for_error` and an answer with
    :meth:`outcome` (:func:`outcome_for_status` unless the API says more)."""

    type: ClassVar[str]
    default_limits: LimitsT

    def __init__(
        self,
        *,
        timeouts: HttpTimeouts = DEFAULT_TIMEOUTS,
        deadline: Deadline = CALL_DEADLINE,
        limits: LimitsT | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.timeouts = timeouts
        self.deadline = deadline
        self.limits = self.default_limits if limits is None else limits
        self.clock = clock

    def request(
        self, url: str, body: bytes, headers: Mapping[str, str], *, now: float, allow_private: bool
    ) -> Outcome:
        try:
            reply = post(
                url,
                body,
                headers,
                timeouts=self.timeouts,
                deadline=self.deadline,
                allow_private=allow_private,
            )
        except Exception as exc:
            return outcome_for_error(exc, service=self.type, timeouts=self.timeouts)
        return self.outcome(reply, now=now)

    def outcome(self, reply: HttpReply, *, now: float) -> Outcome:
        return outcome_for_status(reply, service=self.type, now=now)
