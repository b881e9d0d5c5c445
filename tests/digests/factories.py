"""Factories for the digest tests: notifications, preferences, profiles, deliveries, digests."""

from __future__ import annotations

from datetime import UTC, datetime

import factory

from digests import models as d
from notifications import models as n
from notifications.channels import email, telegram
from notifications.secrets import encrypt
from tests.factories import OrganizationFactory, TeamFactory, UserFactory
from workspace import models as w


class UserProfileFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = w.UserProfile
        django_get_or_create = ("user",)

    user = factory.SubFactory(UserFactory)
    timezone = "UTC"


class PreferenceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = n.Preference
        django_get_or_create = ("user",)

    user = factory.SubFactory(UserFactory)
    digest_cadence = n.DigestCadence.DAILY
    digest_hour = 9


class NotificationFactory(factory.django.DjangoModelFactory):
    """``created_at`` (when it landed in the inbox, what digest windows go by) is set with
    ``at=``; it defaults to the time of the test."""

    class Meta:
        model = n.Notification
        skip_postgeneration_save = True

    recipient = factory.SubFactory(UserFactory)
    team = factory.SubFactory(TeamFactory)
    category = n.Category.ACTIVITY
    title = factory.Sequence(lambda i: f"Someone edited dashboard “Dashboard {i}”")
    url = factory.Sequence(lambda i: f"http://127.0.0.1:8000/api/dashboards/{i}/")
    event_name = "activity.dashboard.updated"
    dedup_key = factory.Sequence(lambda i: f"test-notification-{i}")
    first_seen_at = factory.LazyFunction(lambda: datetime.now(UTC))
    last_seen_at = factory.LazyAttribute(lambda o: o.first_seen_at)

    @factory.post_generation
    def at(self, create, extracted, **kwargs):
        if create and extracted is not None:
            n.Notification.objects.filter(pk=self.pk).update(
                created_at=extracted, first_seen_at=extracted, last_seen_at=extracted
            )
            self.created_at = self.first_seen_at = self.last_seen_at = extracted


class DeliveryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = n.Delivery

    idempotency_key = factory.Sequence(lambda i: f"test-delivery-{i}")
    channel = email.TYPE
    destination = factory.LazyAttribute(lambda o: o.notification.recipient.email)
    team = factory.LazyAttribute(lambda o: o.notification.team)
    recipient = factory.LazyAttribute(lambda o: o.notification.recipient)
    notification = factory.SubFactory(NotificationFactory)
    status = n.DeliveryStatus.SENT


class ChannelConfigFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = n.ChannelConfig

    organization = factory.SubFactory(OrganizationFactory)
    type = telegram.TYPE
    name = factory.Sequence(lambda i: f"Bot {i}")
    secret_encrypted = factory.LazyFunction(lambda: encrypt("123456:test-bot-token"))


class DigestTargetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = d.DigestTarget

    user = factory.SubFactory(UserFactory)
    channel = d.DigestChannel.TELEGRAM
    organization = factory.SubFactory(OrganizationFactory)
    address = factory.Sequence(lambda i: f"{100000 + i}")
