"""What ``/api/health/`` reports: the three services notiflow stands on, each ``ok`` or the
error (its text for staff only), and whether the pipeline keeps up — the consumer's lag, the
outbox and the deliveries waiting for a worker — against the ``NOTIFLOW_HEALTH_*`` thresholds.

``status`` is ``down`` when a service does not answer (HTTP 503: this process cannot work),
``degraded`` when every service answers but a figure is over its threshold (HTTP 200, with a
reason per figure: the pipeline is behind, not broken), else ``ok``.

One reading serves every caller for :data:`CACHE_SECONDS` (in the shared cache), so a load
balancer's polling or a flood of requests opens no Kafka client and runs no query per request.
Only staff see a failure's exception text; everyone else sees which service, not why.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import closing, suppress
from dataclasses import dataclass
from datetime import datetime

import redis
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.models import Count, Min
from django.db.models.functions import Coalesce
from django.utils import timezone
from kafka import TopicPartition
from kafka.admin import KafkaAdminClient, OffsetSpec
from kafka.errors import BrokerResponseError, KafkaError, RequestTimedOutError

from digests.models import Digest, DigestStatus
from notifications import stream
from notifications.delivery import DELIVERIES
from notifications.models import ChannelConfig, Delivery, DeliveryStatus, Outbox, RollupWindow
from notifications.stream import TopicName


def check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def check_redis() -> None:
    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    finally:
        client.close()


SERVICES = ("database", "redis", "kafka")


def _failure(exc: Exception) -> str:
    return f"{exc.__class__.__name__}: {exc}".strip()


def consumer_lag(admin: KafkaAdminClient) -> dict[int, int]:
    """Events on the events topic that group ``consume_events`` has not committed past, per
    partition: its end offset minus the group's committed one (a partition it never
    committed counts from its earliest offset, where the consumer would start)."""
    name = stream.topic(TopicName.EVENTS)
    (described,) = admin.describe_topics([name])
    partitions = [TopicPartition(name, p["partition_index"]) for p in described["partitions"]]
    if not partitions:  # not created yet: nothing was published
        return {}
    end = admin.list_partition_offsets({tp: OffsetSpec.LATEST for tp in partitions})
    group = stream.consumer_group()
    committed = {
        tp: meta.offset
        for tp, meta in admin.list_group_offsets(group).get(group, {}).items()
        if meta.offset >= 0
    }
    never = [tp for tp in partitions if tp not in committed]
    if never:
        earliest = admin.list_partition_offsets({tp: OffsetSpec.EARLIEST for tp in never})
        committed.update({tp: earliest[tp].offset for tp in never})
    return {tp.partition: max(0, end[tp].offset - committed[tp]) for tp in partitions}


# A broker that has just started answers "no coordinator yet" for a second or so while it
# creates its offsets topic; such an answer is asked again, within this budget, before it
# counts as the lag being unreadable.
LAG_RETRY_SECONDS = 5.0
LAG_RETRY_PAUSE = 0.2


def _not_yet(exc: KafkaError) -> bool:
    """The broker answered "not yet" (a coordinator loading or moving): worth asking again.
    Not a timeout or a lost connection, which Kafka calls retriable too: each already cost
    its full wait, and the reading would outlast a load balancer's health check."""
    return (
        isinstance(exc, BrokerResponseError)
        and exc.retriable
        and not isinstance(exc, RequestTimedOutError)
    )


def consumer_lag_settled(admin: KafkaAdminClient) -> dict[int, int]:
    """:func:`consumer_lag`, asking again while the broker answers "not yet" (a
    coordinator that is loading or moving) for up to :data:`LAG_RETRY_SECONDS`."""
    deadline = time.monotonic() + LAG_RETRY_SECONDS
    while True:
        try:
            return consumer_lag(admin)
        except KafkaError as exc:
            if not _not_yet(exc) or time.monotonic() + LAG_RETRY_PAUSE > deadline:
                raise
            time.sleep(LAG_RETRY_PAUSE)


def _age(moment: datetime | None, now: datetime) -> float:
    return round(max(0.0, (now - moment).total_seconds()), 1) if moment else 0.0


