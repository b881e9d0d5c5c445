"""The in-app pages: notification center, triggers and preferences.

Views render the first screen on the server (so the badge, the list and the forms show
without waiting for JavaScript) and leave every write to the JSON API, which the scripts in
``static/frontend/`` call with the session cookie and the CSRF token. Tenant scoping is the
one of :func:`workspace.models.teams_of`; nothing here reads another team's rows.
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.apps import apps
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.csrf import csrf_exempt

from notifications.attention import held_summary
from notifications.channels import in_app, registry
from notifications.checks import DEFAULT_INTERVAL
from notifications.models import Category, Notification, Preference, Trigger
from notifications.services import (
    CRITICAL_CHOICES,
    notification_dnd_state,
    notification_unread_count,
    notification_visible,
    trigger_values,
)
from notifications.triggers import (
    ACTIVITY_ACTIONS,
    OPERATOR_LABELS,
    form_sections,
    kind_choices,
    scheduled_kinds,
)
from notifications.unsubscribe import preference_unsubscribe
from workspace.models import UserProfile, teams_of, zone_in_effect
from workspace.resources import RESOURCE_TYPES

PAGE_SIZE = 50

COMMON_TIMEZONES = (
    "UTC",
    "Europe/London",
    "Europe/Dublin",
    "Europe/Lisbon",
    "Europe/Paris",
    "Europe/Berlin",
    "Europe/Madrid",
    "Europe/Amsterdam",
    "Europe/Stockholm",
    "Europe/Warsaw",
    "Europe/Athens",
    "Europe/Helsinki",
    "Europe/Istanbul",
    "Europe/Moscow",
    "Africa/Cairo",
    "Africa/Lagos",
    "Africa/Johannesburg",
    "Asia/Dubai",
    "Asia/Karachi",
    "Asia/Kolkata",
    "Asia/Dhaka",
    "Asia/Bangkok",
    "Asia/Singapore",
    "Asia/Shanghai",
    "Asia/Hong_Kong",
    "Asia/Seoul",
    "Asia/Tokyo",
    "Australia/Perth",
    "Australia/Sydney",
    "Pacific/Auckland",
    "Pacific/Honolulu",
    "America/Anchorage",
    "America/Los_Angeles",
    "America/Denver",
    "America/Chicago",
    "America/New_York",
    "America/Toronto",
    "America/Mexico_City",
    "America/Bogota",
    "America/Sao_Paulo",
    "America/Argentina/Buenos_Aires",
)


def _page(request, template: str, context: dict, *, nav: str = "", status: int = 200):
    """Render a page of the app: every page shows the bell with the caller's unread count."""
    context = {
        "nav": nav,
        "unread_count": notification_unread_count(user=request.user),
        "dnd": notification_dnd_state(
            user=request.user,
            preference=Preference.objects.filter(user=request.user).first(),
            now=timezone.now(),
        ),
        "user_tz": context.get("user_tz") or _user_timezone(request.user),
        **context,
    }
    return render(request, template, context, status=status)


def _user_timezone(user) -> zoneinfo.ZoneInfo:
    name = UserProfile.objects.filter(user=user).values_list("timezone", flat=True).first()
    return zoneinfo.ZoneInfo(zone_in_effect(name))


# --- notification center ----------------------------------------------------------------


@dataclass(frozen=True)
class Day:
    label: str
    day: date
    notifications: list[Notification]


def day_label(day: date, today: date) -> str:
    """ "Today", "Yesterday", a weekday within the week, then a date (with the year when it
    is not this year's)."""
    if day == today:
        return "Today"
    if day == today - timedelta(days=1):
        return "Yesterday"
    if today - day < timedelta(days=7):
        return day.strftime("%A")
    if day.year == today.year:
        return f"{day:%A}, {day.day} {day:%B}"
    return f"{day.day} {day:%B %Y}"


def group_by_day(notifications, *, tz: zoneinfo.ZoneInfo, now: datetime) -> list[Day]:
    """Consecutive notifications (newest first) grouped by their local calendar day."""
    today = now.astimezone(tz).date()
    days: list[Day] = []
    for notification in notifications:
        day = notification.last_seen_at.astimezone(tz).date()
        if not days or days[-1].day != day:
            days.append(Day(label=day_label(day, today), day=day, notifications=[]))
        days[-1].notifications.append(notification)
    return days


