"""factory-boy factories for every model tests build."""

from __future__ import annotations

import factory
from django.contrib.auth import get_user_model

from notifications import models as n
from notifications.triggers import Kind
from workspace import models as w


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda i: f"user{i}")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.django.Password("pw-for-tests")


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = w.Organization

    name = factory.Sequence(lambda i: f"Org {i}")
    slug = factory.Sequence(lambda i: f"org-{i}")


class TeamFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = w.Team

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda i: f"Team {i}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = w.Membership

    user = factory.SubFactory(UserFactory)
    team = factory.SubFactory(TeamFactory)
    role = w.Role.MEMBER


class InsightFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = w.Insight

    team = factory.SubFactory(TeamFactory)
    name = factory.Sequence(lambda i: f"Insight {i}")
    created_by = factory.SubFactory(UserFactory)


class DashboardFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = w.Dashboard

    team = factory.SubFactory(TeamFactory)
    name = factory.Sequence(lambda i: f"Dashboard {i}")
    created_by = factory.SubFactory(UserFactory)


class TriggerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = n.Trigger
        skip_postgeneration_save = True

    team = factory.SubFactory(TeamFactory)
    owner = factory.SubFactory(UserFactory)
    name = factory.Sequence(lambda i: f"Trigger {i}")
    kind = Kind.EVENT
    config = factory.LazyFunction(lambda: {"event": "checkout_error", "filters": []})
    channels = factory.LazyFunction(lambda: [{"type": "in_app"}])
    delivery = factory.LazyFunction(lambda: {"mode": "instant"})

    @factory.post_generation
    def subscribers(self, create, extracted, **kwargs):
        if create and extracted:
            self.subscribers.set(extracted)
