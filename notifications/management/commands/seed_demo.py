"""An idempotent demo organization: two teams, several members, owned resources, triggers,
and a little history for them to show (``notifications.demo``)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone
from rest_framework.authtoken.models import Token

from notifications.demo import seed_history
from notifications.models import Trigger, trigger_revision_bump
from notifications.triggers import Kind, validate_config
from workspace.models import (
    Dashboard,
    FeatureFlag,
    Insight,
    Membership,
    Organization,
    Role,
    Team,
    UserProfile,
)

DEMO_PASSWORD = "notiflow-demo"
# username, name, timezone, {team: role}
PEOPLE = [
    ("alice", "Alice Owner", "Europe/Berlin", {"Web app": Role.OWNER, "Mobile app": Role.OWNER}),
    ("bob", "Bob Admin", "America/New_York", {"Web app": Role.ADMIN}),
    ("carol", "Carol Member", "Asia/Tokyo", {"Web app": Role.MEMBER, "Mobile app": Role.MEMBER}),
    ("dave", "Dave Member", "UTC", {"Mobile app": Role.MEMBER}),
]


class Command(BaseCommand):
    help = "Create (or refresh) the demo organization and print the demo logins."

    @transaction.atomic
    def handle(self, *args, **options):
        org, _ = Organization.objects.get_or_create(
            slug="hedgehog", defaults={"name": "Hedgehog Analytics"}
        )
        teams = {
            name: Team.objects.get_or_create(organization=org, name=name)[0]
            for name in ("Web app", "Mobile app")
        }
        users = {}
        User = get_user_model()
        for username, full_name, tz, roles in PEOPLE:
            first, last = full_name.split(" ", 1)
            user, created = User.objects.get_or_create(
                username=username,
                defaults={
                    "first_name": first,
                    "last_name": last,
                    "email": f"{username}@example.com",
                },
            )
            if created:
                user.set_password(DEMO_PASSWORD)
                user.is_staff = username == "alice"
                user.is_superuser = username == "alice"
                user.save()
            UserProfile.objects.get_or_create(user=user, defaults={"timezone": tz})
            for team_name, role in roles.items():
                Membership.objects.get_or_create(
                    user=user, team=teams[team_name], defaults={"role": role}
                )
            users[username] = user

        web, mobile = teams["Web app"], teams["Mobile app"]
        revenue, _ = Dashboard.objects.get_or_create(
            team=web, name="Revenue", defaults={"created_by": users["alice"]}
        )
        Insight.objects.get_or_create(
            team=web,
            name="Checkout conversion",
            defaults={"created_by": users["carol"], "dashboard": revenue, "last_value": 0.31},
        )
        Insight.objects.get_or_create(
            team=web, name="Daily signups", defaults={"created_by": users["bob"], "last_value": 420}
        )
        FeatureFlag.objects.get_or_create(
            team=web,
            key="new-checkout",
            defaults={"name": "New checkout", "created_by": users["bob"]},
        )
        Dashboard.objects.get_or_create(
            team=mobile, name="App health", defaults={"created_by": users["dave"]}
        )

        self._trigger(
            web,
            users["alice"],
            "Expensive checkout errors",
            Kind.EVENT,
            {
                "event": "checkout_error",
                "filters": [{"property": "amount", "operator": "gt", "value": 100}],
            },
            subscribers=[users["alice"], users["bob"]],
            delivery={"mode": "rollup", "window_seconds": 60},
        )
        self._trigger(
            web,
            users["bob"],
            "Signup spike",
            Kind.EVENT_COUNT,
            {"event": "user_signed_up", "count": 50, "window_minutes": 10},
            subscribers=[users["bob"]],
            delivery={"mode": "instant"},
        )
        self._trigger(
            mobile,
            users["dave"],
            "App crash",
            Kind.EVENT,
            {
                "event": "app_crash",
                "filters": [{"property": "os", "operator": "in", "value": ["ios", "android"]}],
            },
            subscribers=[users["dave"], users["carol"]],
            delivery={"mode": "instant"},
        )

        edits, events = seed_history(teams=teams, users=users, now=timezone.now())
        if edits or events:
            self.stdout.write(
                f"Demo history: {edits} edits by colleagues and {events} events queued; the "
                "consumer turns them into notifications once it runs."
            )
        self.stdout.write(self.style.SUCCESS(f"Demo organization '{org.name}' is ready."))
        self.stdout.write(f"Log in at /accounts/login/ with password '{DEMO_PASSWORD}' as:")
        for username, full_name, _tz, roles in PEOPLE:
            token, _ = Token.objects.get_or_create(user=users[username])
            where = ", ".join(f"{team} ({role})" for team, role in roles.items())
            self.stdout.write(f"  {username:<6} {full_name:<13} {where}  API token: {token.key}")

    def _trigger(self, team, owner, name, kind, config, *, subscribers, delivery):
        trigger_revision_bump()  # before update_or_create locks the trigger's row
        trigger, _ = Trigger.objects.update_or_create(
            team=team,
            name=name,
            defaults={
                "owner": owner,
                "kind": kind,
                "config": validate_config(kind, config),
                "channels": [{"type": "in_app"}],
                "delivery": delivery,
            },
        )
        trigger.subscribers.set(subscribers)
