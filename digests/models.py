"""Per-user digests: one row per (user, channel, period, window), the notifications it holds,
and where a user's Slack or Telegram digest goes.

``Digest.digest_key`` is unique, so building a window twice finds the row already there;
``DigestItem`` is unique per (digest, notification), so adding items twice adds nothing.
The send phase moves a digest ``queued`` → ``sending`` → ``sent`` | ``failed`` | ``skipped``
(see ``sender.py``); a window with nothing to report is kept as ``empty``. A ``sending``
digest is held by a lease: ``claim_token`` says which claim holds it and ``claimed_at``
(real time, never a run's ``--now``) when that claim was taken or last renewed.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from digests.windows import Period
from notifications.models import Category

# ``Preference.channels["digest"][channel] = False`` switches a user's digest on that channel
# off (what the one-click unsubscribe link in a digest writes). Anything unset is on.
DIGEST_PREFERENCE = Category.DIGEST
# Notifications of this category have their own instant path and never go in a digest.
PERSONAL_DIRECT = Category.PERSONAL_DIRECT


class DigestChannel(models.TextChoices):
    EMAIL = "email", "Email"
    SLACK = "slack", "Slack DM"
    TELEGRAM = "telegram", "Telegram"


class DigestStatus(models.TextChoices):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"
    EMPTY = "empty"


def digest_key(*, user_id: int, channel: str, period: str, window_start) -> str:
    """``user:channel:period:window_start`` — the one spelling of a digest's identity.
    ``window_start`` is UTC, so a user's two repeated 02:00 hours are two keys."""
    return f"{user_id}:{channel}:{period}:{window_start.strftime('%Y-%m-%dT%H:%M:%SZ')}"


class Digest(models.Model):
    digest_key = models.CharField(max_length=200, unique=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="digests"
    )
    channel = models.CharField(max_length=16, choices=DigestChannel.choices)
    period = models.CharField(max_length=16, choices=[(p.value, p.value) for p in Period])
    window_start = models.DateTimeField(help_text="UTC; local midnight/hour in the user's zone.")
    window_end = models.DateTimeField()
    timezone = models.CharField(max_length=64, default="UTC", help_text="The zone of the window.")
    status = models.CharField(
        max_length=16, choices=DigestStatus.choices, default=DigestStatus.QUEUED
    )
    attempts = models.PositiveIntegerField(default=0)
    next_retry_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    item_count = models.PositiveIntegerField(default=0)
    provider_id = models.CharField(max_length=300, blank=True)
    claim_token = models.CharField(
        max_length=32, blank=True, help_text="The claim that holds this digest while sending."
    )
    claimed_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Real time the claim was taken or renewed; the lease runs from here.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-window_start", "-id"]
        indexes = [
            models.Index(
                fields=["status", "next_retry_at"],
                condition=Q(status__in=["queued", "sending"]),
                name="digest_due",
            ),
            models.Index(fields=["user", "-window_start"], name="digest_mine"),
        ]

    def __str__(self) -> str:
        return f"{self.period} {self.channel} digest of {self.user_id} ({self.status})"


class DigestItem(models.Model):
    digest = models.ForeignKey(Digest, on_delete=models.CASCADE, related_name="items")
    notification = models.ForeignKey(
        "notifications.Notification", on_delete=models.CASCADE, related_name="digest_items"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["digest", "notification"], name="digest_item_unique_notification"
            )
        ]

    def __str__(self) -> str:
        return f"notification {self.notification_id} in digest {self.digest_id}"


class DigestTarget(models.Model):
    """Where a user's Slack DM or Telegram digest goes: their Slack member id or Telegram
    chat id, sent with the bot of ``organization``'s channel settings. Email needs no row:
    it goes to the user's address."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="digest_targets"
    )
    channel = models.CharField(
        max_length=16,
        choices=[(c.value, c.label) for c in (DigestChannel.SLACK, DigestChannel.TELEGRAM)],
    )
    organization = models.ForeignKey(
        "workspace.Organization", on_delete=models.CASCADE, related_name="+"
    )
    address = models.CharField(max_length=200, help_text="Slack member id or Telegram chat id.")
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "channel"], name="digest_target_unique")
        ]

    def __str__(self) -> str:
        return f"{self.user} · {self.channel} {self.address}"
