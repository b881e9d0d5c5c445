"""The consumer loop: poll a batch → decode (poison → DLQ) → evaluate triggers → plan →
store in one transaction → commit offsets. Offsets are committed only after the database
commit, and every write is idempotent, so a crash or rebalance replays without doubling.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import (
    InterfaceError,
    OperationalError,
    ProgrammingError,
    close_old_connections,
    connection,
    transaction,
)
from django.utils import timezone
from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import CommitFailedError, KafkaError
from kombu.exceptions import OperationalError as BrokerUnavailable

from notifications import attention, enqueue, metrics, rollup, store, stream
from notifications.events import Event, InvalidEvent, Source, decode
from notifications.models import (
    Delivery,
    DeliveryStatus,
    Follow,
    Preference,
    Trigger,
    TriggerMatch,
    TriggerState,
    trigger_revision,
)
from notifications.planning import (
    ACTIVITY_REASON,
    Audience,
    DeliveryDraft,
    Match,
    RollupHit,
    plan,
    subscriber_reason,
)
from notifications.stream import TopicName
from notifications.triggers import (
    CompiledTrigger,
    Kind,
    TriggerIndex,
    compile_trigger,
)
from workspace.models import Membership

log = logging.getLogger(__name__)

FOLLOW_DECAY = timedelta(days=90)
REPLAY_HORIZON = timedelta(days=15)
"""How long a claim (``TriggerMatch``) is kept after it was made: longer than Kafka can
hand an event back. The events topic keeps the broker's defaults, ``retention.ms`` and
``segment.ms`` of 7 days each, and a segment is deleted only once its newest record is
past retention, so a record can be read for up to 14 days after it was written."""
Clock = Callable[[], datetime]


@dataclass(frozen=True)
class BatchPolicy:
    """How much the loop takes at once, how it backs off when a batch fails, and after how
    many identical non-transient failures a batch is taken apart (see ``ConsumerLoop``)."""

    max_records: int = 2000
    poll_timeout_ms: int = 1000
    retry_backoff_seconds: float = 2.0
    poison_attempts: int = 3


DEFAULT_BATCH = BatchPolicy()


@dataclass
class BatchResult:
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
            matches: list[Match] = []
            counted: dict[CompiledTrigger, list[Event]] = defaultdict(list)
            followers = self._followers([e for e in events if e.source == Source.ACTIVITY])
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
                    matches.append(self._activity_match(event, followers))
                elif event.source == Source.CHECK:
                    matches.extend(self._check_match(event))
            matches.extend(self._fired_counts(counted, now))
            result.matches = len(matches)
            planned = plan(matches, self._audience(matches))
            stored = store.write(planned.notifications)
            result.stored = len(stored)
            queued = queue_deliveries(planned.deliveries, stored)
            queued += rollup.record_hits(self._new_hits(planned.rollup_hits), now=now)
            to_send = attention.deliveries_due(queued, now=now)
            self._follow(e for e in events if e.source == Source.ACTIVITY)
            if to_send:
                transaction.on_commit(lambda: enqueue.deliver_all(to_send))
        return result

    def _trigger_match(self, event: Event, trigger: CompiledTrigger) -> Match:
        return Match(
            event=event,
            trigger=trigger,
            candidates=self.triggers.subscribers.get(trigger.id, frozenset()),
            reason=subscriber_reason(trigger.name),
        )

    def _activity_match(
        self, event: Event, followers: Mapping[tuple[int, str, str], list[tuple[int, datetime]]]
    ) -> Match:
        """Built-in activity: the resource's owner and the people who worked on it before
        this event (within ``FOLLOW_DECAY``) hear about it. Creation is left to activity
        triggers: the owner is the one who created it."""
        subject = event.subject
        candidates: set[int] = set()
        owner_id = event.properties.get("owner_id")
        if isinstance(owner_id, int):
            candidates.add(owner_id)
        if subject is not None:
            since = event.occurred_at - FOLLOW_DECAY
            candidates.update(
                user_id
                for user_id, when in followers.get((event.team_id, subject.type, subject.id), ())
                if since <= when < event.occurred_at
            )
        return Match(
            event=event,
            trigger=None,
            candidates=frozenset(candidates),
            reason=ACTIVITY_REASON,
        )

    @staticmethod
    def _followers(
        activity: Sequence[Event],
    ) -> dict[tuple[int, str, str], list[tuple[int, datetime]]]:
        """Who took part in each resource of the batch and when: the stored follows, read
        before this batch records its own, and every actor in the batch at their event's
        time. An edit is news to those who worked on the resource *before* it, so two edits
        in one batch tell the first editor of the second, and a replay, which finds later
        follows already stored, tells nobody of an edit made before they took part."""
        subjects = {
            (e.team_id, e.subject.type, e.subject.id) for e in activity if e.subject is not None
        }
        if not subjects:
            return {}
        by_subject: dict[tuple[int, str, str], list[tuple[int, datetime]]] = defaultdict(list)
        earliest = min(e.occurred_at for e in activity) - FOLLOW_DECAY
        stored = Follow.objects.filter(
            team_id__in={team for team, _, _ in subjects},
            resource_type__in={rtype for _, rtype, _ in subjects},
            resource_id__in={rid for _, _, rid in subjects},
            last_participated_at__gte=earliest,
        ).values_list("team_id", "resource_type", "resource_id", "user_id", "last_participated_at")
        for team, rtype, rid, user_id, when in stored:
            if (team, rtype, rid) in subjects:
                by_subject[(team, rtype, rid)].append((user_id, when))
        for e in activity:
            if e.subject is not None and e.actor is not None and e.actor.id is not None:
                key = (e.team_id, e.subject.type, e.subject.id)
                by_subject[key].append((e.actor.id, e.occurred_at))
        return by_subject

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

    def _fired_counts(
        self, counted: dict[CompiledTrigger, list[Event]], now: datetime
    ) -> Iterable[Match]:
        """Record event_count matches (unique per trigger × event) and fire each trigger
        once per window when the count in the window reaches its threshold.

        An event counts at its own time, or at ``now`` when the client stamped it later than
        that: one event from a clock set to tomorrow does not hold the trigger's next firing
        until tomorrow. Claims are kept for the replay horizon, not the window
        (:func:`prune_claims`), so every event Kafka can replay is known as claimed.

        Only events claimed by this call are judged. An event claimed before was counted,
        and fired or not, in the transaction that claimed it, at the time stored then; a
        replay judging it again at a later ``now`` would count a future-stamped event at a
        new time, in a window it was never in, and could fire the trigger a second time."""
        if not counted:
            return []
        at = {
            trigger: {e.id: min(e.occurred_at, now) for e in events}
            for trigger, events in counted.items()
        }
        new = {trigger: claim_new_events(trigger.id, when) for trigger, when in at.items()}
        fired = []
        for trigger, events in counted.items():
            fresh = [e for e in events if e.id in new[trigger]]
            if not fresh:
                continue
            when = at[trigger]
            window = timedelta(minutes=trigger.window_minutes)
            state, _ = TriggerState.objects.select_for_update().get_or_create(trigger_id=trigger.id)
            for event in sorted(fresh, key=lambda e: when[e.id]):
                moment = when[event.id]
                if state.last_fired_at and moment - state.last_fired_at < window:
                    continue
                seen = TriggerMatch.objects.filter(
                    trigger_id=trigger.id,
                    occurred_at__gt=moment - window,
                    occurred_at__lte=moment,
                ).count()
                if seen >= trigger.count:
                    state.last_fired_at = moment
                    fired.append(self._trigger_match(event, trigger))
            state.save(update_fields=["last_fired_at"])
        return fired

    def _new_hits(self, hits: list[RollupHit]) -> list[RollupHit]:
        """Only events this trigger has not counted before: a replayed batch adds nothing.

        An ``event_count`` trigger's hit is the firing itself, already made once per window
        by :meth:`_fired_counts` (which claimed its events): claiming it again would find
        the claim and drop the only hit its roll-up gets."""
        by_trigger: dict[int, dict[uuid.UUID, datetime]] = defaultdict(dict)
        for hit in hits:
            if hit.trigger.kind != Kind.EVENT_COUNT:
                by_trigger[hit.trigger.id][hit.event.id] = hit.event.occurred_at
        new = {
            (trigger_id, event_id)
            for trigger_id, events in by_trigger.items()
            for event_id in claim_new_events(trigger_id, events)
        }
        return [
            h
            for h in hits
            if h.trigger.kind == Kind.EVENT_COUNT or (h.trigger.id, h.event.id) in new
        ]

    def _audience(self, matches: list[Match]) -> Audience:
        """Members, mutes and switched-off channels of the people the matches may reach;
        their email addresses only when a matched trigger emails each recipient."""
        user_ids = {u for m in matches for u in m.candidates}
        if not user_ids:
            return Audience(members={}, muted={}, off={})
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
        user_ids = {u for team in members.values() for u in team}
        muted: dict[int, set[int]] = defaultdict(set)
        if off:
            for team_id, user_id in Preference.muted_teams.through.objects.filter(
                preference__user_id__in=list(off)
            ).values_list("team_id", "preference__user_id"):
                muted[team_id].add(user_id)
        emails: dict[int, str] = {}
        if any(
            spec.type == "email" and spec.per_recipient
            for m in matches
            if m.trigger is not None
            for spec in m.trigger.channels
        ):
            emails = dict(
                get_user_model()
                .objects.filter(pk__in=user_ids)
                .exclude(email="")
                .values_list("pk", "email")
            )
        return Audience(
            members={k: frozenset(v) for k, v in members.items()},
            muted={k: frozenset(v) for k, v in muted.items()},
            off=off,
            emails=emails,
        )

    def _follow(self, activity: Iterable[Event]) -> None:
        """The actor of an activity now follows the resource (upsert, newest time wins)."""
        latest: dict[tuple[int, str, str], tuple[int, datetime]] = {}
        for event in activity:
            if event.actor is None or event.actor.id is None or event.subject is None:
                continue
            key = (event.actor.id, event.subject.type, event.subject.id)
            if key not in latest or latest[key][1] < event.occurred_at:
                latest[key] = (event.team_id, event.occurred_at)
        if latest:
            Follow.objects.bulk_create(
                [
                    Follow(
                        user_id=user_id,
                        resource_type=rtype,
                        resource_id=rid,
                        team_id=team_id,
                        last_participated_at=when,
                    )
                    for (user_id, rtype, rid), (team_id, when) in latest.items()
                ],
                update_conflicts=True,
                unique_fields=["user", "resource_type", "resource_id"],
                update_fields=["last_participated_at"],
            )


def _once_each(events: Sequence[Event]) -> list[Event]:
    """The batch with each event once, at its first position: a client that resent a batch
    before the consumer read the first copy sent one event, not two. Ids are the client's,
    so they are unique within a team, not across teams."""
    seen: dict[tuple[int, uuid.UUID], Event] = {}
    for event in events:
        seen.setdefault((event.team_id, event.id), event)
    return list(seen.values())


def claim_new_events(trigger_id: int, events: Mapping[uuid.UUID, datetime]) -> set[uuid.UUID]:
    """Record that ``trigger_id`` counted these events (event id → the time it counts at);
    return the ids not recorded before.

    ``INSERT … ON CONFLICT DO NOTHING RETURNING`` answers in one statement which rows were
    new, on PostgreSQL and SQLite alike, so counting is idempotent under replay. Values go
    through the model fields' own conversion, so SQLite stores times as the ORM compares them.
    """
    if not events:
        return set()
    id_field = TriggerMatch._meta.get_field("event_id")
    at_field = TriggerMatch._meta.get_field("occurred_at")
    claimed_at = at_field.get_db_prep_value(timezone.now(), connection)
    table = TriggerMatch._meta.db_table
    placeholders = ", ".join(["(%s, %s, %s, %s)"] * len(events))
    params: list[Any] = []
    for event_id, occurred_at in events.items():
        params += [
            trigger_id,
            id_field.get_db_prep_value(event_id, connection),
            at_field.get_db_prep_value(occurred_at, connection),
            claimed_at,
        ]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (trigger_id, event_id, occurred_at, claimed_at) "
            f"VALUES {placeholders} "
            "ON CONFLICT (trigger_id, event_id) DO NOTHING RETURNING event_id",
            params,
        )
        return {uuid.UUID(str(value)) for (value,) in cursor.fetchall()}


def prune_claims(*, now: datetime, horizon: timedelta = REPLAY_HORIZON, chunk: int = 10_000) -> int:
    """Delete claims made more than ``horizon`` before ``now``; return how many went.

    Counting reads only the window it needs, so old claims serve replays alone, and no
    replay reaches past the horizon. Deleted in chunks by id, so no statement holds many
    row locks against the consumer's inserts."""
    deleted = 0
    old = TriggerMatch.objects.filter(claimed_at__lt=now - horizon)
    while ids := list(old.values_list("pk", flat=True)[:chunk]):
        deleted += TriggerMatch.objects.filter(pk__in=ids).delete()[0]
    return deleted


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


