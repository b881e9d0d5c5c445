"""Operations on a user's inbox, named ``notification_<action>`` with keyword arguments."""

from __future__ import annotations

from datetime import datetime

from django.db.models import QuerySet
from django.utils import timezone

from notifications.models import Notification


def notification_inbox(*, user) -> QuerySet[Notification]:
    return Notification.objects.filter(recipient=user)


def notification_unread_count(*, user) -> int:
    return (
        notification_inbox(user=user).filter(read_at__isnull=True, archived_at__isnull=True).count()
    )


def notification_mark_read(*, user, notification_id: int, now: datetime | None = None) -> bool:
    """Mark one of the user's notifications read; False if it is not theirs."""
    inbox = notification_inbox(user=user).filter(pk=notification_id)
    if not inbox.exists():
        return False
    inbox.filter(read_at__isnull=True).update(read_at=now or timezone.now())
    return True


def notification_mark_all_read(*, user, now: datetime | None = None) -> int:
    return (
        notification_inbox(user=user)
        .filter(read_at__isnull=True)
        .update(read_at=now or timezone.now())
    )
