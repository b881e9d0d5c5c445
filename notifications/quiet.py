"""Each person's quiet time, as pure rules: quiet hours, do-not-disturb, what passes, and the
one summary that releases what was held. Plain data in, plain data out; the state lives in
``Delivery`` rows and is handled by :mod:`notifications.attention`.

**Quiet hours** ``[start, end)`` are wall-clock times in the person's zone. Each night has
one quiet period, from the moment the clock first shows ``start`` to the moment it next
first shows ``end`` (the next day when ``start > end``: a window across midnight). "First
shows": on the night clocks fall back, a repeated ``02:30`` ends the period at its first
occurrence; on the night they spring forward, a time that does not exist (``02:30`` in
Berlin on the last Sunday of March) is reached at the jump itself (03:00 local). So a
period is one unbroken stretch, never two, whatever DST does.

**Do not disturb** is an instant: pushes wait until ``dnd_until``. A hold lasts until both
are over (:func:`quiet_until`): DND ending inside quiet hours holds until the hours end, and
quiet hours ending inside DND hold until DND ends.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

DND_MAX_AHEAD = timedelta(days=30)
"""The furthest ahead do-not-disturb may be set."""
DND_HOUR = timedelta(hours=1)
MORNING = time(8, 0)
""""Until tomorrow morning" ends at this local time."""
SUMMARY_TOPICS = 3
"""How many groups the summary's title names before "…"."""


class Why:
    QUIET_HOURS = "quiet hours"
    DND = "do not disturb"


def resolve(day: date, wall: time, zone: ZoneInfo) -> datetime:
    """The first instant (UTC) at which the clock in ``zone`` shows ``wall`` on ``day`` or
    later: the first of two occurrences when clocks fall back, the jump itself when
    ``wall`` falls in a spring-forward gap."""
    naive = datetime.combine(day, wall)
    instants = sorted(naive.replace(tzinfo=zone, fold=f).astimezone(UTC) for f in (0, 1))
    for instant in instants:
        if instant.astimezone(zone).replace(tzinfo=None) == naive:
            return instant
    # A gap: the wall time never shows. Before the earlier reading the clock is behind
    # ``wall``, at the later one it is past it; find the jump to the second.
    low, high = (int(instant.timestamp()) for instant in instants)
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).replace(tzinfo=None) >= naive:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)


def quiet_period(
    start: time | None, end: time | None, zone: ZoneInfo, now: datetime
) -> tuple[datetime, datetime] | None:
    """The quiet period ``[from, until)`` (UTC) that contains ``now``, or None."""
    if start is None or end is None or start == end:
        return None
    local_day = now.astimezone(zone).date()
    for offset in (-1, 0, 1):
        night = local_day + timedelta(days=offset)
        begins = resolve(night, start, zone)
        ends = resolve(night + timedelta(days=1) if start > end else night, end, zone)
        if begins <= now < ends:
            return begins, ends
    return None


@dataclass(frozen=True)
class Attention:
    """What one person asked for: quiet hours in their zone, do-not-disturb, and the
    categories that pass both."""

    zone: str = "UTC"
    quiet_start: time | None = None
    quiet_end: time | None = None
    dnd_until: datetime | None = None
    critical_categories: frozenset[str] = frozenset()

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.zone)


@dataclass(frozen=True)
class Hold:
    """Pushes wait until ``until`` (UTC) because of ``why`` (quiet hours or do not disturb,
    whichever ends last)."""

    until: datetime
    why: str
    zone: str

    def until_text(self, now: datetime) -> str:
        """ "07:00 Europe/Berlin", with the day when it is not within the next 20 hours."""
        local = self.until.astimezone(ZoneInfo(self.zone))
        soon = self.until - now < timedelta(hours=20)
        shown = f"{local:%H:%M}" if soon else f"{local:%a %d %b %H:%M}"
        return f"{shown} {self.zone}"

    def held_reason(self, now: datetime) -> str:
        return f"held: {self.why} until {self.until_text(now)}"

    def passed_reason(self, now: datetime) -> str:
        return f"critical: sent during {self.why} (until {self.until_text(now)})"


