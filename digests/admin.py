"""Digests in the admin, and the "dry-run the digest now" action on users and digests.

The action runs :func:`digests.runs.digest_run` with ``dry_run=True`` for the selected
users only and shows what each would get — subject, text and HTML — or why nothing would
go out. Nothing is sent and nothing is written (no digest rows, no execution history).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.template.defaultfilters import pluralize
from django.template.response import TemplateResponse
from django.utils import timezone

from digests import models
from digests.builder import OPEN_STATUSES, Recipient, recipients
from digests.render import plain_text
from digests.runs import digest_run
from digests.windows import Period, due_window

User = get_user_model()


@dataclass(frozen=True)
class Preview:
    """One digest a run would send now, as the admin page shows it."""

    channel: str
    heading: str
    subject: str
    text: str
    html: str


@dataclass
class UserDryRun:
    user: Any
    previews: list[Preview] = field(default_factory=list)
    reason: str = ""  # why nothing would be sent, when ``previews`` is empty


def digest_dry_run(*, user_ids: Iterable[int], now: datetime) -> list[UserDryRun]:
    """What a digest run at ``now`` would send each of these users, rendered; writes
    nothing. A few queries per period, plus one per user with nothing to send."""
    users = list(User.objects.filter(pk__in=list(user_ids)).order_by(User.USERNAME_FIELD))
    ids = [u.pk for u in users]
    found = {r.user_id: r for period in Period for r in recipients(period, user_ids=ids)}
    by_period: dict[Period, list[int]] = defaultdict(list)
    for recipient in found.values():
        if recipient.digest_channels():
            by_period[recipient.period].append(recipient.user_id)
    previews: dict[int, list[Preview]] = defaultdict(list)
    for period, period_ids in by_period.items():
        summary = digest_run(period=period, now=now, dry_run=True, user_ids=period_ids)
        for rendered in summary.rendered:
            if rendered.message is None:
                continue
            window, count = rendered.window, rendered.view.item_count
            previews[rendered.user_id].append(
                Preview(
                    channel=rendered.channel,
                    heading=f"{window.period} {window.label()} ({window.tz}) · "
                    f"{count} item{pluralize(count)}",
                    subject=rendered.message.title,
                    text=plain_text(rendered.message),
                    html=rendered.message.html,
                )
            )
        for prepared, text in summary.previews:
            assert prepared.message is not None  # digest_run keeps only those with one
            where = prepared.destination.address if prepared.destination else ""
            previews[prepared.user_id].append(
                Preview(
                    channel=prepared.channel,
                    heading=f"queued earlier, due now · to {where or prepared.skip_reason}",
                    subject=prepared.message.title,
                    text=text,
                    html=prepared.message.html,
                )
            )
    return [
        UserDryRun(
            user=user,
            previews=previews[user.pk],
            reason="" if previews[user.pk] else _why_nothing(user, found.get(user.pk), now),
        )
        for user in users
    ]


def _why_nothing(user, recipient: Recipient | None, now: datetime) -> str:
    if not user.is_active:
        return "the account is inactive."
    if recipient is None:
        return "digests are switched off in this user's preferences."
    if not recipient.digest_channels():
        return (
            "no channel to send it on (no email address and no Slack or Telegram target, "
            "or the digest is switched off on every channel)."
        )
    window = due_window(recipient.period, now, recipient.timezone, recipient.digest_hour)
    done = sorted(
        set(
            models.Digest.objects.filter(
                user_id=user.pk, period=recipient.period, window_start=window.start
            )
            .exclude(status__in=OPEN_STATUSES)
            .values_list("status", flat=True)
        )
    )
    about = f"the {recipient.period} window {window.label()} ({window.tz})"
    if done:
        return f"the digest for {about} is already {' / '.join(done)}."
    return f"nothing new for {about}: no unread notifications that belong in a digest."


def dry_run_response(modeladmin: admin.ModelAdmin, request, user_ids: Iterable[int]):
    """The action's intermediate page, in the admin's own layout."""
    now = timezone.now()
    context = {
        **modeladmin.admin_site.each_context(request),
        "opts": modeladmin.model._meta,
        "title": "Digest dry run",
        "now": now,
        "runs": digest_dry_run(user_ids=user_ids, now=now),
    }
    return TemplateResponse(request, "admin/digests/dry_run.html", context)


DRY_RUN_DESCRIPTION = "Dry-run the digest now and show it (nothing is sent)"


class DigestItemInline(admin.TabularInline):
    model = models.DigestItem
    extra = 0
    raw_id_fields = ["notification"]
    readonly_fields = ["created_at"]


@admin.register(models.Digest)
class DigestAdmin(admin.ModelAdmin):
    list_display = [
        "digest_key",
        "user",
        "channel",
        "period",
        "window_start",
        "status",
        "item_count",
        "attempts",
        "sent_at",
    ]
    list_filter = ["status", "channel", "period"]
    search_fields = ["digest_key", "user__username", "user__email"]
    list_select_related = ["user"]
    raw_id_fields = ["user"]
    readonly_fields = ["digest_key", "created_at", "updated_at", "provider_id"]
    inlines = [DigestItemInline]
    actions = ["dry_run_now"]

    @admin.action(description=f"{DRY_RUN_DESCRIPTION}, for these digests' users")
    def dry_run_now(self, request, queryset):
        return dry_run_response(self, request, queryset.values_list("user_id", flat=True))


@admin.register(models.DigestTarget)
class DigestTargetAdmin(admin.ModelAdmin):
    list_display = ["user", "channel", "organization", "address", "enabled"]
    list_filter = ["channel", "enabled"]
    search_fields = ["user__username", "address"]
    raw_id_fields = ["user"]


admin.site.unregister(User)


@admin.register(User)
class DigestUserAdmin(UserAdmin):
    """Django's user admin, plus the digest dry run."""

    actions = ["dry_run_now"]

    @admin.action(description=DRY_RUN_DESCRIPTION)
    def dry_run_now(self, request, queryset):
        return dry_run_response(self, request, queryset.values_list("pk", flat=True))
