"""The channel contract: render a :class:`Message` for one destination and send it.

A channel only sends what it is given. It never touches the database and never sleeps:
``send`` returns an :class:`Outcome` — sent, retry after N seconds, or failed for good —
and the caller (the ``deliver`` task) records it and schedules any retry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, Protocol


class Result(StrEnum):
    SENT = "sent"
    RETRY = "retry"
    FAILED = "failed"


@dataclass(frozen=True)
class Outcome:
    result: Result
    detail: str = ""
    retry_after: float | None = None
    provider_id: str = ""

    @classmethod
    def sent(cls, provider_id: str = "") -> Outcome:
        return cls(Result.SENT, provider_id=provider_id)

    @classmethod
    def retry(cls, detail: str, after: float | None = None) -> Outcome:
        return cls(Result.RETRY, detail=detail, retry_after=after)

    @classmethod
    def failed(cls, detail: str) -> Outcome:
        return cls(Result.FAILED, detail=detail)


@dataclass(frozen=True)
class Message:
    """What to say, channel-neutral. Channels render it within their own limits.

    ``lines`` are the items of a summary (rolled-up samples, digest entries); ``count`` is
    how many events the message stands for (1 for a single notification). ``html`` and
    ``text``, when given, are a long-form rendering (a digest) that email uses instead of
    its own layout; short channels ignore them.
    """

    title: str
    body: str = ""
    url: str = ""
    lines: Sequence[str] = ()
    count: int = 1
    footer: str = ""
    team_name: str = ""
    unsubscribe_url: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    html: str = ""
    text: str = ""


@dataclass(frozen=True)
class Destination:
    """Where one delivery goes: an address (email, ``#channel``, URL, chat id) plus the
    organization's channel settings, secrets already decrypted."""

    address: str
    settings: Mapping[str, Any] = field(default_factory=dict)


class ChannelNotConfigured(Exception):
    """The organization has not set this channel up; the delivery is skipped with this reason."""


class Channel(Protocol):
    type: ClassVar[str]

    def send(self, message: Message, destination: Destination) -> Outcome:
        """Deliver one message. Must not block beyond the channel's own timeouts, must not
        retry by sleeping, and must map every provider error to an Outcome."""
        ...
