"""Tokenized one-click unsubscribe: a signed (user, category, channel) that turns that
category off on that channel without a login. A token names one user; it cannot be edited
to reach another without breaking the signature."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.core import signing
from django.db import transaction

from notifications.models import Preference

SALT = "notiflow.unsubscribe"
MAX_AGE_SECONDS = 60 * 60 * 24 * 180


@dataclass(frozen=True)
class Unsubscribe:
    user_id: int
    category: str
    channel: str


def unsubscribe_token(*, user_id: int, category: str, channel: str) -> str:
    return signing.dumps({"u": user_id, "c": category, "ch": channel}, salt=SALT, compress=True)


def unsubscribe_url(*, user_id: int, category: str, channel: str) -> str:
    token = unsubscribe_token(user_id=user_id, category=category, channel=channel)
    return f"{settings.NOTIFLOW_BASE_URL}/unsubscribe/{token}/"


def read_token(token: str) -> Unsubscribe | None:
    try:
        data = signing.loads(token, salt=SALT, max_age=MAX_AGE_SECONDS)
    except signing.BadSignature:
        return None
    return Unsubscribe(user_id=int(data["u"]), category=str(data["c"]), channel=str(data["ch"]))


def preference_unsubscribe(*, token: str) -> Unsubscribe | None:
    """Apply a token: the category is switched off for that channel. Idempotent."""
    request = read_token(token)
    if request is None:
        return None
    with transaction.atomic():
        preference, _ = Preference.objects.select_for_update().get_or_create(
            user_id=request.user_id
        )
        channels = dict(preference.channels)
        channels[request.category] = {**channels.get(request.category, {}), request.channel: False}
        preference.channels = channels
        preference.save(update_fields=["channels", "updated_at"])
    return request
