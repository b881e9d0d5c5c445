"""Each person's attention: the stage every push to a person passes through when it is made
due, and the release of what it held. The rules are pure (:mod:`notifications.quiet`);
this module reads the people's settings and writes ``Delivery`` rows.

- :func:`deliveries_due` takes deliveries just queued (instant ones by the consumer,
  roll-up summaries by the flush) inside the transaction that queued them, holds the
  pushes to people in quiet hours or do-not-disturb (``held``, ``held_until``, ``reason``),
  marks critical ones that pass, and returns the ids to send now. In-app, team
  destinations and anything without a recipient pass untouched.
- :func:`release_due` (beat, every 30 s) turns everything held for one person × channel
  whose time is up into ONE queued summary delivery, in one transaction per person ×
  channel: the held rows are locked (``SKIP LOCKED``), become ``released`` pointing at the
  summary, and the summary's idempotency key is ``release:<person>:<channel>:<first held
  id>``. A second run, a concurrent one or a killed one therefore sends exactly one summary
  per held period; the summary itself goes through ``deliver`` and its real-time claim
  lease like every delivery.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Max

from notifications import sending
from notifications.channels.registry import PUSH
from notifications.models import Delivery, DeliveryStatus, Preference
from notifications.quiet import (
    Attention,
    Hold,
    held_from_message,
    is_critical,
    quiet_until,
    release_message,
)
from workspace.models import Membership, UserProfile, zone_in_effect

RELEASE_BATCH = 500
"""People × channels released per run; the rest wait for the next tick."""


def attention_of(user_ids: Iterable[int]) -> dict[int, Attention]:
    """Each person's quiet settings in two queries; a person without preferences has none."""
    ids = set(user_ids)
    zones = dict(UserProfile.objects.filter(user_id__in=ids).values_list("user_id", "timezone"))
    found = {}
    for user_id, start, end, dnd, critical in Preference.objects.filter(
        user_id__in=ids
    ).values_list(
        "user_id", "quiet_hours_start", "quiet_hours_end", "dnd_until", "critical_categories"
    ):
        found[user_id] = Attention(
            zone=zone_in_effect(zones.get(user_id)),
            quiet_start=start,
            quiet_end=end,
            dnd_until=dnd,
            critical_categories=frozenset(critical if isinstance(critical, list) else ()),
        )
    return found


def deliveries_due(delivery_ids: Sequence[int], *, now: datetime) -> list[int]:
    """Hold what must wait, note what passes as critical; return the ids to send now.
    Call inside the transaction that queued the deliveries, so no worker ever sees a push
    that should have been held. Only ``queued`` rows are touched (a replay finds held or
    sent rows as they are)."""
    if not delivery_ids:
        return []
    pushes = list(
        Delivery.objects.filter(
            pk__in=delivery_ids,
            status=DeliveryStatus.QUEUED,
            recipient__isnull=False,
            channel__in=PUSH,
        ).values_list("id", "recipient_id", "message", "trigger__critical")
    )
    people = attention_of(recipient for _, recipient, _, _ in pushes)
    holds = {user_id: quiet_until(attention, now) for user_id, attention in people.items()}
    held: dict[int, list[int]] = defaultdict(list)
    for delivery_id, recipient_id, message, trigger_critical in pushes:
        hold = holds.get(recipient_id)
        if hold is None:
            continue
        data = message if isinstance(message, dict) else {}
        category = str(data.get("category", ""))
        if is_critical(
            people[recipient_id], category=category, trigger_critical=bool(trigger_critical)
        ):
            body = data.get("body", "")
            note = f"Critical: sent during your {hold.why} (until {hold.until_text(now)})."
            Delivery.objects.filter(  # once: a replay finds the reason already written
                pk=delivery_id, status=DeliveryStatus.QUEUED, reason=""
            ).update(
                reason=hold.passed_reason(now),
                message={**data, "body": f"{note}\n\n{body}" if body else note},
            )
        else:
            held[recipient_id].append(delivery_id)
    for recipient_id, ids in held.items():  # one statement per person, whatever the burst
        hold = holds[recipient_id]
        assert hold is not None
        Delivery.objects.filter(pk__in=ids, status=DeliveryStatus.QUEUED).update(
            status=DeliveryStatus.HELD,
            held_until=hold.until,
            reason=hold.held_reason(now),
            updated_at=now,
        )
    waiting = {delivery_id for ids in held.values() for delivery_id in ids}
    return [delivery_id for delivery_id in delivery_ids if delivery_id not in waiting]


def held_on_retry(delivery: Delivery, *, claim: sending.Claim, now: datetime) -> bool:
    """A push that comes due again after a wait — a retry, a claim recovered after its
    lease — passes the stage again when a worker claims it, since the person may have
    gone quiet meanwhile: inside their quiet hours or do-not-disturb it is held instead of
    sent (with ``held_until`` and the reason) and released with the rest. Critical ones
    pass; so do release summaries, which the release sent because the quiet time was over.
    Call with the row just claimed and its ``claim``, inside the claim's transaction;
    returns whether it was held. A first attempt is sent right after
    :func:`deliveries_due` passed it."""
    if (
        delivery.next_retry_at is None
        or delivery.recipient_id is None
        or delivery.channel not in PUSH
        or delivery.idempotency_key.startswith("release:")
    ):
        return False
    attention = attention_of([delivery.recipient_id]).get(delivery.recipient_id)
    hold = quiet_until(attention, now) if attention else None
    if attention is None or hold is None:
        return False
    data = delivery.message if isinstance(delivery.message, dict) else {}
    critical = delivery.trigger_id is not None and delivery.trigger.critical
    if is_critical(attention, category=str(data.get("category", "")), trigger_critical=critical):
        return False
    return bool(
        claim.rows().update(
            status=DeliveryStatus.HELD,
            held_until=hold.until,
            reason=hold.held_reason(now),
            updated_at=now,
        )
    )


