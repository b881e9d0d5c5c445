"""Unit (pure, no database): "is this moment inside the person's quiet period", against a
reference that walks every minute of the days around it on the wall clock.

The reference knows nothing of folds or gaps: it finds when a night's quiet period starts
and ends by scanning minutes for the first one whose local clock reads the time or later.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from notifications.quiet import (
    Attention,
    Why,
    dnd_preset,
    held_from_message,
    quiet_period,
    quiet_until,
    release_message,
)

# (zone, day, the local hours its clocks change in): both DST changes of zones whose
# changes differ (an hour at 02:00 or 03:00, Lord Howe's half hour at 02:00), a zone
# without DST, and an ordinary summer day.
CASES = (
    ("Europe/Berlin", date(2026, 3, 29), (1, 2, 3)),
    ("Europe/Berlin", date(2026, 10, 25), (1, 2, 3)),
    ("America/New_York", date(2026, 3, 8), (1, 2, 3)),
    ("America/New_York", date(2026, 11, 1), (0, 1, 2)),
    ("Australia/Lord_Howe", date(2026, 4, 5), (1, 2)),
    ("Australia/Lord_Howe", date(2026, 10, 4), (1, 2, 3)),
    ("Asia/Kolkata", date(2026, 3, 29), ()),
    ("Europe/Berlin", date(2026, 7, 14), ()),
)
MINUTE = timedelta(minutes=1)
MINUTES = (0, 1, 15, 29, 30, 31, 45, 59)


@st.composite
def cases(draw):
    """A zone and day, and quiet hours that often start or end in the hour the clocks
    change (where a wall time is missing or repeated)."""
    zone, day, changing = draw(st.sampled_from(CASES))
    hours = st.sampled_from(changing) if changing else st.integers(0, 23)

    def wall():
        hour = draw(st.one_of(hours, st.integers(0, 23)))
        return time(hour, draw(st.sampled_from(MINUTES)))

    return zone, day, wall(), wall()


def reference_first(day: date, wall: time, zone: ZoneInfo) -> datetime:
    """The first whole minute (UTC) whose local clock reads ``day wall`` or later."""
    target = datetime.combine(day, wall)
    moment = datetime.combine(day, time(0), tzinfo=UTC) - timedelta(hours=16)
    while moment.astimezone(zone).replace(tzinfo=None) < target:
        moment += MINUTE
    return moment


def reference_periods(start: time, end: time, zone: ZoneInfo, day: date):
    for offset in (-2, -1, 0, 1):
        night = day + timedelta(days=offset)
        ends_on = night + timedelta(days=1) if start > end else night
        yield reference_first(night, start, zone), reference_first(ends_on, end, zone)


@settings(max_examples=150, deadline=None)
@given(case=cases())
def test_every_minute_of_a_day_is_quiet_exactly_when_the_reference_says(case):
    zone, day, start, end = case
    tz = ZoneInfo(zone)
    periods = [(s, e) for s, e in reference_periods(start, end, tz, day) if s < e]
    moment = datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)
    last = moment + timedelta(hours=26)
    while moment < last:
        expected = next(((s, e) for s, e in periods if s <= moment < e), None)
        got = quiet_period(start, end, tz, moment) if start != end else None
        assert got == expected, (zone, day, start, end, moment)
        moment += MINUTE


@settings(max_examples=150, deadline=None)
@given(case=cases(), hours=st.lists(st.integers(0, 26 * 60), min_size=1, max_size=10))
def test_a_hold_ends_when_quiet_hours_end_and_never_inside_them(case, hours):
    zone, day, start, end = case
    attention = Attention(zone=zone, quiet_start=start, quiet_end=end)
    tz = ZoneInfo(zone)
    midnight = datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)
    for minutes in hours:
        now = midnight + timedelta(minutes=minutes)
        hold = quiet_until(attention, now)
        if hold is None:
            assert quiet_period(start, end, tz, now) is None
            continue
        assert hold.until > now and hold.why == Why.QUIET_HOURS
        assert quiet_period(start, end, tz, hold.until) is None  # over when it says
        assert quiet_period(start, end, tz, hold.until - timedelta(seconds=1)) is not None


def test_do_not_disturb_into_quiet_hours_holds_until_both_are_over():
    berlin = Attention(
        zone="Europe/Berlin",
        quiet_start=time(22),
        quiet_end=time(7),
        dnd_until=datetime(2026, 12, 8, 21, 30, tzinfo=UTC),  # 22:30 local, inside the hours
    )
    hold = quiet_until(berlin, datetime(2026, 12, 8, 19, 0, tzinfo=UTC))
    assert hold.until == datetime(2026, 12, 9, 6, 0, tzinfo=UTC) and hold.why == Why.QUIET_HOURS
    later = Attention(zone="UTC", quiet_start=time(22), quiet_end=time(7), dnd_until=hold.until)
    late = quiet_until(later, datetime(2026, 12, 9, 3, 0, tzinfo=UTC))
    assert late.until == datetime(2026, 12, 9, 7, 0, tzinfo=UTC)


def test_until_tomorrow_morning_is_eight_in_the_persons_zone():
    tokyo = Attention(zone="Asia/Tokyo")
    evening = datetime(2026, 12, 8, 12, 0, tzinfo=UTC)  # 21:00 in Tokyo
    assert dnd_preset("morning", tokyo, evening) == datetime(2026, 12, 8, 23, 0, tzinfo=UTC)
    early = datetime(2026, 12, 8, 20, 0, tzinfo=UTC)  # 05:00 in Tokyo: this morning
    assert dnd_preset("morning", tokyo, early) == datetime(2026, 12, 8, 23, 0, tzinfo=UTC)
    assert dnd_preset("hour", tokyo, evening) == evening + timedelta(hours=1)


def test_the_summary_counts_topics_largest_first_with_links():
    held = [
        held_from_message({"title": "a", "topic": "checkout_error", "url": "/i/1", "count": 8}),
        held_from_message({"title": "b", "topic": "checkout_error"}),
        *[
            held_from_message(
                {"title": "c", "topic": "edit to Revenue", "topic_plural": "edits to Revenue"}
            )
            for _ in range(3)
        ],
        held_from_message(
            {"title": "Bob created x", "topic": "creation of x", "topic_plural": "creations of x"}
        ),
        held_from_message({"title": "only a title"}),
    ]
    message = release_message(held, base_url="https://n.example")
    assert message["title"] == (
        "While you were away: 14 notifications — 9 × checkout_error, 3 edits to Revenue, "
        "1 creation of x, …"
    )
    assert message["lines"][0] == "9 × checkout_error: https://n.example/i/1"
    assert message["count"] == 14 and message["url"] == "https://n.example/"