def _int_param(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


@login_required
def notification_center(request):
    """The inbox, newest first, grouped by day; ``?team=``, ``?unread=true`` filter it and
    ``?before=<iso>&before_id=<id>`` pages back (keyset, so it stays cheap at any depth)."""
    teams = list(teams_of(request.user).select_related("organization").order_by("name"))
    team_id = _int_param(request.GET.get("team"))
    if team_id is not None and team_id not in {team.id for team in teams}:
        team_id = None
    unread_only = request.GET.get("unread") == "true"

    inbox = notification_visible(user=request.user)
    if team_id is not None:
        inbox = inbox.filter(team_id=team_id)
    if unread_only:
        inbox = inbox.filter(read_at__isnull=True)
    before = parse_datetime(request.GET.get("before", ""))
    before_id = _int_param(request.GET.get("before_id"))
    if before is not None and before_id is not None:
        inbox = inbox.filter(last_seen_at__lte=before).exclude(
            last_seen_at=before, id__gte=before_id
        )
    rows = list(inbox.select_related("team").order_by("-last_seen_at", "-id")[: PAGE_SIZE + 1])
    older = None
    if len(rows) > PAGE_SIZE:
        rows = rows[:PAGE_SIZE]
        params = request.GET.copy()
        params["before"] = rows[-1].last_seen_at.isoformat()
        params["before_id"] = str(rows[-1].id)
        older = params.urlencode()

    tz = _user_timezone(request.user)
    return _page(
        request,
        "frontend/notification_center.html",
        {
            "days": group_by_day(rows, tz=tz, now=timezone.now()),
            "held": held_summary(user_id=request.user.pk, now=timezone.now()),
            "teams": teams,
            "team_id": team_id,
            "unread_only": unread_only,
            "filtered": team_id is not None or unread_only,
            "paged": before is not None,
            "older": older,
            "user_tz": tz,
        },
        nav="notifications",
    )


# --- triggers ---------------------------------------------------------------------------


def delivery_summary(delivery: dict) -> str:
    mode = (delivery or {}).get("mode", "instant")
    if mode == "rollup":
        seconds = delivery.get("window_seconds")
        return f"Roll-up every {_duration(seconds)}" if seconds else "Roll-up"
    return {"instant": "Instant", "digest": "Digest only"}.get(mode, mode)


def _duration(seconds: int) -> str:
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"


@login_required
def trigger_list(request):
    triggers = (
        Trigger.objects.filter(team__in=teams_of(request.user))
        .select_related("team", "owner")
        .order_by("team__name", "name", "id")
    )
    now = timezone.now()
    rows = [
        {
            "trigger": trigger,
            "delivery": delivery_summary(trigger.delivery),
            "channels": ", ".join(
                registry.label(c.get("type", ""))
                for c in trigger.channels or [{"type": in_app.TYPE}]
            ),
            "snoozed": trigger.snoozed_until is not None and trigger.snoozed_until > now,
        }
        for trigger in triggers
    ]
    return _page(request, "frontend/trigger_list.html", {"rows": rows}, nav="triggers")


def _resource_rows(model_label: str, team_ids: list[int]) -> list[dict]:
    """The rows a ``resource`` field of a kind offers: the caller's teams' rows of that
    model, by name (the page shows those of the chosen team)."""
    if not model_label:
        return []
    rows = apps.get_model(model_label).objects.filter(team_id__in=team_ids)
    return list(rows.order_by("name").values("id", "name", "team_id"))


def _trigger_form(request, trigger: Trigger | None):
    teams = list(teams_of(request.user).order_by("name"))
    team_ids = [team.id for team in teams]
    sections = [
        {
            "name": section.name,
            "legend": section.legend,
            "kinds": " ".join(kinds),
            "fields": [
                {"field": field, "rows": _resource_rows(field.resource, team_ids)}
                for field in section.fields
            ],
        }
        for section, kinds in form_sections()
    ]
    initial = trigger_values(trigger=trigger) if trigger else None
    return _page(
        request,
        "frontend/trigger_form.html",
        {
            "trigger": trigger,
            "initial": initial,
            "teams": teams,
            "kinds": kind_choices(),
            "sections": sections,
            "scheduled_kinds": " ".join(scheduled_kinds()),
            "channels": registry.CHOICES,
            "channel_targets": {
                d.type: {"label": d.target.label, "placeholder": d.target.placeholder}
                if d.target
                else None
                for d in registry.DECLARATIONS
            },
            "operators": [(op.value, menu) for op, (menu, _) in OPERATOR_LABELS.items()],
            "actions": ACTIVITY_ACTIONS,
            "resource_types": [(kind, names.heading) for kind, names in RESOURCE_TYPES.items()],
            "created": request.GET.get("created") == "1",
            "default_interval_minutes": int(DEFAULT_INTERVAL.total_seconds() // 60),
        },
        nav="triggers",
    )


@login_required
def trigger_new(request):
    return _trigger_form(request, None)


@login_required
def trigger_edit(request, trigger_id: int):
    trigger = (
        Trigger.objects.filter(team__in=teams_of(request.user), pk=trigger_id)
        .prefetch_related("subscribers")
        .first()
    )
    if trigger is None:
        raise Http404("No such trigger in your teams.")
    return _trigger_form(request, trigger)


# --- preferences ------------------------------------------------------------------------


def unsubscribed_message(value: str) -> str | None:
    """``alert:email`` → "You're unsubscribed from alert emails." (None if malformed)."""
    category, _, channel = value.partition(":")
    declaration = registry.find(channel)
    if not category or declaration is None:
        return None
    label = category.replace("-", " ").replace("_", " ")
    return f"You're unsubscribed from {label} {declaration.noun}."


@login_required
def preferences(request):
    current = str(_user_timezone(request.user))
    zones = list(COMMON_TIMEZONES)
    if current not in zones:
        zones.insert(0, current)
    return _page(
        request,
        "frontend/preferences.html",
        {
            "unsubscribed": unsubscribed_message(request.GET.get("unsubscribed", "")),
            "categories": Category.choices,
            "channels": registry.CHOICES,
            "personal_channels": [
                d.type for d in registry.DECLARATIONS if d.to_people and not d.org_level
            ],
            "timezones": zones,
            "current_timezone": current,
            "hours": [(h, f"{h:02d}:00") for h in range(24)],
            "teams": teams_of(request.user).order_by("name"),
            "critical_choices": [
                (value, label) for value, label in Category.choices if value in CRITICAL_CHOICES
            ],
        },
        nav="preferences",
    )


# --- unsubscribe ------------------------------------------------------------------------


@csrf_exempt
def unsubscribe(request, token):
    """The email footer's link (GET) and RFC 8058 one-click (POST): applied without login."""
    applied = preference_unsubscribe(token=token)
    if applied is None:
        return render(request, "frontend/unsubscribe.html", {"invalid": True}, status=400)
    if request.method == "POST":
        return HttpResponse("unsubscribed", content_type="text/plain")
    if request.user.is_authenticated and request.user.pk == applied.user_id:
        return redirect(f"/preferences/?unsubscribed={applied.category}:{applied.channel}")
    return render(request, "frontend/unsubscribe.html", {"applied": applied})