def outbox_figures(now: datetime) -> tuple[int, float]:
    """Rows not yet published to Kafka, and the age in seconds of the oldest (0 if none)."""
    pending = Outbox.objects.filter(published_at__isnull=True).aggregate(
        count=Count("id"), oldest=Min("created_at")
    )
    return pending["count"], _age(pending["oldest"], now)


def oldest_due_delivery_age(now: datetime) -> float:
    """How long the longest-waiting queued delivery has been due (since it was created, or
    since its retry time): a delivery waiting for its retry is not late."""
    due = DELIVERIES.due(now)
    oldest = due.aggregate(oldest=Min(Coalesce("next_retry_at", "created_at")))["oldest"]
    return _age(oldest, now)


@dataclass(frozen=True)
class Threshold:
    figure: str
    setting: str
    limit: Callable[[], float]
    says: str  # what is over, formatted with the value

    def reason(self, value: float) -> str | None:
        if value <= self.limit():
            return None
        return f"{self.says.format(value=value)}, over {self.setting}={self.limit()}"


THRESHOLDS = (
    Threshold(
        "consumer_lag",
        "NOTIFLOW_HEALTH_MAX_CONSUMER_LAG",
        lambda: settings.NOTIFLOW_HEALTH_MAX_CONSUMER_LAG,
        "the consumer is {value:,} events behind",
    ),
    Threshold(
        "outbox_oldest_seconds",
        "NOTIFLOW_HEALTH_MAX_OUTBOX_AGE_SECONDS",
        lambda: settings.NOTIFLOW_HEALTH_MAX_OUTBOX_AGE_SECONDS,
        "the oldest unpublished outbox row is {value:,.0f} s old",
    ),
    Threshold(
        "delivery_oldest_due_seconds",
        "NOTIFLOW_HEALTH_MAX_DELIVERY_WAIT_SECONDS",
        lambda: settings.NOTIFLOW_HEALTH_MAX_DELIVERY_WAIT_SECONDS,
        "the oldest due delivery has waited {value:,.0f} s",
    ),
)


FIGURE_HELP = {
    "consumer_lag": "Events on the events topic that the consumer group has not committed "
    "past; null while Kafka is down.",
    "outbox_backlog": "Outbox rows not yet published to Kafka; null while the database is down.",
    "outbox_oldest_seconds": "Age of the oldest unpublished outbox row (0 when there is none).",
    "delivery_oldest_due_seconds": "How long the longest-waiting due delivery has been queued "
    "(0 when none); one waiting for its retry time is not late.",
}


def _attempt(check: Callable[[], object]) -> str | None:
    try:
        check()
    except Exception as exc:  # the health page reports every failure, never a 500
        return _failure(exc)
    return None


def _kafka(figures: dict[str, float | None], lag: dict[int, int]) -> tuple[str | None, str | None]:
    """Whether Kafka answers and, when it does, the consumer lag into ``figures`` (and per
    partition into ``lag``), on one admin client: Kafka's failure and the lag's (each None
    when there is none)."""
    try:
        stream.require_broker()  # a down broker answers in seconds, not the client's 30 s
        admin = stream.build_admin()
    except Exception as exc:
        return _failure(exc), None
    with closing(admin):
        if (failure := _attempt(admin.list_topics)) is not None:
            return failure, None
        try:
            lag.update(consumer_lag_settled(admin))
            figures["consumer_lag"] = sum(lag.values())
        except Exception as exc:
            return None, _failure(exc)
    return None, None


def waiting_counts(now: datetime) -> dict[str, list[tuple[tuple[str, ...], int]]]:
    """What ``/metrics`` reports as state beside the figures, each as (labels, count) rows:
    deliveries not done yet by channel and status, those waiting for their retry time by
    channel, open roll-up windows, disabled destinations by type, digests not sent yet by
    period. Every query reads rows an index narrows to the unfinished ones, never the
    history."""
    unfinished = (DeliveryStatus.QUEUED, DeliveryStatus.SENDING, DeliveryStatus.HELD)
    deliveries = (
        Delivery.objects.filter(status__in=unfinished)
        .values_list("channel", "status")
        .annotate(n=Count("id"))
        .order_by()
    )
    retrying = (
        Delivery.objects.filter(status=DeliveryStatus.QUEUED, next_retry_at__gt=now)
        .values_list("channel")
        .annotate(n=Count("id"))
        .order_by()
    )
    disabled = (
        ChannelConfig.objects.filter(enabled=False)
        .values_list("type")
        .annotate(n=Count("id"))
        .order_by()
    )
    digests = (
        Digest.objects.filter(status__in=(DigestStatus.QUEUED, DigestStatus.SENDING))
        .values_list("period", "status")
        .annotate(n=Count("id"))
        .order_by()
    )
    windows = RollupWindow.objects.filter(status=RollupWindow.Status.OPEN).count()
    return {
        "deliveries": [((channel, state), n) for channel, state, n in deliveries],
        "retrying": [((channel,), n) for channel, n in retrying],
        "rollup_windows_open": [((), windows)],
        "destinations_disabled": [((kind,), n) for kind, n in disabled],
        "digests": [((period, state), n) for period, state, n in digests],
    }


