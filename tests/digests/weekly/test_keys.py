"""Keys, TTLs, the week's window and batch cutting: pure, no database, no Redis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from digests.weekly import keys
from digests.weekly.activities import OrgBatch, cut_batches
from digests.weekly.keys import TeamDataKey, UserDataKey
from digests.weekly.types import Digest


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (datetime(2025, 3, 5, 10, tzinfo=UTC), "weekly-digest-2025-10"),
        # ISO years: a late-December Monday can open week 1 of the next year…
        (datetime(2024, 12, 30, 0, 0, tzinfo=UTC), "weekly-digest-2025-01"),
        # …and early January can still be week 53 of the previous one.
        (datetime(2021, 1, 3, 23, 59, tzinfo=UTC), "weekly-digest-2020-53"),
        # The week is decided in UTC: Monday 08:00 in Auckland is still Sunday in UTC.
        (datetime(2025, 3, 10, 8, tzinfo=ZoneInfo("Pacific/Auckland")), "weekly-digest-2025-10"),
    ],
)
def test_digest_key_is_the_iso_week_of_now(now, expected):
    assert keys.digest_key(now) == expected


def test_digest_key_refuses_a_naive_datetime():
    with pytest.raises(ValueError, match="aware"):
        keys.digest_key(datetime(2025, 3, 5))


def test_window_is_the_whole_previous_iso_week_for_any_moment_of_the_week():
    monday = datetime(2025, 3, 3, tzinfo=UTC)
    moments = [monday, monday + timedelta(days=3, hours=5), monday + timedelta(days=7, seconds=-1)]
    digests = {Digest.for_week(moment) for moment in moments}
    assert digests == {
        Digest(
            key="weekly-digest-2025-10",
            period_start=datetime(2025, 2, 24, tzinfo=UTC),
            period_end=datetime(2025, 3, 3, tzinfo=UTC),
        )
    }
    assert Digest.for_week(monday).label == "Feb 24 – Mar 2"


def test_digest_survives_a_json_round_trip():
    digest = Digest.for_week(datetime(2025, 3, 5, tzinfo=UTC))
    assert Digest.from_dict(digest.to_dict()) == digest


def test_every_builder_starts_with_the_week_and_no_two_collide():
    week = "weekly-digest-2025-10"
    built = [
        *(keys.team_data_key(week, kind, 7) for kind in TeamDataKey),
        *(keys.user_data_key(week, kind, 7) for kind in UserDataKey),
        keys.org_digest_key(week, 7),
        keys.sent_key(week, 7),
        keys.run_key(week),
    ]
    assert len(set(built)) == len(built)
    assert all(key.startswith(f"{week}-") for key in built)
    assert keys.team_data_key(week, TeamDataKey.DASHBOARDS, 12) == f"{week}-dashboards-12"
    assert keys.user_data_key(week, UserDataKey.NOTIFY_TEAMS, 3) == f"{week}-user-notify-3"


def test_builders_refuse_a_kind_that_is_not_in_the_enum():
    with pytest.raises(ValueError):
        keys.team_data_key("weekly-digest-2025-10", "dashbaords", 1)  # type: ignore[arg-type]


def test_ttls_keep_the_sent_sets_for_longer_than_a_week():
    assert keys.seconds(keys.DATA_TTL) > 0
    assert keys.seconds(keys.RUN_LEASE_TTL) > 0
    assert timedelta(days=7) < keys.SENT_TTL


def test_batches_never_split_an_org_and_keep_org_order():
    pairs = [(3, 30), (1, 10), (1, 11), (2, 20), (5, 50), (5, 51)]
    assert cut_batches(pairs, 2) == (
        OrgBatch(index=0, org_ids=(1, 2), team_ids=(10, 11, 20)),
        OrgBatch(index=1, org_ids=(3, 5), team_ids=(30, 50, 51)),
    )
    assert cut_batches([], 10) == ()
    with pytest.raises(ValueError):
        cut_batches(pairs, 0)


def test_batch_survives_a_json_round_trip():
    batch = OrgBatch(index=4, org_ids=(1, 2), team_ids=(10, 20))
    assert OrgBatch.from_dict(batch.to_dict()) == batch