TRANSIENT_ERRORS: tuple[type[Exception], ...] = (
    OperationalError,  # the database went away, a deadlock, a serialization failure
    InterfaceError,  # a connection closed under us
    ProgrammingError,  # a table missing: code deployed before its migration ran
    KafkaError,  # the broker is down (dead-lettering, committing)
    BrokerUnavailable,  # Redis is down when the commit enqueues deliveries
)


def is_transient(exc: Exception) -> bool:
    """An error that a retry of the same batch can outlive: never a reason to dead-letter."""
    return isinstance(exc, TRANSIENT_ERRORS)


class Strikes(ConsumerRebalanceListener):
    """Non-transient failures in a row, per partition, at the offset it is stuck on, for as
    long as the partition stays assigned to this consumer.

    Kept per partition so that a batch of another partition succeeding in between (polls
    alternate between partitions) does not reset a poison event's count, and without the
    error's text, so a poison event whose error changes between attempts still reaches
    its limit. As the consumer's rebalance listener it forgets a partition that is revoked
    or lost: when the partition comes back (after another consumer had it, or after this one
    was evicted from the group) its count starts again, so an event is dead-lettered only
    after failing ``BatchPolicy.poison_attempts`` times on the consumer that dead-letters it.
    """

    def __init__(self) -> None:
        self.stuck: dict[tuple[str, int], tuple[int, int]] = {}

    def add(self, offsets: frozenset[tuple[str, int, int]]) -> int:
        """Count one more failure of a batch starting at ``offsets``; return the highest
        count among its partitions."""
        for topic, partition, offset in offsets:
            at, count = self.stuck.get((topic, partition), (offset, 0))
            self.stuck[(topic, partition)] = (offset, count + 1 if at == offset else 1)
        return max(self.stuck[(t, p)][1] for t, p, _ in offsets)

    def poisoned(
        self, offsets: frozenset[tuple[str, int, int]], limit: int
    ) -> frozenset[tuple[str, int]]:
        """The partitions of a batch starting at ``offsets`` whose count at that offset
        reached ``limit``."""
        return frozenset(
            (t, p)
            for t, p, o in offsets
            for at, count in [self.stuck.get((t, p), (-1, 0))]
            if at == o and count >= limit
        )

    def clear(self, offsets: frozenset[tuple[str, int, int]]) -> None:
        """The batch went through: its partitions moved on."""
        for topic, partition, _ in offsets:
            self.stuck.pop((topic, partition), None)

    def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        for tp in revoked:
            self.stuck.pop((tp.topic, tp.partition), None)

    def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        """Nothing to restore: a partition assigned again starts with no strikes."""


