"""The in-app notification store's one writer: every ``Notification`` row is written here,
from :class:`~notifications.planning.Draft` values that ``planning`` makes — the
consumer's matches, a roll-up's growing row, an admin notice, an announcement.

Rows are keyed by ``dedup_key`` (unique): writing a draft whose key is stored already
changes nothing, which is what makes the consumer's at-least-once stream an exactly-once
store. The reader's side of a row (read, seen, archived, snoozed) is ``services``'.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson
from django.db import connection
from django.db.models import F
from django.utils import timezone

from notifications import live
from notifications.models import Notification
from notifications.planning import Draft

CHUNK = 1000
"""Rows per ``INSERT`` where they travel as ``VALUES`` (SQLite)."""
_COLUMNS = (
    "recipient_id",
    "team_id",
    "category",
    "title",
    "body",
    "url",
    "actor_id",
    "actor_name",
    "trigger_id",
    "event_id",
    "event_name",
    "reason",
    "dedup_key",
    "group_key",
    "count",
    "first_seen_at",
    "last_seen_at",
    "created_at",
)


def write(drafts: Sequence[Draft]) -> dict[str, int]:
    """Insert drafts; an existing dedup key is left as it is. Returns the id of each row
    inserted by its dedup key (none for a replayed batch).

    One ``INSERT … ON CONFLICT (dedup_key) DO NOTHING RETURNING``: no model instances, no
    lookups before or after. On PostgreSQL the rows travel as one JSON parameter
    (``json_populate_recordset`` over the table's own row type): psycopg parses a query's
    placeholders in Python and caches only short queries, so a ``VALUES`` list of 18
    placeholders a row cost more than the insert itself. Elsewhere (SQLite), ``VALUES``
    in chunks of :data:`CHUNK` rows."""
    if not drafts:
        return {}
    now = timezone.now()
    rows = [
        (
            d.recipient_id,
            d.team_id,
            d.category,
            d.title,
            d.body,
            d.url,
            d.actor_id,
            d.actor_name,
            d.trigger_id,
            d.event_id,
            d.event_name,
            d.reason,
            d.dedup_key,
            d.group_key,
            d.count,
            d.first_seen_at,
            d.last_seen_at,
            now,
        )
        for d in drafts
    ]
    inserted = _insert(rows)
    live.inbox_changed(d.recipient_id for d in drafts if d.dedup_key in inserted)
    return inserted


def _insert(rows: list[tuple]) -> dict[str, int]:
    table = connection.ops.quote_name(Notification._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(c) for c in _COLUMNS)
    conflict = "ON CONFLICT (dedup_key) DO NOTHING RETURNING dedup_key, id"
    inserted: dict[str, int] = {}
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"INSERT INTO {table} ({columns}) SELECT {columns} "
                f"FROM json_populate_recordset(NULL::{table}, %s::json) {conflict}",
                [orjson.dumps([dict(zip(_COLUMNS, row, strict=True)) for row in rows]).decode()],
            )
            inserted.update(cursor.fetchall())
            return inserted
        fields = [Notification._meta.get_field(c) for c in _COLUMNS]
        placeholder = "(" + ", ".join(["%s"] * len(_COLUMNS)) + ")"
        for start in range(0, len(rows), CHUNK):
            chunk = rows[start : start + CHUNK]
            cursor.execute(
                f"INSERT INTO {table} ({columns}) "
                f"VALUES {', '.join([placeholder] * len(chunk))} {conflict}",
                [
                    f.get_db_prep_save(value, connection)
                    for row in chunk
                    for f, value in zip(fields, row, strict=True)
                ],
            )
            inserted.update(cursor.fetchall())
    return inserted


def grow(draft: Draft) -> None:
    """Add ``draft.count`` to the row stored under its dedup key and move its
    ``last_seen_at`` to the draft's; write the draft when there is no such row yet (a
    roll-up window's one in-app row). Call with the row's key locked (its window's)."""
    updated = Notification.objects.filter(dedup_key=draft.dedup_key).update(
        count=F("count") + draft.count, last_seen_at=draft.last_seen_at
    )
    if not updated:
        write([draft])
    else:
        live.inbox_changed([draft.recipient_id])
