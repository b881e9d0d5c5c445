"""Send phase against a real SMTP server (aiosmtpd) and PostgreSQL: each digest once."""

import io
import os
import re
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from digests.builder import digest_build
from digests.history import ExecutionStatus, executions_list
from digests.models import Digest, DigestChannel, DigestStatus
from digests.runs import digest_run
from digests.sender import digest_send
from digests.windows import Period
from notifications.delivery import DISABLE_AFTER_FAILURES
from notifications.models import Notification
from notifications.sending import SEND, SendPolicy
from tests.digests.factories import (
    ChannelConfigFactory,
    DigestTargetFactory,
    NotificationFactory,
)
from tests.factories import MembershipFactory, UserFactory
from tests.servers.worker import subprocess_database_url

pytestmark = [pytest.mark.integration, pytest.mark.sqlite]

ROOT = Path(__file__).resolve().parents[2]

DAY = datetime(2026, 3, 29, 12, tzinfo=UTC)
NOW = datetime(2026, 3, 30, 9, 30, tzinfo=UTC)


def digest_mails(server):
    return [m for m in server.messages if m.message["X-Notiflow-Digest"]]


@pytest.mark.django_db
def test_three_notifications_one_email_and_a_second_run_sends_nothing(subscriber, smtp_server):
    user, team = subscriber(tz="Europe/Berlin", hour=9)
    team.name = "Growth"
    team.save()
    for i in range(3):
        NotificationFactory(
            recipient=user,
            team=team,
            title=f"Person {i} edited dashboard “Revenue”",
            url="http://127.0.0.1:8000/api/dashboards/1/",
            at=DAY + timedelta(hours=i),
        )

    first = digest_run(period=Period.DAILY, now=NOW)
    second = digest_run(period=Period.DAILY, now=NOW + timedelta(minutes=1))
    # A build and a send on their own, later the same day, find nothing either.
    digest_build(period=Period.DAILY, now=NOW + timedelta(hours=2))
    digest_send(now=NOW + timedelta(hours=2))

    assert (first.send.sent, second.send.sent) == (1, 0)
    mails = digest_mails(smtp_server)
    assert len(mails) == 1
    mail = mails[0]
    assert mail.rcpt_tos == [user.email]
    assert mail.message["Subject"] == "Your daily digest: 3 updates in 1 team"
    text = mail.part("text/plain").replace("\r\n", "\n")
    assert "Growth\n• 3 edits to Revenue dashboard (3 unread)" in text
    assert "Next digest: Tue 31 Mar 2026, 09:00 (Europe/Berlin)" in text
    assert "Digest settings: http://127.0.0.1:8000/preferences/" in text
    assert "Open your inbox: http://127.0.0.1:8000/" in text
    assert "Unsubscribe from all digest emails: http://127.0.0.1:8000/unsubscribe/" in text
    html = mail.part("text/html")
    assert "<strong>3 edits to Revenue dashboard (3 unread)</strong>" in html
    assert 'href="http://127.0.0.1:8000/preferences/"' in html
    assert 'href="http://127.0.0.1:8000/api/dashboards/1/"' in html
    assert mail.message["List-Unsubscribe"]
    digest = Digest.objects.get(user=user)
    assert (digest.status, digest.attempts, digest.sent_at) == (DigestStatus.SENT, 1, NOW)


@pytest.mark.django_db
def test_a_batch_of_emails_shares_one_smtp_connection(subscriber, smtp_server):
    users = [subscriber()[0] for _ in range(25)]
    for user in users:
        NotificationFactory(recipient=user, team=user.memberships.get().team, at=DAY)
    digest_build(period=Period.DAILY, now=NOW)
    report = digest_send(now=NOW, policy=SendPolicy(batch_size=25))
    assert report.sent == 25
    assert len(digest_mails(smtp_server)) == 25
    assert smtp_server.connections == 1


@pytest.mark.django_db
def test_a_temporary_smtp_refusal_backs_off_and_a_later_send_delivers(subscriber, smtp_server):
    user, team = subscriber()
    NotificationFactory(recipient=user, team=team, at=DAY)
    digest_build(period=Period.DAILY, now=NOW)
    smtp_server.answer_next("451 4.3.0 try again later")

    first = digest_send(now=NOW)
    digest = Digest.objects.get(user=user)
    assert first.retrying == 1
    assert (digest.status, digest.attempts) == (DigestStatus.QUEUED, 1)
    assert "451" in digest.last_error
    assert NOW + timedelta(seconds=20) <= digest.next_retry_at <= NOW + timedelta(seconds=40)

    assert digest_send(now=NOW + timedelta(seconds=10)).claimed == 0  # not due yet
    assert digest_send(now=digest.next_retry_at).sent == 1
    digest.refresh_from_db()
    assert (digest.status, digest.attempts, digest.last_error) == (DigestStatus.SENT, 2, "")
    assert len(digest_mails(smtp_server)) == 1


