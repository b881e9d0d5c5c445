"""Every Redis key of the weekly organization digest, and how long each one lives.

Nothing else in the project writes one of these strings: activities, tasks and tests call
the builders below. A key starts with the week's :func:`digest_key`
(``weekly-digest-2025-10``), so two weeks never share state and a re-run in the same ISO
week finds the previous run's ``sent`` sets.

TTLs: staged data and aggregated org digests are scratch space for one run and expire
after :data:`DATA_TTL`; the ``sent`` sets must outlive the ISO week they guard
(:data:`SENT_TTL`); the run marker holds a lease while a scheduled run is in flight and is
stretched to :data:`SENT_TTL` when the run finishes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum

DIGEST_KEY_PREFIX = "weekly-digest"

DATA_TTL = timedelta(days=3)
"""Staged team/user data and aggregated org digests: long enough to re-run a failed send
phase by hand, short enough not to pile up."""

SENT_TTL = timedelta(days=8)
"""The week's ``sent`` sets and the finished-run marker: longer than one ISO week, so any
re-run inside the week still sees who already got this week's mail."""

RUN_LEASE_TTL = timedelta(hours=6)
"""How long a scheduled run may take before the next beat tick may start it again."""


class TeamDataKey(StrEnum):
    """One value per team-level section; the staged JSON is a list of that section's items."""

    DASHBOARDS = "dashboards"
    EVENT_DEFINITIONS = "event-definitions"
    EXPERIMENTS_LAUNCHED = "experiments-launched"
    EXPERIMENTS_COMPLETED = "experiments-completed"
    FEATURE_FLAGS = "feature-flags"
    SURVEYS_LAUNCHED = "surveys-launched"
    COHORTS = "cohorts"


class UserDataKey(StrEnum):
    """One value per user-level lookup. ``NOTIFY_TEAMS`` is a Redis SET of team ids the user
    wants to hear about; ``PRODUCT_SUGGESTION`` is one JSON object."""

    NOTIFY_TEAMS = "user-notify"
    PRODUCT_SUGGESTION = "product-suggestion"


def digest_key(now: datetime) -> str:
    """``weekly-digest-YYYY-WW`` for the ISO week ``now`` falls in (in UTC).

    The ISO year is used, so 2024-12-30 (a Monday) belongs to ``weekly-digest-2025-01``.
    """
    if now.tzinfo is None:
        raise ValueError("digest_key needs an aware datetime (got a naive one)")
    year, week, _ = now.astimezone(UTC).isocalendar()
    return f"{DIGEST_KEY_PREFIX}-{year:04d}-{week:02d}"


def team_data_key(digest_key: str, kind: TeamDataKey, team_id: int) -> str:
    return f"{digest_key}-{TeamDataKey(kind)}-{int(team_id)}"


def user_data_key(digest_key: str, kind: UserDataKey, user_id: int) -> str:
    return f"{digest_key}-{UserDataKey(kind)}-{int(user_id)}"


def org_digest_key(digest_key: str, org_id: int) -> str:
    return f"{digest_key}-org-{int(org_id)}"


def sent_key(digest_key: str, org_id: int) -> str:
    """SET of user ids who were sent (or are being sent) this week's digest of ``org_id``."""
    return f"{digest_key}-sent-{int(org_id)}"


def run_key(digest_key: str) -> str:
    """The scheduled run's marker: ``running`` (a lease) or ``done``."""
    return f"{digest_key}-run"


def key_pattern(digest_key: str) -> str:
    """A ``SCAN MATCH`` pattern for every key of one week (operators and tests)."""
    return f"{digest_key}-*"


def seconds(ttl: timedelta) -> int:
    """A TTL as the whole seconds Redis ``EX``/``EXPIRE`` take."""
    return int(ttl.total_seconds())