def quiet_until(attention: Attention, now: datetime) -> Hold | None:
    """Whether pushes to the person wait at ``now``, and until when: the end of whatever
    keeps them quiet, followed through (DND into quiet hours and back) until neither is on."""
    zone = attention.tz
    moment, why = now, ""
    for _ in range(8):  # each step moves past one DND or one quiet period
        if attention.dnd_until is not None and moment < attention.dnd_until:
            moment, why = attention.dnd_until, Why.DND
            continue
        period = quiet_period(attention.quiet_start, attention.quiet_end, zone, moment)
        if period is None:
            break
        moment, why = period[1], Why.QUIET_HOURS
    return Hold(until=moment, why=why, zone=attention.zone) if why else None


def dnd_label(until: datetime, zone: str, now: datetime) -> str:
    """ "until 08:00 Europe/Berlin": what the header says while do-not-disturb is on."""
    return f"until {Hold(until=until, why=Why.DND, zone=zone).until_text(now)}"


def is_critical(attention: Attention, *, category: str, trigger_critical: bool) -> bool:
    """A push that goes through quiet hours and do-not-disturb: its trigger was marked
    critical by an organization admin, or the person marked its category critical."""
    return trigger_critical or category in attention.critical_categories


def dnd_preset(preset: str, attention: Attention, now: datetime) -> datetime:
    """When do-not-disturb ends for a preset: ``hour`` (an hour from now) or ``morning``
    (the next 08:00 in the person's zone, tomorrow's when it is already past)."""
    if preset == "hour":
        return now + DND_HOUR
    zone = attention.tz
    local = now.astimezone(zone)
    day = local.date() if local.time() < MORNING else local.date() + timedelta(days=1)
    return resolve(day, MORNING, zone)


# --- the release summary --------------------------------------------------------------


@dataclass(frozen=True)
class Held:
    """One held message, as the summary needs it (a delivery's ``message`` fields)."""

    title: str
    url: str
    count: int
    category: str
    topic: str
    topic_plural: str = ""
    team_name: str = ""


def held_from_message(message: Mapping[str, Any]) -> Held:
    """Total over any stored message: missing fields fall back to its title and 1."""
    count = message.get("count", 1)
    title = str(message.get("title", ""))
    return Held(
        title=title,
        url=str(message.get("url", "")),
        count=count if isinstance(count, int) and count > 0 else 1,
        category=str(message.get("category", "alert")),
        topic=str(message.get("topic") or title),
        topic_plural=str(message.get("topic_plural", "")),
        team_name=str(message.get("team_name", "")),
    )


def _line(count: int, topic: str, plural: str) -> str:
    if plural:
        return f"{count:,} {topic if count == 1 else plural}"
    return f"{count:,} × {topic}"


def release_message(held: Sequence[Held], *, base_url: str) -> dict[str, Any]:
    """One message for everything held: "While you were away: 14 notifications — 9 ×
    checkout_error, 3 edits to Revenue, …", one line per topic (largest first) with a link
    to its newest item, a link to the notification center."""
    totals: Counter[tuple[str, str]] = Counter()
    links: dict[tuple[str, str], str] = {}
    categories: Counter[str] = Counter()
    teams: set[str] = set()
    for item in held:
        key = (item.topic, item.topic_plural)
        totals[key] += item.count
        categories[item.category] += item.count
        teams.add(item.team_name)
        if item.url:
            links[key] = item.url
    total = sum(totals.values())
    ordered = sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))
    shown = [_line(n, topic, plural) for (topic, plural), n in ordered]
    head = ", ".join(shown[:SUMMARY_TOPICS]) + (", …" if len(shown) > SUMMARY_TOPICS else "")
    noun = "notification" if total == 1 else "notifications"
    lines = []
    for text, (key, _) in zip(shown, ordered, strict=True):
        url = _absolute(links.get(key, ""), base_url)
        lines.append(f"{text}: {url}" if url else text)
    return {
        "title": f"While you were away: {total:,} {noun} — {head}",
        "body": "",
        "url": _absolute("/", base_url),
        "lines": lines,
        "count": total,
        "category": categories.most_common(1)[0][0] if categories else "alert",
        "team_name": teams.pop() if len(teams) == 1 else "",
    }


def _absolute(url: str, base_url: str) -> str:
    if url.startswith("/") and not url.startswith("//"):
        return f"{base_url}{url}"
    return url
