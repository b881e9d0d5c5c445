"""A profile's digest schedules as the API shows them: one per type (hourly, daily,
weekly), which one is on, when it last ran (Redis) and when it runs next (windows)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from digests import history
from digests.builder import recipient_for
from digests.windows import Period, Window, clamp_hour, next_due, upcoming_window
from notifications.models import Preference
from workspace.models import UserProfile


@dataclass(frozen=True)
class Schedule:
    profile_id: int
    schedule_type: str
    enabled: bool
    timezone: str
    digest_hour: int
    channels: tuple[str, ...]
    last_run: datetime | None
    next_run: datetime | None
    next_window: Window | None


def schedules_for(*, user_id: int, now: datetime) -> list[Schedule]:
    """Every schedule type for one profile; only the user's cadence is enabled."""
    found = recipient_for(user_id)
    if found is not None:
        tz, hour, channels = found.timezone, found.digest_hour, found.digest_channels()
    else:
        zone = UserProfile.objects.filter(user_id=user_id).values_list("timezone", flat=True)
        stored = Preference.objects.filter(user_id=user_id).values_list("digest_hour", flat=True)
        tz, hour, channels = zone.first() or "UTC", clamp_hour(stored.first()), ()
    last = history.last_runs(user_id)
    out = []
    for period in Period:
        enabled = found is not None and found.period == period
        out.append(
            Schedule(
                profile_id=user_id,
                schedule_type=period.value,
                enabled=enabled,
                timezone=tz,
                digest_hour=hour,
                channels=channels if enabled else (),
                last_run=last.get(period.value),
                next_run=next_due(period, now, tz, hour) if enabled else None,
                next_window=upcoming_window(period, now, tz, hour) if enabled else None,
            )
        )
    return out