def _summary_key(recipient_id: int, channel: str, first_held_id: int) -> str:
    return f"release:{recipient_id}:{channel}:{first_held_id}"


def release_due(*, now: datetime, limit: int = RELEASE_BATCH) -> list[int]:
    """Release everything held whose time is up: one queued summary per person × channel.
    Returns the summaries' ids to send. A person who is quiet again at ``now`` (DND
    extended, quiet hours moved) keeps their rows held until the new end instead."""
    groups = (
        Delivery.objects.filter(status=DeliveryStatus.HELD, held_until__lte=now)
        .values_list("recipient_id", "channel")
        .distinct()
        .order_by("recipient_id", "channel")[:limit]
    )
    created = []
    for recipient_id, channel in groups:
        with transaction.atomic():
            summary = _release_one(recipient_id, channel, now)
        if summary is not None:
            created.append(summary)
    return created


def _release_one(recipient_id: int, channel: str, now: datetime) -> int | None:
    rows = list(
        Delivery.objects.select_for_update(skip_locked=True, of=("self",))
        .filter(
            status=DeliveryStatus.HELD,
            recipient_id=recipient_id,
            channel=channel,
            held_until__lte=now,
        )
        .select_related("team")
        .order_by("id")
    )
    if not rows:
        return None  # another run holds them, or released them already
    attention = attention_of([recipient_id]).get(recipient_id)
    hold = quiet_until(attention, now) if attention else None
    ids = [row.pk for row in rows]
    if hold is not None:
        Delivery.objects.filter(pk__in=ids).update(
            held_until=hold.until, reason=hold.held_reason(now), updated_at=now
        )
        return None
    rows = _still_wanted(rows, recipient_id, channel, now)
    if not rows:
        return None
    ids = [row.pk for row in rows]
    newest = rows[-1]
    message = release_message(
        [held_from_message(row.message if isinstance(row.message, dict) else {}) for row in rows],
        base_url=settings.NOTIFLOW_BASE_URL,
    )
    reasons = sorted({row.reason for row in rows if row.reason})
    summary, _ = Delivery.objects.get_or_create(
        idempotency_key=_summary_key(recipient_id, channel, ids[0]),
        defaults={
            "channel": channel,
            "destination": newest.destination,
            "team_id": newest.team_id,
            "recipient_id": recipient_id,
            "message": message,
            "reason": f"released: {len(rows)} held ({'; '.join(reasons)})"[:400],
        },
    )
    Delivery.objects.filter(pk__in=ids).update(
        status=DeliveryStatus.RELEASED, released_in=summary, updated_at=now
    )
    return summary.pk


def _still_wanted(
    rows: list[Delivery], recipient_id: int, channel: str, now: datetime
) -> list[Delivery]:
    """The held rows the person still wants on ``channel``; the rest are skipped with why:
    they switched the category off there (the email's one-click unsubscribe, the grid),
    muted the team, or left it while the rows were held."""
    preference = Preference.objects.filter(user_id=recipient_id).first()
    muted = set(preference.muted_teams.values_list("id", flat=True)) if preference else set()
    joined = set(
        Membership.objects.filter(
            user_id=recipient_id, team_id__in={row.team_id for row in rows}
        ).values_list("team_id", flat=True)
    )
    kept, skipped = [], defaultdict(list)
    for row in rows:
        category = str((row.message or {}).get("category", "alert"))
        if row.team_id not in joined:
            skipped[f"skipped: you left {row.team.name} while it was held"].append(row.pk)
        elif row.team_id in muted:
            skipped[f"skipped: you muted {row.team.name} while it was held"].append(row.pk)
        elif preference is not None and not preference.allows(category, channel):
            skipped[f"skipped: you switched {category} by {channel} off while it was held"].append(
                row.pk
            )
        else:
            kept.append(row)
    for reason, ids in skipped.items():
        Delivery.objects.filter(pk__in=ids).update(
            status=DeliveryStatus.SKIPPED, reason=reason[:400], updated_at=now
        )
    return kept


def attention_changed(*, user_id: int, now: datetime) -> int:
    """The person changed their quiet hours, do-not-disturb or zone: what is held for them
    now waits until the new end (or goes at the next release, when nothing holds it)."""
    attention = attention_of([user_id]).get(user_id)
    hold = quiet_until(attention, now) if attention else None
    held = Delivery.objects.filter(recipient_id=user_id, status=DeliveryStatus.HELD)
    if hold is None:
        return held.update(held_until=now, updated_at=now)
    return held.update(held_until=hold.until, reason=hold.held_reason(now), updated_at=now)


def held_summary(*, user_id: int, now: datetime) -> str:
    """What the notification center says while pushes are held for the person ("3 held
    until 07:00 Europe/Berlin"); "" when nothing is."""
    found = Delivery.objects.filter(recipient_id=user_id, status=DeliveryStatus.HELD).aggregate(
        n=Count("id"), until=Max("held_until")
    )
    if not found["n"]:
        return ""
    attention = attention_of([user_id]).get(user_id) or Attention()
    hold = Hold(until=max(found["until"], now), why="", zone=attention.zone)
    return f"{found['n']:,} held until {hold.until_text(now)}"
