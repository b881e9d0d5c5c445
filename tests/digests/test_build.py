"""Build phase: which notifications go in, one digest per key, empty windows recorded."""

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command

from digests.builder import digest_build
from digests.models import Digest, DigestChannel, DigestItem, DigestStatus
from digests.windows import Period
from notifications.models import Preference
from tests.digests.factories import DeliveryFactory, DigestTargetFactory, NotificationFactory
from tests.factories import MembershipFactory, TeamFactory, UserFactory

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]

DAY = datetime(2026, 3, 29, 12, tzinfo=UTC)  # inside the UTC daily window of 29 March
NOW = datetime(2026, 3, 30, 9, 30, tzinfo=UTC)  # that digest is due (09:00 UTC)


def included(user, channel="email"):
    digest = Digest.objects.get(user=user, channel=channel)
    return set(digest.items.values_list("notification_id", flat=True))


def test_three_notifications_in_a_day_make_one_digest_with_three_items(subscriber):
    user, team = subscriber()
    notes = [
        NotificationFactory(recipient=user, team=team, at=DAY + timedelta(hours=i))
        for i in range(3)
    ]

    report = digest_build(period=Period.DAILY, now=NOW)

    digest = Digest.objects.get(user=user)
    assert digest.status == DigestStatus.QUEUED
    assert digest.item_count == 3
    assert digest.digest_key == f"{user.pk}:email:daily:2026-03-29T00:00:00Z"
    assert (digest.window_start, digest.window_end) == (
        datetime(2026, 3, 29, tzinfo=UTC),
        datetime(2026, 3, 30, tzinfo=UTC),
    )
    assert included(user) == {n.pk for n in notes}
    assert (report.users, report.created, report.items) == (1, 1, 3)


def test_building_again_adds_nothing(subscriber):
    user, team = subscriber()
    NotificationFactory(recipient=user, team=team, at=DAY)
    digest_build(period=Period.DAILY, now=NOW)
    again = digest_build(period=Period.DAILY, now=NOW + timedelta(minutes=5))
    assert (again.created, again.items) == (0, 0)
    assert Digest.objects.count() == 1 and DigestItem.objects.count() == 1


def test_read_archived_snoozed_personal_direct_and_foreign_notifications_are_left_out(
    subscriber,
):
    user, team = subscriber()
    keep = NotificationFactory(recipient=user, team=team, at=DAY)
    NotificationFactory(recipient=user, team=team, at=DAY, read_at=DAY)
    NotificationFactory(recipient=user, team=team, at=DAY, archived_at=DAY)
    NotificationFactory(recipient=user, team=team, at=DAY, category="personal-direct")
    NotificationFactory(recipient=user, team=team, at=DAY, snoozed_until=NOW + timedelta(hours=1))
    woke = NotificationFactory(recipient=user, team=team, at=DAY, snoozed_until=NOW)
    NotificationFactory(team=team, at=DAY)  # someone else's
    NotificationFactory(recipient=user, team=team, at=DAY - timedelta(days=2))  # long ago
    NotificationFactory(recipient=user, team=team, at=DAY + timedelta(days=1))  # not over yet

    digest_build(period=Period.DAILY, now=NOW)

    assert included(user) == {keep.pk, woke.pk}


def test_already_emailed_notifications_are_left_out_of_the_email_digest_only(subscriber):
    user, team = subscriber()
    emailed = NotificationFactory(recipient=user, team=team, at=DAY)
    queued_mail = NotificationFactory(recipient=user, team=team, at=DAY)
    DeliveryFactory(notification=emailed, channel="email", status="sent")
    DeliveryFactory(notification=queued_mail, channel="email", status="failed")
    DigestTargetFactory(user=user, channel=DigestChannel.TELEGRAM, organization=team.organization)

    digest_build(period=Period.DAILY, now=NOW)

    assert included(user, "email") == {queued_mail.pk}
    assert included(user, "telegram") == {emailed.pk, queued_mail.pk}


def test_a_notification_in_a_sent_digest_is_not_sent_again_after_a_timezone_change(subscriber):
    user, team = subscriber(tz="UTC")
    note = NotificationFactory(recipient=user, team=team, at=DAY)
    digest_build(period=Period.DAILY, now=NOW)
    Digest.objects.update(status=DigestStatus.SENT)

    user.profile.timezone = "Pacific/Auckland"  # a different window holds the same instant
    user.profile.save()
    digest_build(period=Period.DAILY, now=datetime(2026, 3, 30, 20, 30, tzinfo=UTC))

    newer = Digest.objects.exclude(status=DigestStatus.SENT).get()
    assert newer.window_start != Digest.objects.get(status=DigestStatus.SENT).window_start
    assert newer.status == DigestStatus.EMPTY
    assert not newer.items.filter(notification=note).exists()