def record_revision(records: Iterable[Any]) -> int:
    """The newest trigger revision the records were published under (0 without a stamp)."""
    newest = 0
    for record in records:
        for key, value in record.headers or ():
            if key == stream.TRIGGER_REVISION_HEADER:
                try:
                    newest = max(newest, int(value))
                except (TypeError, ValueError):
                    continue
    return newest


class ConsumerLoop:
    """Kafka side: poll, decode, process, dead-letter, commit after the DB.

    A batch that fails is rewound and retried after a backoff. Transient errors (database or
    broker unreachable) are retried for as long as they last. Once a partition's batch has
    failed ``policy.poison_attempts`` times in a row with any other error, that partition's
    records are processed one event at a time and every event that still fails is
    dead-lettered with the error as its ``reason``, so no event stalls its partition; the
    other partitions of the poll are rewound and go through as a batch, with strikes of
    their own. Records that do not decode are dead-lettered only once their batch went
    through, so retries of a failing batch do not dead-letter them again. A failed batch
    expires the trigger cache, so its retry is evaluated against the triggers as they are
    then: a trigger deleted while its events waited fails one attempt, not every one.

    The loop subscribes ``consumer`` (built without topics) to the events topic with its
    :class:`Strikes` as the rebalance listener.
    """

    def __init__(
        self,
        consumer: KafkaConsumer,
        producer: KafkaProducer,
        processor: EventProcessor,
        policy: BatchPolicy = DEFAULT_BATCH,
    ) -> None:
        self.consumer = consumer
        self.producer = producer
        self.processor = processor
        self.policy = policy
        self.dlq_topic = stream.topic(TopicName.EVENTS_DLQ)
        self.strikes = Strikes()
        consumer.subscribe(topics=[stream.topic(TopicName.EVENTS)], listener=self.strikes)

    def run(self, stop: threading.Event, *, until_idle: bool = False) -> BatchResult:
        total = BatchResult()
        while not stop.is_set():
            batch = self.consumer.poll(
                timeout_ms=self.policy.poll_timeout_ms, max_records=self.policy.max_records
            )
            records = [r for part in batch.values() for r in part]
            if not records:
                if until_idle and self.caught_up():
                    break
                continue
            offsets = self._first_offsets(records)
            poisoned = self.strikes.poisoned(offsets, self.policy.poison_attempts)
            if poisoned:
                self._rewind([r for r in records if (r.topic, r.partition) not in poisoned])
                records = [r for r in records if (r.topic, r.partition) in poisoned]
                offsets = self._first_offsets(records)
            started = time.monotonic()
            try:
                result = self.isolate(records) if poisoned else self.handle(records)
            except Exception as exc:
                self._failed(records, offsets, exc)
                stop.wait(self.policy.retry_backoff_seconds)
                continue
            metrics.count_batch(result, time.monotonic() - started)
            self.strikes.clear(offsets)
            for name in ("events", "dead_lettered", "matches", "stored"):
                setattr(total, name, getattr(total, name) + getattr(result, name))
        return total

    def caught_up(self) -> bool:
        """Partitions are assigned and every one is read to its end."""
        assigned = self.consumer.assignment()
        if not assigned:
            return False
        ends = self.consumer.end_offsets(list(assigned))
        return all(self.consumer.position(tp) >= ends[tp] for tp in assigned)

    def handle(self, records: list[Any]) -> BatchResult:
        valid: list[Event] = []
        dead: list[tuple[Any, str]] = []
        for record in records:
            try:
                valid.append(decode(record.value))
            except InvalidEvent as exc:
                dead.append((record, str(exc)))
        started = time.monotonic()
        result = self.processor.process(valid, revision=record_revision(records))
        result.dead_lettered = self._dead_letter_all(dead)
        self._commit()
        log.info(
            "batch: %d events, %d dead-lettered, %d matches, %d stored in %.0f ms",
            result.events,
            result.dead_lettered,
            result.matches,
            result.stored,
            (time.monotonic() - started) * 1000,
        )
        return result

    def isolate(self, records: list[Any]) -> BatchResult:
        """Process the records of poisoned partitions one event per transaction; dead-letter
        each event whose processing still raises a non-transient error, then commit past them
        (the poll's other partitions were rewound, so the commit leaves them where they were).

        A transient error propagates and the whole batch is retried (what was stored is
        replayed idempotently). Even when every event fails, each is dead-lettered with its
        reason: the dead-letter topic keeps them for a replay once the cause is fixed,
        while a waiting partition would stall every other team whose events share it.
        """
        total = BatchResult()
        dead: list[tuple[Any, str]] = []
        for record in records:
            try:
                event = decode(record.value)
            except InvalidEvent as exc:
                dead.append((record, str(exc)))
                continue
            try:
                result = self.processor.process([event], revision=record_revision([record]))
            except Exception as exc:
                if is_transient(exc):
                    raise
                dead.append((record, f"processing: {type(exc).__name__}: {exc}"))
                continue
            for name in ("events", "matches", "stored"):
                setattr(total, name, getattr(total, name) + getattr(result, name))
        total.dead_lettered = self._dead_letter_all(dead)
        self._commit()
        log.warning(
            "poisoned batch of %d taken apart: %d stored, %d dead-lettered",
            len(records),
            total.stored,
            total.dead_lettered,
        )
        return total

    def _failed(
        self, records: list[Any], offsets: frozenset[tuple[str, int, int]], exc: Exception
    ) -> None:
        if is_transient(exc):
            attempt = "transient, retried until it passes"
        else:
            count = self.strikes.add(offsets)
            attempt = f"attempt {count} of {self.policy.poison_attempts}"
        log.exception(
            "batch of %d failed (%s); rewinding and retrying in %.1fs",
            len(records),
            attempt,
            self.policy.retry_backoff_seconds,
        )
        self._rewind(records)
        self.processor.triggers.expire()
        close_old_connections()

    def _commit(self) -> None:
        try:
            self.consumer.commit()
        except CommitFailedError:
            log.warning("offset commit failed after a rebalance; the new owner will replay")

    def _dead_letter_all(self, dead: list[tuple[Any, str]]) -> int:
        """Send each record to the dead-letter topic and wait for every acknowledgement."""
        futures = [self._dead_letter(record, reason) for record, reason in dead]
        for future in futures:
            future.get(timeout=10)
        return len(futures)

    def _dead_letter(self, record: Any, reason: str):
        log.warning(
            "dead-lettering %s[%d]@%d: %s", record.topic, record.partition, record.offset, reason
        )
        headers = [
            ("reason", reason.encode()),
            ("source", f"{record.topic}:{record.partition}:{record.offset}".encode()),
        ]
        return self.producer.send(
            self.dlq_topic, key=record.key, value=record.value or b"", headers=headers
        )

    @staticmethod
    def _first_offsets(records: list[Any]) -> frozenset[tuple[str, int, int]]:
        first: dict[tuple[str, int], int] = {}
        for r in records:
            key = (r.topic, r.partition)
            first[key] = min(first.get(key, r.offset), r.offset)
        return frozenset((topic, partition, offset) for (topic, partition), offset in first.items())

    def _rewind(self, records: list[Any]) -> None:
        for topic, partition, offset in self._first_offsets(records):
            self.consumer.seek(TopicPartition(topic, partition), offset)