@pytest.mark.django_db
def test_a_permanent_refusal_fails_the_digest(subscriber, smtp_server):
    user, team = subscriber()
    NotificationFactory(recipient=user, team=team, at=DAY)
    smtp_server.refuse(user.email)
    digest_build(period=Period.DAILY, now=NOW)
    report = digest_send(now=NOW)
    digest = Digest.objects.get(user=user)
    assert report.failed == 1
    assert digest.status == DigestStatus.FAILED and "550" in digest.last_error


@pytest.mark.django_db
def test_an_unconfigured_channel_is_skipped_with_the_reason(subscriber, smtp_server):
    user, team = subscriber()
    DigestTargetFactory(user=user, channel=DigestChannel.TELEGRAM, organization=team.organization)
    NotificationFactory(recipient=user, team=team, at=DAY)
    digest_build(period=Period.DAILY, now=NOW)
    report = digest_send(now=NOW)
    telegram = Digest.objects.get(user=user, channel="telegram")
    assert (report.sent, report.skipped) == (1, 1)
    assert telegram.status == DigestStatus.SKIPPED
    assert "telegram is not configured" in telegram.last_error


@pytest.mark.django_db
def test_a_telegram_digest_goes_through_the_organizations_bot(
    subscriber, smtp_server, telegram_server
):
    user, team = subscriber()
    ChannelConfigFactory(organization=team.organization, type="telegram")
    target = DigestTargetFactory(
        user=user, channel=DigestChannel.TELEGRAM, organization=team.organization
    )
    for _ in range(12):
        NotificationFactory(recipient=user, team=team, at=DAY)
    digest_build(period=Period.DAILY, now=NOW)
    report = digest_send(now=NOW)
    assert report.sent == 2
    (request,) = telegram_server.requests
    assert "/bot123456:test-bot-token/sendMessage" in request.path
    payload = request.json()
    assert payload["chat_id"] == target.address
    assert "Your daily digest: 12 updates in 1 team" in payload["text"]
    assert "…and 5 more" in payload["text"]  # the short form: 7 lines + the rest counted


@pytest.mark.django_db
def test_a_digest_whose_items_were_deleted_is_empty_not_sent(subscriber, smtp_server):
    user, team = subscriber()
    note = NotificationFactory(recipient=user, team=team, at=DAY)
    digest_build(period=Period.DAILY, now=NOW)
    note.delete()
    report = digest_send(now=NOW)
    assert report.empty == 1 and not digest_mails(smtp_server)
    assert Digest.objects.get(user=user).status == DigestStatus.EMPTY


@pytest.mark.django_db
def test_a_digest_stuck_in_sending_is_requeued_once_its_lease_runs_out(subscriber, smtp_server):
    user, team = subscriber()
    NotificationFactory(recipient=user, team=team, at=DAY)
    digest_build(period=Period.DAILY, now=NOW)
    claimed = timezone.now() - SEND.lease.duration + timedelta(minutes=1)
    Digest.objects.update(status=DigestStatus.SENDING, claim_token="gone", claimed_at=claimed)
    assert digest_send(now=NOW).sent == 0
    Digest.objects.update(claimed_at=claimed - timedelta(minutes=2))
    assert digest_send(now=NOW).sent == 1


@pytest.mark.django_db(transaction=True)
def test_two_senders_started_together_send_each_digest_once(subscriber, smtp_server):
    team = subscriber()[1]
    users = [subscriber(team=team)[0] for _ in range(199)]
    users.append(team.memberships.first().user)
    for user in users:
        NotificationFactory(recipient=user, team=team, at=DAY)
    digest_build(period=Period.DAILY, now=NOW)
    assert Digest.objects.filter(status=DigestStatus.QUEUED).count() == 200

    barrier = threading.Barrier(2)
    reports = []
    errors = []

    def sender():
        try:
            barrier.wait()
            reports.append(digest_send(now=NOW, policy=SendPolicy(batch_size=10)))
        except Exception as exc:  # surfaced by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=sender) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert not errors
    assert sorted(r.sent for r in reports) and sum(r.sent for r in reports) == 200
    assert all(r.sent > 0 for r in reports), "both senders should have taken a share"
    recipients = [m.rcpt_tos[0] for m in digest_mails(smtp_server)]
    assert len(recipients) == 200 == len(set(recipients))
    assert Digest.objects.filter(status=DigestStatus.SENT).count() == 200


