"""Digest windows in the user's timezone, and when each becomes due. Pure: ``now`` is passed in.

A window is a half-open interval ``[start, end)`` of UTC instants whose *local* bounds are

* hourly — ``[HH:00, HH+1:00)``,
* daily — ``[00:00, 24:00)``,
* weekly — Monday 00:00 to the next Monday 00:00.

Local bounds are converted with :mod:`zoneinfo`, so a window across a DST change is as long
as the wall clock says: Europe/Berlin's 30 March is 23 hours, its 26 October 25 hours, and
the repeated 02:00 hour of 26 October is two separate hourly windows. A boundary that falls
in a gap (clocks jump over local midnight) starts at the jump.

The digest for a window is *due* once the window has ended and, for daily and weekly
digests, the user's chosen hour has been reached on the day the window ends
(:func:`due_at`). :func:`due_window` picks the window a run at ``now`` should build.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from enum import StrEnum
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

log = logging.getLogger(__name__)

_ONE_HOUR = timedelta(hours=1)
_MINUTE = timedelta(minutes=1)


class Period(StrEnum):
    HOURLY = "hourly"
    DAILY = "daily"
    WEEKLY = "weekly"


@lru_cache(maxsize=512)
def zone(name: str) -> tzinfo:
    """The IANA zone ``name``; UTC (with a warning) for a name this machine does not know."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        log.warning("unknown timezone %r; digest windows fall back to UTC", name)
        return UTC


@dataclass(frozen=True)
class Window:
    """``[start, end)`` in UTC, computed in ``tz``."""

    period: Period
    start: datetime
    end: datetime
    tz: str

    @property
    def local_start(self) -> datetime:
        return self.start.astimezone(zone(self.tz))

    @property
    def local_end(self) -> datetime:
        return self.end.astimezone(zone(self.tz))

    def label(self) -> str:
        """How a reader names the window: "Mon 30 Mar 2026", "week of 23 Mar 2026",
        "Mon 30 Mar 2026 14:00–15:00"."""
        start = self.local_start
        if self.period == Period.HOURLY:
            end = self.local_end
            return f"{start:%a %d %b %Y %H:%M}–{end:%H:%M}"
        if self.period == Period.DAILY:
            return f"{start:%a %d %b %Y}"
        return f"week of {start:%d %b %Y}"


def _require_aware(instant: datetime) -> None:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"{instant!r} has no timezone; pass an aware datetime")


def _local_midnight(day: date, tz: tzinfo) -> datetime:
    """The first instant of ``day`` in ``tz``, in UTC. ``fold=0`` takes the first of two
    repeated midnights, and a midnight inside a gap maps to the jump itself."""
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def _transition_between(after: datetime, upto: datetime, tz: tzinfo) -> datetime:
    """The first instant in ``(after, upto]`` with ``upto``'s UTC offset (offsets change on
    whole minutes)."""
    target = upto.astimezone(tz).utcoffset()
    lo, hi = after, upto
    while hi - lo > _MINUTE:
        mid = lo + (hi - lo) / 2
        mid = mid.replace(second=0, microsecond=0)
        if mid <= lo:
            mid = lo + _MINUTE
        if mid.astimezone(tz).utcoffset() == target:
            hi = mid
        else:
            lo = mid
    return hi


def _hour_start(instant: datetime, tz: tzinfo) -> datetime:
    """The start of the local clock hour holding ``instant``: the latest HH:00 at or before
    it with the same UTC offset (which of two repeated HH:00 is meant), else — the offset
    changed inside this clock hour, e.g. a half-hour DST shift — the change itself."""
    local = instant.astimezone(tz)
    wall = local.replace(minute=0, second=0, microsecond=0, tzinfo=None)
    found = None
    for fold in (0, 1):
        candidate = wall.replace(tzinfo=tz, fold=fold).astimezone(UTC)
        back = candidate.astimezone(tz)
        if (
            candidate <= instant
            and back.utcoffset() == local.utcoffset()
            and back.replace(tzinfo=None) == wall
        ):
            found = candidate if found is None else max(found, candidate)
    if found is not None:
        return found
    return _transition_between(instant - 2 * _ONE_HOUR, instant, tz)


def _hour_end(start: datetime, tz: tzinfo) -> datetime:
    local = start.astimezone(tz)
    end = start + (_ONE_HOUR - timedelta(minutes=local.minute, seconds=local.second))
    before_end = end - timedelta(microseconds=1)
    if before_end.astimezone(tz).utcoffset() != local.utcoffset():
        end = _transition_between(start, before_end, tz)
    return end


def window_containing(period: Period | str, instant: datetime, tz_name: str) -> Window:
    """The window of ``period`` that contains ``instant`` for a user in ``tz_name``."""
    _require_aware(instant)
    period = Period(period)
    tz = zone(tz_name)
    instant = instant.astimezone(UTC)
    if period == Period.HOURLY:
        start = _hour_start(instant, tz)
        return Window(period, start, _hour_end(start, tz), tz_name)
    day = instant.astimezone(tz).date()
    if period == Period.DAILY:
        first, days = day, 1
    else:
        first, days = day - timedelta(days=day.weekday()), 7
    start = _local_midnight(first, tz)
    if start > instant:  # only when a gap swallows midnight and ``instant`` is inside it
        start = instant
    return Window(period, start, _local_midnight(first + timedelta(days=days), tz), tz_name)


def previous_window(window: Window) -> Window:
    return window_containing(window.period, window.start - timedelta(microseconds=1), window.tz)


def next_window(window: Window) -> Window:
    return window_containing(window.period, window.end, window.tz)


def clamp_hour(hour: int | None) -> int:
    """A stored ``digest_hour`` as a valid hour of the day (9 when unset)."""
    if hour is None:
        return 9
    return min(max(int(hour), 0), 23)


def due_at(window: Window, digest_hour: int | None = None) -> datetime:
    """When the digest of ``window`` may go out: at its end for hourly digests; for daily
    and weekly ones at ``digest_hour`` local time on the day the window ends (never before
    the end itself)."""
    if window.period == Period.HOURLY:
        return window.end
    tz = zone(window.tz)
    local_day = window.end.astimezone(tz).date()
    chosen = datetime.combine(local_day, time(clamp_hour(digest_hour)), tzinfo=tz).astimezone(UTC)
    return max(window.end, chosen)


def due_window(
    period: Period | str, now: datetime, tz_name: str, digest_hour: int | None
) -> Window:
    """The most recent window whose digest is due at ``now``: what a run at ``now`` builds."""
    current = window_containing(period, now, tz_name)
    ended = previous_window(current)
    if due_at(ended, digest_hour) <= now:
        return ended
    return previous_window(ended)


def upcoming_window(
    period: Period | str, now: datetime, tz_name: str, digest_hour: int | None
) -> Window:
    """The window of the next digest to go out after ``now`` (ended but not yet due, or the
    one still running): what a preview shows."""
    current = window_containing(period, now, tz_name)
    ended = previous_window(current)
    if due_at(ended, digest_hour) > now:
        return ended
    return current


def next_due(
    period: Period | str, now: datetime, tz_name: str, digest_hour: int | None
) -> datetime:
    """When the next digest after ``now`` goes out."""
    return due_at(upcoming_window(period, now, tz_name, digest_hour), digest_hour)
