"""Handing work to the Celery workers, for the modules the tasks themselves call.

:mod:`notifications.tasks` imports the services it wraps (checks, delivery, roll-ups, the
consumer's pruning). A service that enqueues a task once its transaction commits (the
outbox nudging the relay, the consumer sending what it queued) asks for the task here, by
its registered name, so imports only go tasks → services, never back (no import circle,
``tests/test_import_cycles.py``). The names below are the tasks' own: ``tasks.py`` declares
each of these tasks with ``name=`` the constant. ``NotificationsConfig.ready`` imports
``tasks``, so every process has them registered and a task enqueued from here runs as one
called directly would (inline under ``task_always_eager``); a name nobody registered is a
``KeyError`` at once, never a message no worker knows.
"""

from __future__ import annotations

from collections.abc import Iterable

from celery import current_app
from celery.app.task import Task

RELAY_OUTBOX = "notifications.tasks.relay_outbox"
DELIVER = "notifications.tasks.deliver"


def task(name: str) -> Task:
    """The registered task called ``name``."""
    return current_app.tasks[name]


def deliver_all(delivery_ids: Iterable[int]) -> int:
    """Enqueue ``deliver`` for each id; duplicates are harmless (the claim is atomic)."""
    deliver = task(DELIVER)
    count = 0
    for delivery_id in delivery_ids:
        deliver.delay(delivery_id)
        count += 1
    return count
