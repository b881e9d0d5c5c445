"""The database side of the consumer: a batch of decoded events in, in one transaction —
triggers evaluated (``TriggerCache`` → ``triggers.TriggerIndex``), built-in activity
(``follows``), ``event_count`` firings (``counting``), ``planning.plan``, the in-app rows
(``store``), deliveries queued, roll-up hits (``rollup``), the attention stage — and the
deliveries to send enqueued once it commits. No Kafka: ``consumers.ConsumerLoop`` feeds it.
Every write is idempotent, so a replayed batch stores nothing twice.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from notifications import attention, counting, enqueue, follows, rollup, store
from notifications.channels import registry
from notifications.events import Event, Source
from notifications.models import (
    Delivery,
    DeliveryStatus,
    Preference,
    Trigger,
    trigger_revision,
)
from notifications.planning import (
    ACTIVITY_REASON,
    Audience,
    DeliveryDraft,
    Match,
    plan,
    subscriber_reason,
)
from notifications.triggers import CompiledTrigger, Kind, TriggerIndex, compile_trigger
from workspace.models import Membership

Clock = Callable[[], datetime]


@dataclass
class BatchResult:
    """What one batch (or a run of the loop) did: events processed, records dead-lettered,
    matches found, in-app rows stored."""

    events: int = 0
    dead_lettered: int = 0
    matches: int = 0
    stored: int = 0


@dataclass
class TriggerCache:
    """Compiled triggers and their subscribers, as of one trigger revision.

    Ordering with events comes from the revision (``models.TriggerRevision``): every event
    is published stamped with the revision committed at that moment, and
    :meth:`refresh` reloads before a batch holding an event stamped newer than the cache.
    An event ingested after the API answered a trigger change is therefore evaluated
    against that change. Events without a stamp (older producers) fall back to asking for
    the revision at most every ``settings.NOTIFLOW_TRIGGER_REFRESH_SECONDS``; :meth:`expire`
    makes the next batch ask at once.
    """

    revision: int | None = None
    index: TriggerIndex = field(default_factory=lambda: TriggerIndex(()))
    subscribers: dict[int, frozenset[int]] = field(default_factory=dict)
    checked_at: datetime | None = None

    def expire(self) -> None:
        self.checked_at = None

    def refresh(self, now: datetime, *, at_least: int = 0) -> None:
        """Make the cache at least as new as revision ``at_least`` (and, every interval,
        as new as the database). The revision is read before the triggers, so a change
        committing in between is loaded and the next batch merely reloads once more."""
        interval = timedelta(seconds=settings.NOTIFLOW_TRIGGER_REFRESH_SECONDS)
        fresh = self.checked_at is not None and timedelta(0) <= now - self.checked_at < interval
        if fresh and self.revision is not None and at_least <= self.revision:
            return
        revision = trigger_revision()
        if revision != self.revision:
            self._load()
            self.revision = revision
        self.checked_at = now

    def _load(self) -> None:
        rows = list(
            Trigger.objects.filter(enabled=True).values(
                "id",
                "team_id",
                "kind",
                "name",
                "config",
                "channels",
                "delivery",
                "snoozed_until",
                "owner_id",
            )
        )
        subscribers: dict[int, set[int]] = defaultdict(set)
        through = Trigger.subscribers.through.objects.filter(trigger__enabled=True)
        for trigger_id, user_id in through.values_list("trigger_id", "user_id"):
            subscribers[trigger_id].add(user_id)
        self.subscribers = {
            r["id"]: frozenset(subscribers.get(r["id"]) or {r["owner_id"]}) for r in rows
        }
        self.index = TriggerIndex(
            compile_trigger(
                id=r["id"],
                team_id=r["team_id"],
                kind=r["kind"],
                name=r["name"],
                config=r["config"],
                snoozed_until=r["snoozed_until"],
                channels=r["channels"],
                delivery=r["delivery"],
            )
            for r in rows
        )


class EventProcessor:
    """The database side of the consumer: events in, notifications stored. No Kafka."""

    def __init__(self, clock: Clock = timezone.now) -> None:
        self.clock = clock
        self.triggers = TriggerCache()

    def expire(self) -> None:
        """A batch failed: the next one re-reads the triggers, so its retry is evaluated
        against them as they are then."""
        self.triggers.expire()

    def process(self, events: Sequence[Event], *, revision: int = 0) -> BatchResult:
        """Evaluate, store and plan one batch in one transaction. ``revision`` is the
        newest trigger revision the batch's events were published under (``TriggerCache``)."""
        result = BatchResult(events=len(events))
        if not events:
            return result
        events = _once_each(events)
        with transaction.atomic():
            now = self.clock()
            self.triggers.refresh(now, at_least=revision)
            matches = self._matches(events, now)
            result.matches = len(matches)
            planned = plan(matches, audience_of(matches))
            stored = store.write(planned.notifications)
            result.stored = len(stored)
            queued = queue_deliveries(planned.deliveries, stored)
            queued += rollup.record_hits(counting.new_hits(planned.rollup_hits), now=now)
            to_send = attention.deliveries_due(queued, now=now)
            follows.follow(e for e in events if e.source == Source.ACTIVITY)
            if to_send:
                transaction.on_commit(lambda: enqueue.deliver_all(to_send))
        return result

    def _matches(self, events: Sequence[Event], now: datetime) -> list[Match]:
        """Every match of the batch: triggers that match an event (``event_count`` ones
        once they fire), activity on resources people own or follow (creation is left to
        activity triggers: the owner is the one who created it), fired checks."""
        matches: list[Match] = []
        counted: dict[CompiledTrigger, list[Event]] = defaultdict(list)
        participants = follows.participants([e for e in events if e.source == Source.ACTIVITY])
        for event in events:
            for trigger in self.triggers.index.match(
                team_id=event.team_id,
                event_name=event.name,
                properties=event.properties,
                now=now,
            ):
                if trigger.kind == Kind.EVENT_COUNT:
                    counted[trigger].append(event)
                else:
                    matches.append(self._trigger_match(event, trigger))
            if event.source == Source.ACTIVITY and event.properties.get("action") != "created":
                matches.append(
                    Match(event, None, follows.audience(event, participants), ACTIVITY_REASON)
                )
            elif event.source == Source.CHECK:
                matches.extend(self._check_match(event))
        matches.extend(self._trigger_match(e, t) for t, e in counting.fired(counted, now))
        return matches

    def _trigger_match(self, event: Event, trigger: CompiledTrigger) -> Match:
        return Match(
            event=event,
            trigger=trigger,
            candidates=self.triggers.subscribers.get(trigger.id, frozenset()),
            reason=subscriber_reason(trigger.name),
        )

    def _check_match(self, event: Event) -> list[Match]:
        """A scheduled check fired: its trigger's subscribers hear about it. The id is the
        check's own integer; anything else (a list, text, a float, ``true``) names no
        trigger, since check events may come from any producer of the topic."""
        trigger_id = event.properties.get("trigger_id")
        if not isinstance(trigger_id, int) or isinstance(trigger_id, bool):
            return []
        trigger = self.triggers.index.by_id.get(trigger_id)
        if trigger is None or trigger.team_id != event.team_id:
            return []
        return [self._trigger_match(event, trigger)]


