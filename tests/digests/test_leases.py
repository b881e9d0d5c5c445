"""Claims are leases in real time: a run's ``--now`` decides which windows are due, never
when another run's claim has expired. Through ``manage.py digests run`` and beat's task,
against the aiosmtpd server, on PostgreSQL and SQLite."""

from collections import Counter
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from digests import sender, tasks
from digests.models import Digest, DigestStatus
from digests.windows import Period, due_window
from notifications import sending
from tests.digests.factories import NotificationFactory

pytestmark = [pytest.mark.django_db, pytest.mark.integration, pytest.mark.sqlite]


def mails_by_key(server) -> Counter:
    return Counter(
        m.message["X-Notiflow-Digest"] for m in server.messages if m.message["X-Notiflow-Digest"]
    )


def inside_due_window(now):
    """A moment inside the daily window whose 09:00 UTC digest a run at ``now`` sends."""
    return due_window(Period.DAILY, now, "UTC", 9).start + timedelta(hours=1)


def a_week_back():
    """A time last week at which a daily 09:00 UTC digest is due, and a moment of the day
    that digest covers."""
    as_of = timezone.now() - timedelta(days=7)
    return as_of, inside_due_window(as_of)


def digests_run(now):
    call_command("digests", "run", "--period", "daily", "--now", now.isoformat(), stdout=StringIO())


def beat_tick():
    """What beat runs every minute: the Celery task, at the real time."""
    tasks.run_daily.delay()


def while_sending(monkeypatch, other_run):
    """Start ``other_run`` once the first run has claimed its digests and is about to send
    them — the moment two overlapping runs meet. The real send follows."""
    real = sender.deliver
    pending = [other_run]

    def deliver(*args, **kwargs):
        if pending:
            pending.pop()()
        real(*args, **kwargs)

    monkeypatch.setattr(sender, "deliver", deliver)


@pytest.mark.parametrize(
    "first, second",
    [
        pytest.param("backfill", "beat", id="beat-ticks-while-a-backfill-sends"),
        pytest.param("beat", "backfill", id="a-backfill-starts-while-beat-sends"),
        pytest.param("run", "run-11-minutes-later", id="the-next-run-while-a-long-run-sends"),
    ],
)
def test_overlapping_runs_with_different_now_send_each_digest_once(
    subscriber, smtp_server, monkeypatch, first, second
):
    as_of, inside = a_week_back()
    now = timezone.now()
    runs = {
        "backfill": lambda: digests_run(as_of),
        "beat": beat_tick,
        "run": lambda: digests_run(now),
        "run-11-minutes-later": lambda: digests_run(now + timedelta(minutes=11)),
    }
    user, team = subscriber(hour=9)
    NotificationFactory(recipient=user, team=team, at=inside)
    NotificationFactory(recipient=user, team=team, at=inside_due_window(now))
    while_sending(monkeypatch, runs[second])

    runs[first]()

    sent = mails_by_key(smtp_server)
    assert sent, "the runs sent nothing"
    assert max(sent.values()) == 1, sent
    assert set(sent) == set(
        Digest.objects.filter(status=DigestStatus.SENT).values_list("digest_key", flat=True)
    )


def claimed(minutes_ago: float, token: str = "a-sender-that-died") -> None:
    """Put every queued digest in ``sending``, claimed ``minutes_ago`` of real time by a
    sender that is gone: the claim stamp moves, the clock does not."""
    Digest.objects.filter(status=DigestStatus.QUEUED).update(
        status=DigestStatus.SENDING,
        claim_token=token,
        claimed_at=timezone.now() - timedelta(minutes=minutes_ago),
    )


def test_a_claim_past_its_lease_is_recovered_whatever_now_says(subscriber, smtp_server):
    as_of, inside = a_week_back()
    user, team = subscriber(hour=9)
    NotificationFactory(recipient=user, team=team, at=inside)
    call_command(
        "digests", "build", "--period", "daily", "--now", as_of.isoformat(), stdout=StringIO()
    )
    claimed(minutes_ago=sending.SEND.lease.duration.total_seconds() / 60 + 1)

    digests_run(as_of)  # a backfill's --now lies a week back; the lease is still over

    digest = Digest.objects.get(user=user)
    assert digest.status == DigestStatus.SENT
    assert list(mails_by_key(smtp_server).values()) == [1]


def test_a_claim_inside_its_lease_is_left_alone_whatever_now_says(subscriber, smtp_server):
    as_of, inside = a_week_back()
    user, team = subscriber(hour=9)
    NotificationFactory(recipient=user, team=team, at=inside)
    call_command(
        "digests", "build", "--period", "daily", "--now", as_of.isoformat(), stdout=StringIO()
    )
    claimed(minutes_ago=sending.SEND.lease.duration.total_seconds() / 60 - 1)

    digests_run(timezone.now() + timedelta(days=1))  # --now a day ahead: no lease is over

    assert Digest.objects.get(window_start__lt=as_of).status == DigestStatus.SENDING
    assert not smtp_server.messages
