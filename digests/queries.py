"""Read what rendering needs, as plain :class:`~digests.render.Item` values: one query for
any number of notifications or digests."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

from digests.models import DigestItem
from digests.render import Item
from notifications.models import Notification, Preference

_FIELDS = (
    "id",
    "team_id",
    "team__name",
    "category",
    "title",
    "url",
    "event_name",
    "trigger_id",
    "trigger__name",
    "count",
    "read_at",
    "created_at",
)


def _item(values: Sequence) -> Item:
    nid, team_id, team, category, title, url, event, trigger_id, trigger_name = values[:9]
    count, read_at, created_at = values[9:]
    return Item(
        notification_id=nid,
        team_id=team_id,
        team_name=team,
        category=category,
        title=title,
        url=url,
        event_name=event,
        trigger_id=trigger_id,
        trigger_name=trigger_name or "",
        count=count,
        unread=read_at is None,
        created_at=created_at,
    )


def items_for_notifications(ids: Iterable[int]) -> dict[int, Item]:
    """Render items by notification id."""
    rows = Notification.objects.filter(pk__in=list(ids)).values_list(*_FIELDS)
    return {row[0]: _item(row) for row in rows}


def items_by_digest(digest_ids: Sequence[int]) -> dict[int, list[Item]]:
    """Render items of each digest, by digest id."""
    fields = ["digest_id", *(f"notification__{name}" for name in _FIELDS)]
    found: dict[int, list[Item]] = defaultdict(list)
    for row in DigestItem.objects.filter(digest_id__in=digest_ids).values_list(*fields):
        found[row[0]].append(_item(row[1:]))
    return found


def digest_hours(user_ids: Iterable[int]) -> dict[int, int]:
    """Each user's chosen digest hour; the model default for users without preferences."""
    ids = set(user_ids)
    default = Preference._meta.get_field("digest_hour").default
    stored = dict(Preference.objects.filter(user_id__in=ids).values_list("user_id", "digest_hour"))
    return {user_id: stored.get(user_id, default) for user_id in ids}