def audience_of(matches: Sequence[Match]) -> Audience:
    """Members, mutes and switched-off channels of the people the matches may reach; their
    addresses only on the channels a matched trigger sends to each recipient."""
    user_ids = {u for m in matches for u in m.candidates}
    if not user_ids:
        return Audience(members={}, muted={}, off={})
    members, off = _members(matches, user_ids)
    user_ids = {u for team in members.values() for u in team}
    muted = _muted(off)
    return Audience(members=members, muted=muted, off=off, addresses=_addresses(matches, user_ids))


def _addresses(matches: Sequence[Match], user_ids: set[int]) -> dict[str, dict[int, str]]:
    """Per channel a matched trigger sends to each recipient, their addresses on it (from
    the user field its declaration names), leaving out the empty ones; none is read for a
    channel that needs none (in-app)."""
    fields = {
        spec.type: field
        for m in matches
        if m.trigger is not None
        for spec in m.trigger.channels
        if spec.per_recipient and (field := registry.address_field(spec.type))
    }
    if not fields or not user_ids:
        return {}
    names = sorted(set(fields.values()))
    addresses: dict[str, dict[int, str]] = {type: {} for type in fields}
    for pk, *values in get_user_model().objects.filter(pk__in=user_ids).values_list("pk", *names):
        by_field = dict(zip(names, values, strict=True))
        for type, field in fields.items():
            if by_field[field]:
                addresses[type][pk] = by_field[field]
    return addresses


