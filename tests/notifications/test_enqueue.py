"""``notifications.enqueue``: services enqueue tasks by name; each name must be a task that
``notifications.tasks`` declares, registered in every process. Unit tests: no services."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from notifications import enqueue, tasks

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("name", "declared"),
    [(enqueue.RELAY_OUTBOX, tasks.relay_outbox), (enqueue.DELIVER, tasks.deliver)],
)
def test_each_name_is_the_task_tasks_declares(name, declared):
    assert declared.name == name
    assert enqueue.task(name).run is declared.run


def test_a_name_nobody_declared_fails_at_once():
    with pytest.raises(KeyError):
        enqueue.task("notifications.tasks.no_such_task")


def test_a_process_that_never_imported_tasks_has_them_registered():
    """Django's start-up registers them (``NotificationsConfig.ready``): a web process that
    enqueues from the outbox gets the task, not a KeyError or a message sent by name."""
    script = (
        "import django; django.setup()\n"
        "from notifications import enqueue\n"
        "print(enqueue.task(enqueue.DELIVER).name, enqueue.task(enqueue.RELAY_OUTBOX).name)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [enqueue.DELIVER, enqueue.RELAY_OUTBOX]