def read() -> dict:
    """One reading of every service and figure: ``failures`` per service (None when it
    answers), the lag's own failure, the figures (None when their service is down), the
    lag per partition and the waiting counts (empty when theirs is)."""
    now = timezone.now()
    figures: dict[str, float | None] = dict.fromkeys(FIGURE_HELP)
    lag: dict[int, int] = {}
    failures = {"database": _attempt(check_database), "redis": _attempt(check_redis)}
    failures["kafka"], lag_failure = _kafka(figures, lag)
    counts: dict[str, list[tuple[tuple[str, ...], int]]] = {}
    if failures["database"] is None:
        figures["outbox_backlog"], figures["outbox_oldest_seconds"] = outbox_figures(now)
        figures["delivery_oldest_due_seconds"] = oldest_due_delivery_age(now)
        counts = waiting_counts(now)
    return {
        "checked_at": now,
        "failures": failures,
        "lag_failure": lag_failure,
        "figures": figures,
        "lag_by_partition": lag,
        "counts": counts,
    }


CACHE_SECONDS = 5  # a reading serves every caller, in every process, this long
CACHE_KEY = "notiflow:health:reading"
# One process reads while the others serve the previous reading; the lease outlives a
# reading that waits on one slow service (Redis 2 s, the broker probe 3 s, the admin
# client's bootstrap and each of its requests 10 s).
LEASE_KEY = "notiflow:health:reading:lease"
LEASE_SECONDS = 30


def cached_reading() -> dict:
    """The last reading if younger than :data:`CACHE_SECONDS`, or the previous one while
    another process takes the next; else a new one. When Redis (the cache) does not answer,
    every call reads: the page must still say Redis is down."""
    try:
        last = cache.get(CACHE_KEY)
        fresh = last and (timezone.now() - last["checked_at"]).total_seconds() < CACHE_SECONDS
        if fresh or (last and not cache.add(LEASE_KEY, 1, timeout=LEASE_SECONDS)):
            return last
    except redis.RedisError:
        return read()
    reading = read()
    with suppress(redis.RedisError):  # went down while reading: the reading says so
        cache.set(CACHE_KEY, reading, timeout=CACHE_SECONDS + LEASE_SECONDS)
        cache.delete(LEASE_KEY)
    return reading


def health(*, detailed: bool) -> tuple[dict, bool]:
    """The report, and whether every service answers. Without ``detailed`` a failure is
    named, not quoted: exception text names hosts, users and addresses."""
    reading = cached_reading()
    services = {
        name: "ok" if failure is None else f"error: {failure if detailed else 'unreachable'}"
        for name, failure in reading["failures"].items()
    }
    down = [f"{name}: {result}" for name, result in services.items() if result != "ok"]
    figures = reading["figures"]
    unreadable = []
    if (failure := reading["lag_failure"]) is not None:
        unreadable.append("consumer lag unreadable" + (f": {failure}" if detailed else ""))
    behind = unreadable + [
        reason
        for threshold in THRESHOLDS
        if (value := figures[threshold.figure]) is not None
        and (reason := threshold.reason(value)) is not None
    ]
    report = {
        "status": "down" if down else "degraded" if behind else "ok",
        "reasons": down + behind,
        **services,
        "pipeline": figures,
        "thresholds": {threshold.figure: threshold.limit() for threshold in THRESHOLDS},
        "checked_at": reading["checked_at"],
    }
    return report, not down
