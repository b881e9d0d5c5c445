"""Factories for the resources the weekly digest reports on.

``created_at`` is ``auto_now_add`` on every resource, so these factories accept a
``created_at`` and write it after the insert: digest tests need items inside (and outside)
a pinned window, not "now".
"""

from __future__ import annotations

import factory

from notifications import models as n
from tests.factories import DashboardFactory, TeamFactory, UserFactory
from workspace import models as w


class _Backdated(factory.django.DjangoModelFactory):
    class Meta:
        abstract = True
        skip_postgeneration_save = True

    @factory.post_generation
    def created_at(self, create, extracted, **kwargs):
        if create and extracted is not None:
            type(self).objects.filter(pk=self.pk).update(created_at=extracted)
            self.created_at = extracted


class BackdatedDashboardFactory(_Backdated, DashboardFactory):
    class Meta:
        model = w.Dashboard


class EventDefinitionFactory(_Backdated):
    class Meta:
        model = w.EventDefinition

    team = factory.SubFactory(TeamFactory)
    name = factory.Sequence(lambda i: f"event_{i}")
    volume_30_day = 10


class FeatureFlagFactory(_Backdated):
    class Meta:
        model = w.FeatureFlag

    team = factory.SubFactory(TeamFactory)
    name = factory.Sequence(lambda i: f"Flag {i}")
    key = factory.Sequence(lambda i: f"flag-{i}")
    created_by = factory.SubFactory(UserFactory)


class ExperimentFactory(_Backdated):
    class Meta:
        model = w.Experiment

    team = factory.SubFactory(TeamFactory)
    name = factory.Sequence(lambda i: f"Experiment {i}")
    status = w.Experiment.Status.RUNNING
    created_by = factory.SubFactory(UserFactory)


class SurveyFactory(_Backdated):
    class Meta:
        model = w.Survey

    team = factory.SubFactory(TeamFactory)
    name = factory.Sequence(lambda i: f"Survey {i}")
    status = w.Survey.Status.LAUNCHED


class CohortFactory(_Backdated):
    class Meta:
        model = w.Cohort

    team = factory.SubFactory(TeamFactory)
    name = factory.Sequence(lambda i: f"Cohort {i}")
    count = 42


class PreferenceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = n.Preference
        django_get_or_create = ("user",)
        skip_postgeneration_save = True

    user = factory.SubFactory(UserFactory)

    @factory.post_generation
    def muted_teams(self, create, extracted, **kwargs):
        if create and extracted:
            self.muted_teams.set(extracted)
