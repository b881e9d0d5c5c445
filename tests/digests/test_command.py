"""``manage.py digests``: exit codes, the summary line, progress, and a dry run that writes
nothing."""

import hashlib
import io
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.apps import apps
from django.core import serializers
from django.core.management import call_command

from digests.history import ExecutionStatus, executions_list, redis_client
from digests.models import Digest, DigestStatus
from tests.digests.factories import NotificationFactory

pytestmark = pytest.mark.sqlite

ROOT = Path(__file__).resolve().parents[2]
DAY = datetime(2026, 3, 29, 12, tzinfo=UTC)
NOW = "2026-03-30T09:30:00+00:00"


def manage(*args):
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["digests", "run", "--now", "yesterday"], "--now 'yesterday' is not an ISO 8601 time"),
        (["digests", "send", "--period", "monthly"], "--period 'monthly' is not one of"),
        (["digests", "explode"], "say what to do: digests build|send|run"),
    ],
)
def test_bad_arguments_exit_non_zero_with_one_readable_line(args, message):
    result = manage(*args)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0]


class FakeTTY(io.StringIO):
    def isatty(self):
        return True


def run(*args, stdout=None):
    out = stdout or io.StringIO()
    call_command("digests", *args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
@pytest.mark.integration
def test_run_ends_with_a_one_line_summary_and_logs_plain_lines(subscriber, smtp_server):
    user, team = subscriber()
    NotificationFactory(recipient=user, team=team, at=DAY)
    subscriber(team=team)  # nothing for this one: an empty window

    output = run("run", "--period", "daily", "--now", NOW)

    lines = output.strip().splitlines()
    assert "\r" not in output
    assert all(line.startswith("digests: ") for line in lines[:-1])
    assert lines[-1].startswith(f"digests run daily as of {NOW}: 2 users, 2 digests built")
    assert "(1 empty), 1 sent, 0 skipped, 0 failed, 0 retrying in " in lines[-1]


@pytest.mark.django_db
@pytest.mark.integration
def test_on_a_terminal_progress_rewrites_one_line(subscriber, smtp_server):
    user, team = subscriber()
    NotificationFactory(recipient=user, team=team, at=DAY)
    output = run("run", "--now", NOW, stdout=FakeTTY())
    assert "\r\033[Kdaily send: 1 users done, 1 sent, 0 skipped, 0 failed" in output
    assert output.splitlines()[-1].startswith("digests run hourly,daily,weekly as of")


@pytest.mark.django_db
def test_build_and_send_are_separate_steps(subscriber, smtp_server):
    user, team = subscriber()
    NotificationFactory(recipient=user, team=team, at=DAY)
    built = run("build", "--period", "daily", "--now", NOW).strip().splitlines()[-1]
    assert "1 users, 1 digests built (0 empty) in" in built
    assert Digest.objects.get().status == DigestStatus.QUEUED
    sent = run("send", "--now", NOW).strip().splitlines()[-1]
    assert "1 sent, 0 skipped, 0 failed, 0 retrying" in sent
    assert len(smtp_server.messages) == 1


def snapshot():
    """Every row of every table notiflow owns, serialized: rows and content."""
    tables = {}
    for model in apps.get_models():
        if model._meta.app_label in {"digests", "notifications", "workspace", "auth"}:
            rows = serializers.serialize("json", model.objects.order_by("pk"))
            tables[model._meta.label] = (
                model.objects.count(),
                hashlib.sha256(rows.encode()).hexdigest(),
            )
    return tables


def redis_keys(settings):
    return sorted(redis_client().scan_iter(match=f"{settings.NOTIFLOW_TOPIC_PREFIX}:digest:*"))


@pytest.mark.django_db
@pytest.mark.integration
def test_dry_run_prints_what_would_be_sent_and_changes_nothing(subscriber, smtp_server, settings):
    user, team = subscriber(username="dana")
    NotificationFactory(recipient=user, team=team, title="Ann edited dashboard “Revenue”", at=DAY)
    # A queued digest from an earlier window is due too: the dry run shows it as well.
    earlier, _ = subscriber(team=team, username="eli")
    NotificationFactory(recipient=earlier, team=team, at=datetime(2026, 3, 27, 12, tzinfo=UTC))
    call_command("digests", "build", "--period", "daily", "--now", "2026-03-28T10:00:00Z")
    before, keys_before = snapshot(), redis_keys(settings)
    assert before["digests.Digest"][0] == 2  # eli's queued digest, dana's empty one

    output = run("run", "--period", "daily", "--dry-run", "--now", NOW)

    assert snapshot() == before
    assert redis_keys(settings) == keys_before
    assert smtp_server.messages == []
    assert "would send email digest to dana · daily Sun 29 Mar 2026 (UTC) · 1 items" in output
    assert "    • Ann edited dashboard “Revenue” (unread)" in output
    assert f"would send email digest to user {earlier.pk} ({earlier.email})" in output
    summary = output.strip().splitlines()[-1]
    assert "2 would be sent" in summary and summary.endswith("[dry run: nothing written]")


@pytest.mark.django_db
def test_build_dry_run_and_send_dry_run_change_nothing(subscriber, smtp_server, settings):
    user, team = subscriber()
    NotificationFactory(recipient=user, team=team, at=DAY)
    before = snapshot()
    build = run("build", "--dry-run", "--now", NOW)
    send = run("send", "--dry-run", "--now", NOW)
    assert snapshot() == before
    assert "would build email digest" in build
    assert "0 would be sent" in send.strip().splitlines()[-1]
    assert json.dumps(redis_keys(settings)) == "[]"


@pytest.mark.django_db
@pytest.mark.integration
def test_run_records_the_digest_it_sent_and_the_next_run_sends_nothing(subscriber, smtp_server):
    user, team = subscriber()
    NotificationFactory(recipient=user, team=team, at=DAY)

    first = run("run", "--period", "daily", "--now", NOW).strip().splitlines()[-1]
    later = "2026-03-30T09:45:00+00:00"  # beat's tick a quarter of an hour on
    second = run("run", "--period", "daily", "--now", later).strip().splitlines()[-1]

    assert "1 sent, 0 skipped, 0 failed" in first
    assert "0 sent, 0 skipped, 0 failed" in second
    assert len(smtp_server.messages) == 1
    digest = Digest.objects.get(user=user)
    assert (digest.status, digest.attempts) == (DigestStatus.SENT, 1)
    (record,) = executions_list(profile_id=user.pk)
    assert (record.status, record.message_count) == (ExecutionStatus.SUCCESS, 1)