@pytest.mark.django_db(transaction=True)
def test_two_send_processes_started_together_send_each_digest_once(subscriber, smtp_server):
    team = subscriber()[1]
    users = [subscriber(team=team)[0] for _ in range(199)]
    users.append(team.memberships.first().user)
    for user in users:
        NotificationFactory(recipient=user, team=team, at=DAY)
    digest_build(period=Period.DAILY, now=NOW)
    smtp_server.stall_next(0.03, times=200)  # ~6 s of sending: the processes overlap
    env = {
        **os.environ,
        "DATABASE_URL": subprocess_database_url(),
        "EMAIL_URL": f"smtp://{smtp_server.host}:{smtp_server.port}",
    }
    command = [sys.executable, "manage.py", "digests", "send", "--now", NOW.isoformat()]
    processes = [
        subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=180)[0] for p in processes]

    assert [p.returncode for p in processes] == [0, 0]
    sent = [int(re.search(r": (\d+) sent", out.splitlines()[-1]).group(1)) for out in outputs]
    assert sum(sent) == 200, sent
    assert all(n > 0 for n in sent), f"both processes should have sent some: {sent}"
    recipients = [m.rcpt_tos[0] for m in digest_mails(smtp_server)]
    assert len(recipients) == 200 == len(set(recipients))
    assert Digest.objects.filter(status=DigestStatus.SENT).count() == 200


class Exploding:
    """A channel with a bug: it raises instead of returning an Outcome (a stand-in)."""

    def send(self, message, destination):
        raise RuntimeError("channel bug")


@pytest.mark.django_db
def test_a_crashing_channel_still_records_the_digests_already_sent(
    subscriber, smtp_server, monkeypatch
):
    user, team = subscriber()
    ChannelConfigFactory(organization=team.organization, type="telegram")
    DigestTargetFactory(user=user, channel=DigestChannel.TELEGRAM, organization=team.organization)
    NotificationFactory(recipient=user, team=team, at=DAY)
    digest_build(period=Period.DAILY, now=NOW)
    monkeypatch.setattr("digests.sender.get_channel", lambda name: Exploding())

    with pytest.raises(RuntimeError, match="channel bug"):
        digest_send(now=NOW)

    assert Digest.objects.get(channel="email").status == DigestStatus.SENT
    assert Digest.objects.get(channel="telegram").status == DigestStatus.SENDING
    assert len(digest_mails(smtp_server)) == 1


@pytest.mark.django_db
def test_a_batch_that_cannot_be_prepared_is_given_back(subscriber, smtp_server, monkeypatch):
    user, team = subscriber()
    NotificationFactory(recipient=user, team=team, at=DAY)
    digest_build(period=Period.DAILY, now=NOW)

    def broken(ids):
        raise RuntimeError("cannot render")

    monkeypatch.setattr("digests.sender.prepare", broken)
    with pytest.raises(RuntimeError):
        digest_send(now=NOW)
    digest = Digest.objects.get()
    assert (digest.status, digest.attempts) == (DigestStatus.QUEUED, 0)


@pytest.mark.django_db
def test_a_telegram_secret_no_key_decrypts_fails_the_digests_where_the_admin_sees_it(
    subscriber, smtp_server, telegram_server, settings, client
):
    """``manage.py digests run`` reports it failed, the admin lists the digests as failed
    with the reason, the run's history says FAILED, and after repeated failures the
    organization's bot is turned off and its admins told — as for a delivery."""
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.NOTIFLOW_SECRETS_KEYS = [old]
    team = subscriber()[1]
    bot = ChannelConfigFactory(organization=team.organization, type="telegram")
    settings.NOTIFLOW_SECRETS_KEYS = [new]  # the old key was dropped too soon
    admin = MembershipFactory(team=team, role="admin").user
    users = [subscriber(team=team)[0] for _ in range(DISABLE_AFTER_FAILURES)]
    for user in users:
        DigestTargetFactory(
            user=user, channel=DigestChannel.TELEGRAM, organization=team.organization
        )
        NotificationFactory(recipient=user, team=team, at=DAY)

    out = io.StringIO()
    call_command("digests", "run", "--period", "daily", "--now", NOW.isoformat(), stdout=out)

    summary = out.getvalue().strip().splitlines()[-1]
    assert f"{DISABLE_AFTER_FAILURES} failed" in summary and "0 skipped" in summary, summary
    assert not telegram_server.requests
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    listed = client.get(
        "/admin/digests/digest/", {"status__exact": "failed", "channel": "telegram"}
    )
    assert listed.status_code == 200
    assert listed.context["cl"].result_count == DISABLE_AFTER_FAILURES
    one = Digest.objects.filter(channel="telegram").first()
    page = client.get(f"/admin/digests/digest/{one.pk}/change/").content.decode()
    assert "NOTIFLOW_SECRETS_KEYS" in page
    records = [r for u in users for r in executions_list(profile_id=u.pk)]
    assert {r.status for r in records} == {ExecutionStatus.FAILED}
    assert all("NOTIFLOW_SECRETS_KEYS" in r.error for r in records)
    bot.refresh_from_db()
    assert not bot.enabled and "NOTIFLOW_SECRETS_KEYS" in bot.disabled_reason
    told = Notification.objects.get(recipient=admin, title__contains="was turned off")
    assert "NOTIFLOW_SECRETS_KEYS" in told.body
