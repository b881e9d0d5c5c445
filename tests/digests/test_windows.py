"""Digest windows in the user's timezone (pure; no database)."""

from datetime import UTC, datetime, timedelta

import pytest

from digests.windows import (
    Period,
    due_at,
    due_window,
    next_due,
    next_window,
    previous_window,
    upcoming_window,
    window_containing,
)


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


# 2026: Europe/Berlin springs forward on Sunday 29 March (02:00 CET → 03:00 CEST, at 01:00Z)
# and falls back on Sunday 25 October (03:00 CEST → 02:00 CET, at 01:00Z).


def test_daily_window_on_the_spring_forward_day_is_23_hours():
    window = window_containing(Period.DAILY, utc(2026, 3, 29, 12), "Europe/Berlin")
    assert window.start == utc(2026, 3, 28, 23)
    assert window.end == utc(2026, 3, 29, 22)
    assert window.end - window.start == timedelta(hours=23)
    assert window.local_start.hour == 0 and window.local_end.hour == 0


def test_daily_window_on_the_fall_back_day_is_25_hours():
    window = window_containing(Period.DAILY, utc(2026, 10, 25, 12), "Europe/Berlin")
    assert window.start == utc(2026, 10, 24, 22)
    assert window.end == utc(2026, 10, 25, 23)
    assert window.end - window.start == timedelta(hours=25)


def test_the_repeated_hour_on_the_fall_back_day_is_two_hourly_windows():
    first = window_containing(Period.HOURLY, utc(2026, 10, 25, 0, 30), "Europe/Berlin")
    second = window_containing(Period.HOURLY, utc(2026, 10, 25, 1, 30), "Europe/Berlin")
    assert (first.start, first.end) == (utc(2026, 10, 25, 0), utc(2026, 10, 25, 1))
    assert (second.start, second.end) == (utc(2026, 10, 25, 1), utc(2026, 10, 25, 2))
    assert first.local_start.hour == second.local_start.hour == 2
    assert next_window(first) == second


def test_the_skipped_hour_on_the_spring_forward_day_has_no_window():
    before = window_containing(Period.HOURLY, utc(2026, 3, 29, 0, 59), "Europe/Berlin")
    after = next_window(before)
    assert (before.local_start.hour, after.local_start.hour) == (1, 3)
    assert before.end == after.start == utc(2026, 3, 29, 1)
    assert after.end - after.start == timedelta(hours=1)


def test_hourly_windows_in_a_quarter_hour_zone_start_at_local_hours():
    window = window_containing(Period.HOURLY, utc(2026, 3, 30, 9, 0), "Asia/Kathmandu")
    assert window.local_start.strftime("%H:%M") == "14:00"
    assert (window.start, window.end) == (utc(2026, 3, 30, 8, 15), utc(2026, 3, 30, 9, 15))


def test_daily_window_in_a_quarter_hour_zone_starts_at_local_midnight():
    window = window_containing(Period.DAILY, utc(2026, 3, 30, 20, 0), "Asia/Kathmandu")
    assert window.start == utc(2026, 3, 30, 18, 15)
    assert window.end == utc(2026, 3, 31, 18, 15)


def test_weekly_window_runs_monday_to_monday_across_a_dst_change():
    window = window_containing(Period.WEEKLY, utc(2026, 3, 27, 12), "Europe/Berlin")
    assert window.local_start.strftime("%a %d %H:%M") == "Mon 23 00:00"
    assert window.local_end.strftime("%a %d %H:%M") == "Mon 30 00:00"
    assert window.end - window.start == timedelta(days=7, hours=-1)


@pytest.mark.parametrize(
    "tz, day, start, end",
    [
        # Auckland leaves daylight time on Sunday 5 April 2026 (NZDT +13 → NZST +12).
        ("Pacific/Auckland", (2026, 4, 4, 23), utc(2026, 4, 4, 11), utc(2026, 4, 5, 12)),
        ("Pacific/Auckland", (2026, 4, 6, 0), utc(2026, 4, 5, 12), utc(2026, 4, 6, 12)),
        # Los Angeles enters daylight time on Sunday 8 March 2026 (PST -8 → PDT -7).
        ("America/Los_Angeles", (2026, 3, 8, 12), utc(2026, 3, 8, 8), utc(2026, 3, 9, 7)),
        ("America/Los_Angeles", (2026, 3, 9, 12), utc(2026, 3, 9, 7), utc(2026, 3, 10, 7)),
    ],
)
def test_daily_windows_start_at_each_users_own_midnight(tz, day, start, end):
    window = window_containing(Period.DAILY, utc(*day), tz)
    assert (window.start, window.end) == (start, end)
    assert window.local_start.strftime("%H:%M") == window.local_end.strftime("%H:%M") == "00:00"


