"""Unit tests for the pure window rules of roll-ups."""

from datetime import UTC, datetime, timedelta

from notifications.rollup import closes_after_hit, open_bounds, summary_title
from notifications.triggers import DeliverySpec, Mode

NOW = datetime(2026, 11, 23, 14, 2, tzinfo=UTC)


def test_a_plain_window_closes_after_window_seconds_whatever_arrives():
    spec = DeliverySpec(mode=Mode.ROLLUP, window_seconds=300)
    closes, hard = open_bounds(spec, NOW)
    assert closes == hard == NOW + timedelta(minutes=5)
    later = NOW + timedelta(minutes=4)
    assert (
        closes_after_hit(spec, closes_at=closes, hard_close_at=hard, count=999, now=later) == closes
    )


def test_each_hit_extends_the_window_up_to_the_maximum():
    spec = DeliverySpec(mode=Mode.ROLLUP, window_seconds=60, max_window_seconds=180)
    closes, hard = open_bounds(spec, NOW)
    assert hard == NOW + timedelta(minutes=3)
    t = NOW + timedelta(seconds=50)
    closes = closes_after_hit(spec, closes_at=closes, hard_close_at=hard, count=2, now=t)
    assert closes == t + timedelta(seconds=60)
    t = NOW + timedelta(seconds=170)
    assert closes_after_hit(spec, closes_at=closes, hard_close_at=hard, count=3, now=t) == hard


def test_max_items_closes_the_window_early():
    spec = DeliverySpec(mode=Mode.ROLLUP, window_seconds=600, max_items=100)
    closes, hard = open_bounds(spec, NOW)
    t = NOW + timedelta(seconds=5)
    assert closes_after_hit(spec, closes_at=closes, hard_close_at=hard, count=99, now=t) == closes
    assert closes_after_hit(spec, closes_at=closes, hard_close_at=hard, count=100, now=t) == t


def test_summary_reads_like_a_person_wrote_it():
    title = summary_title("checkout_error", 1000, NOW, NOW + timedelta(minutes=5))
    assert title == "checkout_error seen 1,000 times between 14:02 and 14:07 UTC"
    assert summary_title("signup", 1, NOW, NOW) == "signup seen 1 time between 14:02 and 14:02 UTC"
