"""Kafka plumbing: topic names, producers and consumers built from settings, topic creation.

Topic names come only from :func:`topic` (``<NOTIFLOW_TOPIC_PREFIX>.<name>``), so a test
run with its own prefix never collides with another. Settings are read at call time.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import F
from django.utils import timezone
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaConnectionError, KafkaError, TopicAlreadyExistsError

from notifications.events import Event, from_dict
from notifications.models import Outbox, trigger_revision

log = logging.getLogger(__name__)


class TopicName(StrEnum):
    EVENTS = "events"
    EVENTS_DLQ = "events.dlq"


CONSUMER_GROUP = "consume_events"

TRIGGER_REVISION_HEADER = "trigger-revision"
"""Record header: the trigger revision committed when the event was published. The
consumer evaluates the event against triggers at least that new (``TriggerCache``)."""


def consumer_group() -> str:
    """``consume_events`` for the default prefix; otherwise one group per prefix, so test
    runs and the local service never join (and rebalance) each other's group."""
    prefix = settings.NOTIFLOW_TOPIC_PREFIX
    return CONSUMER_GROUP if prefix == "notiflow" else f"{prefix}.{CONSUMER_GROUP}"


def topic(name: TopicName) -> str:
    return f"{settings.NOTIFLOW_TOPIC_PREFIX}.{name}"


def bootstrap_servers() -> list[str]:
    return [s.strip() for s in settings.KAFKA_BOOTSTRAP_SERVERS.split(",") if s.strip()]


@dataclass(frozen=True)
class ProducerPolicy:
    """How hard a producer tries before a send counts as failed."""

    acks: str | int = "all"
    linger_ms: int = 5
    retries: int = 5
    request_timeout_ms: int = 10_000
    max_block_ms: int = 10_000
    bootstrap_timeout_ms: int = 10_000


DURABLE = ProducerPolicy()


def require_broker(timeout: float = 3.0) -> None:
    """Fail fast with :class:`KafkaConnectionError` when no bootstrap server accepts a TCP
    connection, instead of the client's own long, noisy bootstrap retries."""
    errors = []
    for server in bootstrap_servers():
        host, _, port = server.rpartition(":")
        try:
            socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout).close()
        except (OSError, ValueError) as exc:
            errors.append(f"{server}: {exc}")
        else:
            return
    raise KafkaConnectionError("no broker answers (" + "; ".join(errors) + ")")


def build_producer(policy: ProducerPolicy = DURABLE, **overrides: Any) -> KafkaProducer:
    """A producer whose sends are acknowledged by the broker (``acks=all``, idempotent)."""
    return KafkaProducer(
        bootstrap_servers=bootstrap_servers(),
        client_id="notiflow-producer",
        acks=policy.acks,
        linger_ms=policy.linger_ms,
        retries=policy.retries,
        request_timeout_ms=policy.request_timeout_ms,
        max_block_ms=policy.max_block_ms,
        bootstrap_timeout_ms=policy.bootstrap_timeout_ms,
        enable_idempotence=True,
        **overrides,
    )


def build_consumer(*topics: str, group_id: str | None = None, **overrides: Any) -> KafkaConsumer:
    """A group consumer that never commits on its own: the caller commits after its DB commit."""
    options: dict[str, Any] = {
        "bootstrap_servers": bootstrap_servers(),
        "group_id": group_id or consumer_group(),
        "client_id": "notiflow-consumer",
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "max_poll_records": 500,
        # A crashed consumer's partitions move to the others after 10 s instead of the
        # client's 45 s default; the heartbeat thread keeps a long batch alive meanwhile.
        "session_timeout_ms": 10_000,
        "heartbeat_interval_ms": 3_000,
    }
    options.update(overrides)
    return KafkaConsumer(*topics, **options)


def build_admin() -> KafkaAdminClient:
    """An admin client whose bootstrap, like each request, gives up after 10 s (the client's
    own 30 s bootstrap kept /api/health/ waiting past its lease on a hung broker)."""
    return KafkaAdminClient(
        bootstrap_servers=bootstrap_servers(),
        client_id="notiflow-admin",
        request_timeout_ms=10_000,
        bootstrap_timeout_ms=10_000,
    )