def _members(
    matches: Sequence[Match], user_ids: set[int]
) -> tuple[dict[int, frozenset[int]], dict[int, frozenset[tuple[str, str]]]]:
    """Per team, which of ``user_ids`` are members; per member with preferences, the
    (category, channel) pairs they switched off."""
    members: dict[int, set[int]] = defaultdict(set)
    off: dict[int, frozenset[tuple[str, str]]] = {}
    preference = "user__notification_preference"
    for team_id, user_id, has_preference, channels in Membership.objects.filter(
        team_id__in={m.event.team_id for m in matches}, user_id__in=user_ids
    ).values_list("team_id", "user_id", f"{preference}__id", f"{preference}__channels"):
        members[team_id].add(user_id)
        if has_preference is not None:
            off[user_id] = frozenset(
                (category, channel)
                for category, by_channel in channels.items()
                for channel, on in by_channel.items()
                if not on
            )
    return {k: frozenset(v) for k, v in members.items()}, off


def _muted(off: Mapping[int, object]) -> dict[int, frozenset[int]]:
    """Per team, who muted it, among the people with preferences (``off``'s keys)."""
    muted: dict[int, set[int]] = defaultdict(set)
    if off:
        for team_id, user_id in Preference.muted_teams.through.objects.filter(
            preference__user_id__in=list(off)
        ).values_list("team_id", "preference__user_id"):
            muted[team_id].add(user_id)
    return {k: frozenset(v) for k, v in muted.items()}


def _once_each(events: Sequence[Event]) -> list[Event]:
    """The batch with each event once, at its first position: a client that resent a batch
    before the consumer read the first copy sent one event, not two. Ids are the client's,
    so they are unique within a team, not across teams."""
    seen: dict[tuple[int, uuid.UUID], Event] = {}
    for event in events:
        seen.setdefault((event.team_id, event.id), event)
    return list(seen.values())


def queue_deliveries(
    drafts: Sequence[DeliveryDraft], notification_ids: Mapping[str, int]
) -> list[int]:
    """Insert deliveries by idempotency key; return ids of those still waiting to be sent
    (a replayed batch re-enqueues them, and the task's claim makes that harmless).

    ``notification_ids`` is what :func:`store.write` inserted: a delivery links to the in-app row
    made for the same recipient in the same batch. A replay inserts neither again."""
    if not drafts:
        return []
    Delivery.objects.bulk_create(
        [
            Delivery(
                idempotency_key=d.idempotency_key,
                channel=d.channel,
                destination=d.destination,
                team_id=d.team_id,
                recipient_id=d.recipient_id,
                trigger_id=d.trigger_id,
                notification_id=notification_ids.get(d.dedup_key),
                message=dict(d.message),
            )
            for d in drafts
        ],
        ignore_conflicts=True,
        batch_size=1000,
    )
    return list(
        Delivery.objects.filter(
            idempotency_key__in=[d.idempotency_key for d in drafts],
            status=DeliveryStatus.QUEUED,
        ).values_list("id", flat=True)
    )
