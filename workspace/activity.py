"""The activity log: who created, edited or deleted which resource, and what changed.

Writes happen through Django signals on every concrete :class:`~workspace.models.Resource`
(so the API, the admin and plain ORM code all log), inside one transaction with whatever
listens to ``ActivityLog`` saves (the notification outbox). The actor comes from the current
request (see :class:`ActorMiddleware`) or from :func:`acting_as` outside a request.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import Model
from django.utils import timezone

from workspace.models import ActivityLog, Resource, Subscription
from workspace.resources import Action

_request: contextvars.ContextVar[Any] = contextvars.ContextVar("activity_request", default=None)
_actor: contextvars.ContextVar[Any] = contextvars.ContextVar("activity_actor", default=None)

IGNORED_FIELDS = frozenset({"updated_at", "created_at", "id"})


class ActorMiddleware:
    """Remember the request so signal handlers can name who made a change.

    The user is read when the change is logged, not here: DRF authenticates tokens inside
    the view, after middleware has run.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        token = _request.set(request)
        try:
            return self.get_response(request)
        finally:
            _request.reset(token)


@contextlib.contextmanager
def acting_as(user) -> Iterator[None]:
    """Attribute changes made in this block to ``user`` (commands, tasks, tests)."""
    token = _actor.set(user)
    try:
        yield
    finally:
        _actor.reset(token)


def current_actor():
    actor = _actor.get()
    if actor is not None:
        return actor
    request = _request.get()
    user = getattr(request, "user", None)
    return user if user is not None and user.is_authenticated else None


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Model):
        return value.pk
    return value


def snapshot(instance: Model) -> dict[str, Any]:
    return {
        field.attname: _plain(getattr(instance, field.attname))
        for field in instance._meta.concrete_fields
        if field.attname not in IGNORED_FIELDS
    }


def changed_fields(before: dict[str, Any], after: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``{field: {"before": old, "after": new}}`` for every field whose value differs."""
    return {
        name: {"before": before.get(name), "after": value}
        for name, value in after.items()
        if before.get(name) != value
    }


def resource_type(instance: Model) -> str:
    return instance._meta.model_name or instance.__class__.__name__.lower()


def log_activity(
    instance: Resource, action: str, *, changes: dict[str, Any] | None = None
) -> ActivityLog:
    actor = current_actor()
    with transaction.atomic():
        return ActivityLog.objects.create(
            team_id=instance.team_id,
            actor=actor,
            actor_name=(actor.get_full_name() or actor.get_username()) if actor else "",
            action=action,
            resource_type=resource_type(instance),
            resource_id=str(instance.pk),
            resource_name=instance.name,
            owner_id=instance.created_by_id,
            changes=changes or {},
        )


def on_resource_init(sender, instance, **kwargs) -> None:
    if issubclass(sender, Resource) and instance.pk is not None:
        instance._activity_before = snapshot(instance)


def on_resource_saved(sender, instance, created, raw=False, **kwargs) -> None:
    if raw or not issubclass(sender, Resource):
        return
    after = snapshot(instance)
    if created:
        log_activity(instance, Action.CREATED)
    else:
        changes = changed_fields(getattr(instance, "_activity_before", {}), after)
        if changes:
            log_activity(instance, Action.UPDATED, changes=changes)
    instance._activity_before = after


def on_resource_deleted(sender, instance, **kwargs) -> None:
    if issubclass(sender, Resource):
        log_activity(instance, Action.DELETED)


def subscription_delivered(
    subscription: Subscription, *, ok: bool, error: str = "", now: datetime | None = None
) -> ActivityLog:
    """Record that a subscription was sent (or failed to send) as activity on it."""
    with transaction.atomic():
        if ok:
            Subscription.objects.filter(pk=subscription.pk).update(
                last_sent_at=now or timezone.now()
            )
        return log_activity(
            subscription,
            Action.SENT if ok else Action.FAILED,
            changes={"error": {"before": None, "after": error}} if error else None,
        )