def test_a_daily_digest_is_due_at_the_chosen_hour_after_the_window_ends():
    window = window_containing(Period.DAILY, utc(2026, 3, 29, 12), "Europe/Berlin")
    assert due_at(window, 9) == utc(2026, 3, 30, 7)  # 09:00 CEST
    assert due_window(Period.DAILY, utc(2026, 3, 30, 6, 59), "Europe/Berlin", 9) == (
        previous_window(window)
    )
    assert due_window(Period.DAILY, utc(2026, 3, 30, 7, 0), "Europe/Berlin", 9) == window


def test_hour_zero_makes_a_daily_digest_due_when_the_day_ends():
    window = window_containing(Period.DAILY, utc(2026, 3, 29, 12), "Europe/Berlin")
    assert due_at(window, 0) == window.end


def test_a_weekly_digest_is_due_on_monday_at_the_chosen_hour():
    window = window_containing(Period.WEEKLY, utc(2026, 3, 25), "Europe/Berlin")
    assert due_at(window, 8).astimezone(window.local_start.tzinfo).strftime("%a %d %H:%M") == (
        "Mon 30 08:00"
    )


def test_an_hourly_digest_is_due_when_its_hour_ends():
    now = utc(2026, 3, 30, 9, 0)
    window = due_window(Period.HOURLY, now, "UTC", None)
    assert (window.start, window.end) == (utc(2026, 3, 30, 8), now)


def test_upcoming_window_and_next_due():
    tz = "America/Los_Angeles"
    early = utc(2026, 3, 10, 14)  # 07:00 PDT, before the 09:00 digest of 9 March
    assert upcoming_window(Period.DAILY, early, tz, 9).local_start.day == 9
    assert next_due(Period.DAILY, early, tz, 9) == utc(2026, 3, 10, 16)
    late = utc(2026, 3, 10, 17)  # 10:00 PDT, after it
    assert upcoming_window(Period.DAILY, late, tz, 9).local_start.day == 10
    assert next_due(Period.DAILY, late, tz, 9) == utc(2026, 3, 11, 16)


def test_out_of_range_hours_are_clamped_and_unknown_zones_fall_back_to_utc():
    window = window_containing(Period.DAILY, utc(2026, 3, 29, 12), "Mars/Olympus_Mons")
    assert (window.start, window.end) == (utc(2026, 3, 29), utc(2026, 3, 30))
    assert due_at(window, 99) == utc(2026, 3, 30, 23)


def test_a_naive_time_is_refused():
    with pytest.raises(ValueError, match="no timezone"):
        window_containing(Period.DAILY, datetime(2026, 3, 29, 12), "UTC")


@pytest.mark.parametrize(
    "tz",
    [
        "Europe/Berlin",
        "Pacific/Auckland",
        "America/Los_Angeles",
        "Asia/Kathmandu",
        "Australia/Lord_Howe",  # a half-hour DST shift
        "America/Santiago",  # DST changes at midnight
        "Pacific/Chatham",  # +12:45 / +13:45
    ],
)
@pytest.mark.parametrize("period", list(Period))
def test_windows_tile_a_year_without_gaps_or_overlaps(tz, period):
    steps = {Period.HOURLY: 24 * 366, Period.DAILY: 366, Period.WEEKLY: 53}[period]
    window = window_containing(period, utc(2026, 1, 1), tz)
    for _ in range(steps):
        following = next_window(window)
        assert following.start == window.end
        assert window.start < window.end
        assert window_containing(period, window.start, tz) == window
        assert window_containing(period, window.end - timedelta(microseconds=1), tz) == window
        assert previous_window(following) == window
        window = following