def ensure_topics(names: Iterable[TopicName] = tuple(TopicName)) -> list[str]:
    """Create the named topics if missing; return the full names of those created."""
    admin = build_admin()
    try:
        existing = set(admin.list_topics())
        wanted = [
            NewTopic(
                name=topic(n),
                num_partitions=settings.NOTIFLOW_TOPIC_PARTITIONS,
                replication_factor=1,
            )
            for n in names
            if topic(n) not in existing
        ]
        if not wanted:
            return []
        try:
            admin.create_topics(wanted, raise_errors=True, wait_for_metadata=True)
        except TopicAlreadyExistsError:
            pass
        return [t.name for t in wanted]
    finally:
        admin.close()


class PublishFailed(Exception):
    """Kafka did not acknowledge every message of a publish; the caller must not assume any."""


_shared: dict[str, KafkaProducer] = {}
_shared_lock = threading.Lock()


def shared_producer() -> KafkaProducer:
    """One producer per process and bootstrap address, built on first use (after fork);
    threads of one process (gunicorn's gthread workers) share it."""
    key = settings.KAFKA_BOOTSTRAP_SERVERS
    producer = _shared.get(key)
    if producer is None:
        with _shared_lock:
            producer = _shared.get(key)
            if producer is None:
                require_broker()
                producer = _shared[key] = build_producer()
    return producer


def reset_shared_producer() -> None:
    """Drop the cached producer so the next publish reconnects from scratch."""
    producers = list(_shared.values())
    _shared.clear()
    for producer in producers:
        try:
            producer.close(timeout=1)
        except KafkaError as exc:  # closing a producer cut off from its broker times out
            log.info("dropped a Kafka producer that could not flush: %s", exc)


def publish_events(events: Iterable[Event], *, timeout: float = 10.0) -> int:
    """Send events to the events topic keyed by team and wait for every acknowledgement.

    Each record carries the trigger revision read just before sending: a trigger change
    that committed before this call is then visible to the consumer before the event is
    evaluated, whichever consumer instance reads it and however fresh its cache is.

    Raises :class:`PublishFailed` if Kafka is unreachable or any send is not acknowledged
    within ``timeout``; in that case some messages may still have been written, which the
    consumer's dedup (event id × trigger × recipient) absorbs when the caller retries.
    """
    name = topic(TopicName.EVENTS)
    try:
        headers = [(TRIGGER_REVISION_HEADER, str(trigger_revision()).encode())]
    except DatabaseError as exc:
        raise PublishFailed(f"trigger revision unreadable: {exc}") from exc
    try:
        producer = shared_producer()
        futures = [
            producer.send(
                name, key=str(event.team_id).encode(), value=event.encode(), headers=headers
            )
            for event in events
        ]
        producer.flush(timeout=timeout)
        for future in futures:
            future.get(timeout=timeout)
    except KafkaError as exc:
        reset_shared_producer()
        raise PublishFailed(f"Kafka at {settings.KAFKA_BOOTSTRAP_SERVERS}: {exc}") from exc
    return len(futures)


@dataclass(frozen=True)
class RelayPolicy:
    batch_size: int = 500
    max_batches: int = 20
    publish_timeout: float = 10.0


RELAY = RelayPolicy()


def relay_outbox(policy: RelayPolicy = RELAY) -> int:
    """Publish unpublished outbox rows in id order, then stamp them; return how many went.

    Rows are locked while they are published so two relays never interleave a team's
    events. If Kafka is down nothing is stamped, the rows keep their order and wait for the
    next run, and :class:`PublishFailed` is raised; a crash between publish and stamp
    publishes them again, which the consumer's dedup by event id absorbs.
    """
    published = 0
    for _ in range(policy.max_batches):
        failure: PublishFailed | None = None
        with transaction.atomic():
            rows = list(
                Outbox.objects.select_for_update()
                .filter(published_at__isnull=True)
                .order_by("id")[: policy.batch_size]
            )
            if not rows:
                break
            ids = [row.id for row in rows]
            try:
                publish_events(
                    (from_dict(row.payload) for row in rows), timeout=policy.publish_timeout
                )
            except PublishFailed as exc:
                failure = exc
                Outbox.objects.filter(id__in=ids).update(
                    attempts=F("attempts") + 1, last_error=str(exc)[:2000]
                )
            else:
                Outbox.objects.filter(id__in=ids).update(published_at=timezone.now(), last_error="")
                published += len(rows)
        if failure is not None:
            raise failure
    return published
