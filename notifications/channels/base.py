"""The channel contract: what a channel is (:class:`ChannelDeclaration`) and how it sends
(:class:`Channel`: render a :class:`Message` for one destination and send it).

Each channel module says what it is in one ``DECLARATION``: its type and label, whether it
reaches a person, its organization-level settings (a secret kept encrypted in
``ChannelConfig``, non-secret config keys and their checks) and what a destination address
looks like. :mod:`notifications.channels.registry` lists the declarations; the API, the
pages, the admin and delivery ask it, never a list of their own.

A channel only sends what it is given. It never touches the database and never sleeps:
``send`` returns an :class:`Outcome` — sent, retry after N seconds, or failed for good —
and the caller (the ``deliver`` task) records it and schedules any retry. Every call a
channel makes to its provider ends by an overall deadline
(:class:`notifications.channels.deadline.Deadline`), not only by per-read timeouts.
"""

from __future__ import annotations

import builtins
import math
import re
from collections.abc import Callable, Mapping, Sequence
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


Check = Callable[[str], str | None]
"""What is wrong with a value, in one line for the person who typed it; None when it is fine."""


def matching(pattern: re.Pattern[str], problem: str) -> Check:
    """A check that takes what ``pattern`` matches whole (``fullmatch``: no trailing newline
    slips through) and answers ``problem`` otherwise."""

    def check(value: str) -> str | None:
        return None if pattern.fullmatch(value) else problem

    return check


@dataclass(frozen=True)
class Target:
    """What a destination address on the channel looks like: a trigger's ``target`` and an
    organization channel's ``default_target`` are both checked with ``check``.

    ``required`` is the message when a trigger names no target, for channels that have no
    address of their own to fall back on (empty: a target is optional). ``label`` and
    ``placeholder`` are the trigger form's."""

    label: str
    placeholder: str
    check: Check | None = None
    required: str = ""

    def problem(self, value: str) -> str | None:
        return self.check(value) if self.check is not None else None


@dataclass(frozen=True)
class Secret:
    """The one secret of an organization-level channel (bot token, signing secret), stored
    encrypted in ``ChannelConfig`` and handed to the channel as
    ``Destination.settings[name]``. Without ``generate`` a new channel must be given one;
    with it, one is made and shown once."""

    name: str
    label: str
    check: Check
    generate: Callable[[], str] | None = None


@dataclass(frozen=True)
class Setting:
    """One non-secret key of an organization channel's ``config``, checked with ``check``
    when it is a non-empty string. ``stored_as`` names the key it is saved under when that
    differs (the API shows it under both); ``required`` is the message when it is missing
    (empty: optional)."""

    name: str
    check: Check | None = None
    stored_as: str = ""
    required: str = ""


@dataclass(frozen=True)
class ChannelDeclaration:
    """Everything the rest of notiflow knows about one channel type.

    - ``sender``: the :class:`Channel` class that sends; None for ``in_app`` (the
      notification store is that channel, nothing is sent).
    - ``noun``: what its messages are called ("Slack messages"), as in "unsubscribed from
      alert Slack messages".
    - ``to_people``: a person can receive it, so it has a column in their preferences.
    - ``to_each_subscriber``: a trigger's use of it with no target goes to each subscriber
      (in-app, email) rather than once to a team destination.
    - ``address_field``: for such a channel, the user field that holds a person's address on
      it (``"email"``); empty when it needs none (in-app: the person is the destination).
    - ``secret`` and ``settings``: set for an organization-level channel, which sends with
      the organization's ``ChannelConfig`` (``secret`` is what makes it organization-level);
      a personal one needs only an address.
    - ``target``: what its destination looks like; None when it takes none (``in_app``).
    """

    type: str
    label: str
    noun: str
    sender: builtins.type[Channel] | None  # (the field ``type`` shadows the builtin)
    target: Target | None
    to_people: bool = False
    to_each_subscriber: bool = False
    address_field: str = ""
    secret: Secret | None = None
    settings: tuple[Setting, ...] = ()

    @property
    def org_level(self) -> bool:
        return self.secret is not None

    @property
    def config_keys(self) -> tuple[str, ...]:
        """Every key ``config`` may carry: each setting's name, then its stored name."""
        names = [s.name for s in self.settings] + [s.stored_as for s in self.settings]
        return tuple(dict.fromkeys(name for name in names if name))
