"""Periodic tasks, installed into django-celery-beat's tables after ``migrate`` so they are
visible and editable in the admin. Existing rows keep their edits (interval, enabled)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django_celery_beat.models import IntervalSchedule, PeriodicTask


@dataclass(frozen=True)
class Periodic:
    name: str
    task: str
    every_seconds: int


PERIODIC = (
    Periodic("Relay the notification outbox to Kafka", "notifications.tasks.relay_outbox", 5),
    Periodic("Check scheduled triggers", "notifications.tasks.run_checks", 60),
    Periodic("Flush roll-up windows", "notifications.tasks.flush_rollups", 1),
    Periodic("Re-enqueue due and stuck deliveries", "notifications.tasks.recover_deliveries", 60),
    Periodic("Release what quiet hours held", "notifications.tasks.release_held", 30),
    Periodic(
        "Forget counted events past the replay horizon", "notifications.tasks.prune_claims", 3600
    ),
)


def install_periodic(items: Iterable[Periodic]) -> None:
    for item in items:
        interval, _ = IntervalSchedule.objects.get_or_create(
            every=item.every_seconds, period=IntervalSchedule.SECONDS
        )
        PeriodicTask.objects.get_or_create(
            name=item.name, defaults={"task": item.task, "interval": interval}
        )


def install(**kwargs) -> None:
    install_periodic(PERIODIC)
