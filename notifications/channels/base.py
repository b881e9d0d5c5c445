"""The channel contract: render a :class:`Message` for one destination and send it.

A channel only sends what it is given. It never touches the database and never sleeps:
``send`` returns an :class:`Outcome` — sent, retry after N seconds, or failed for good —
and the caller (the ``deliver`` task) records it and schedules any retry. Every call a
channel makes to its provider ends by an overall deadline
(:class:`notifications.channels.deadline.Deadline`), not only by per-read timeouts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, Protocol

from notifications.channels.deadline import Deadline


class Result(StrEnum):
    SENT = "sent"
    RETRY = "retry"
    FAILED = "failed"


# The longest delay a provider may ask for before a retry. Slack's and Telegram's rate
# limits last seconds to minutes; a longer ``Retry-After`` is a broken or hostile server,
# and honouring it would park the delivery (and its retry budget) for days.
RETRY_AFTER_CAP = 3600.0


def bounded_retry_after(seconds: float | None) -> float | None:
    """``seconds`` within ``[0, RETRY_AFTER_CAP]`` (infinity is capped too); ``None`` for
    no delay, a negative one or NaN, which mean nothing — the caller's back-off decides."""
    if seconds is None or math.isnan(seconds) or seconds < 0:
        return None
    return min(float(seconds), RETRY_AFTER_CAP)


@dataclass(frozen=True)
class Outcome:
    """What one send came to. ``retry_after`` is always ``None`` or a number of seconds in
    ``[0, RETRY_AFTER_CAP]``, whatever the provider answered (see
    :func:`bounded_retry_after`), so a caller can add it to a datetime safely."""

    result: Result
    detail: str = ""
    retry_after: float | None = None
    provider_id: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "retry_after", bounded_retry_after(self.retry_after))

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
    deadline: Deadline

    def __init__(self, *, deadline: Deadline = ...) -> None:
        """Every channel is built with the overall deadline of each provider call."""

    def send(self, message: Message, destination: Destination) -> Outcome:
        """Deliver one message. Must not block beyond the channel's deadline, must not
        retry by sleeping, and must map every provider error to an Outcome: an answer cut
        off mid-way (reset, incomplete read, deadline) is a retry, never a failure."""
        ...