def test_only_teams_the_user_still_belongs_to_and_has_not_muted(subscriber):
    user, team = subscriber()
    left = TeamFactory()
    muted = TeamFactory()
    MembershipFactory(user=user, team=muted)
    user.notification_preference.muted_teams.add(muted)
    keep = NotificationFactory(recipient=user, team=team, at=DAY)
    NotificationFactory(recipient=user, team=left, at=DAY)
    NotificationFactory(recipient=user, team=muted, at=DAY)

    digest_build(period=Period.DAILY, now=NOW)

    assert included(user) == {keep.pk}


def test_a_category_switched_off_for_email_stays_out_of_the_email_digest(subscriber):
    user, team = subscriber()
    Preference.objects.filter(user=user).update(channels={"alert": {"email": False}})
    keep = NotificationFactory(recipient=user, team=team, at=DAY, category="activity")
    NotificationFactory(recipient=user, team=team, at=DAY, category="alert")
    digest_build(period=Period.DAILY, now=NOW)
    assert included(user) == {keep.pk}


def test_a_user_with_nothing_gets_an_empty_digest_on_record(subscriber):
    user, _ = subscriber()
    report = digest_build(period=Period.DAILY, now=NOW)
    digest = Digest.objects.get(user=user)
    assert digest.status == DigestStatus.EMPTY
    assert digest.item_count == 0
    assert (report.created, report.empty, report.queued) == (1, 1, [])


def test_off_cadence_other_periods_and_switched_off_channels_build_nothing(subscriber):
    off, team = subscriber(cadence="off")
    weekly, _ = subscriber(cadence="weekly", team=team)
    unsubscribed, _ = subscriber(team=team)
    Preference.objects.filter(user=unsubscribed).update(channels={"digest": {"email": False}})
    no_address, _ = subscriber(team=team, email="")
    for user in (off, weekly, unsubscribed, no_address):
        NotificationFactory(recipient=user, team=team, at=DAY)

    digest_build(period=Period.DAILY, now=NOW)

    assert not Digest.objects.exists()


def test_users_without_preferences_get_the_default_daily_digest(db):
    user = UserFactory()
    team = TeamFactory()
    MembershipFactory(user=user, team=team)
    NotificationFactory(recipient=user, team=team, at=DAY)
    digest_build(period=Period.DAILY, now=NOW)
    assert Digest.objects.get(user=user).item_count == 1


def test_windows_follow_each_users_timezone_and_hour(subscriber):
    auckland, team = subscriber(tz="Pacific/Auckland", hour=7)
    los_angeles, _ = subscriber(tz="America/Los_Angeles", hour=7, team=team)
    # 29 March 2026 12:00 UTC is 30 March 01:00 in Auckland and 29 March 05:00 in LA.
    for user in (auckland, los_angeles):
        NotificationFactory(recipient=user, team=team, at=DAY)

    # 31 March 07:00 in Auckland (30 March 18:00 UTC): its 30 March digest is due.
    digest_build(period=Period.DAILY, now=datetime(2026, 3, 30, 18, 0, tzinfo=UTC))
    auckland_digest = Digest.objects.get(user=auckland)
    assert auckland_digest.window_start == datetime(2026, 3, 29, 11, tzinfo=UTC)
    assert auckland_digest.item_count == 1
    # In LA it is 30 March 11:00: the due digest is 29 March's, from PDT midnight.
    la_digest = Digest.objects.get(user=los_angeles)
    assert la_digest.window_start == datetime(2026, 3, 29, 7, tzinfo=UTC)
    assert la_digest.item_count == 1


def test_dry_run_build_writes_nothing(subscriber):
    user, team = subscriber()
    NotificationFactory(recipient=user, team=team, at=DAY)
    report = digest_build(period=Period.DAILY, now=NOW, dry_run=True)
    assert (report.created, report.items, len(report.queued)) == (1, 1, 1)
    assert not Digest.objects.exists()


HOUR_DUE = datetime(2026, 3, 30, 11, 0, 30, tzinfo=UTC)  # the 10:00–11:00 digest is due


def run_hourly(now):
    call_command(
        "digests", "run", "--period", "hourly", "--now", now.isoformat(), stdout=StringIO()
    )


@pytest.mark.integration
def test_a_notification_committed_after_its_windows_build_goes_in_the_next_digest(
    subscriber, smtp_server
):
    """The inbox stamps ``created_at`` when the row is written; it becomes visible when its
    transaction commits, which can be after the build of the window it is stamped in."""
    user, team = subscriber(cadence="hourly")
    early = NotificationFactory(recipient=user, team=team, at=HOUR_DUE - timedelta(minutes=30))
    run_hourly(HOUR_DUE)
    late = NotificationFactory(recipient=user, team=team, at=HOUR_DUE - timedelta(seconds=31))
    run_hourly(HOUR_DUE + timedelta(minutes=1))  # the same window is still the due one
    run_hourly(HOUR_DUE + timedelta(hours=1))

    first, second = Digest.objects.filter(user=user).order_by("window_start")
    assert (first.status, second.status) == (DigestStatus.SENT, DigestStatus.SENT)
    assert included_in(first) == {early.pk}
    assert included_in(second) == {late.pk}
    assert len(smtp_server.messages) == 2


def included_in(digest):
    return set(digest.items.values_list("notification_id", flat=True))
