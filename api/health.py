"""What ``/api/health/`` reports: the three services notiflow stands on, each ``ok`` or the
error, and whether the pipeline keeps up — the consumer's lag, the outbox and the deliveries
waiting for a worker — against the ``NOTIFLOW_HEALTH_*`` thresholds.

``status`` is ``down`` when a service does not answer (HTTP 503: this process cannot work),
``degraded`` when every service answers but a figure is over its threshold (HTTP 200, with a
reason per figure: the pipeline is behind, not broken), else ``ok``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import redis
from django.conf import settings
from django.db import connection
from django.db.models import Count, Min, Q
from django.db.models.functions import Coalesce
from django.utils import timezone
from kafka import TopicPartition
from kafka.admin import OffsetSpec

from notifications import stream
from notifications.models import Delivery, DeliveryStatus, Outbox
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


def check_kafka() -> None:
    stream.require_broker()  # a down broker answers in seconds, not the client's 30 s
    admin = stream.build_admin()
    try:
        admin.list_topics()
    finally:
        admin.close()


CHECKS: dict[str, Callable[[], None]] = {
    "database": check_database,
    "redis": check_redis,
    "kafka": check_kafka,
}


def service_health() -> dict[str, str]:
    results = {}
    for name, check in CHECKS.items():
        try:
            check()
        except Exception as exc:  # the health page reports every failure as text
            results[name] = f"error: {exc.__class__.__name__}: {exc}".strip()
        else:
            results[name] = "ok"
    return results


def consumer_lag() -> int:
    """Events on the events topic that group ``consume_events`` has not committed past: each
    partition's end offset minus the group's committed one (a partition it never committed
    counts from its earliest offset, where the consumer would start)."""
    admin = stream.build_admin()
    try:
        name = stream.topic(TopicName.EVENTS)
        (described,) = admin.describe_topics([name])
        partitions = [TopicPartition(name, p["partition_index"]) for p in described["partitions"]]
        if not partitions:  # not created yet: nothing was published
            return 0
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
        return sum(max(0, end[tp].offset - committed[tp]) for tp in partitions)
    finally:
        admin.close()


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
    due = Q(next_retry_at__isnull=True) | Q(next_retry_at__lte=now)
    oldest = Delivery.objects.filter(due, status=DeliveryStatus.QUEUED).aggregate(
        oldest=Min(Coalesce("next_retry_at", "created_at"))
    )["oldest"]
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


def pipeline_figures(services: dict[str, str]) -> tuple[dict[str, float | None], list[str]]:
    """Each figure, or None when the service it is read from is down or the reading failed
    (then with the error as a reason)."""
    now = timezone.now()
    figures: dict[str, float | None] = dict.fromkeys(FIGURE_HELP)
    errors: list[str] = []
    try:
        if services["kafka"] == "ok":
            figures["consumer_lag"] = consumer_lag()
    except Exception as exc:  # reported, never a 500 from the health page
        errors.append(f"consumer lag unreadable: {exc.__class__.__name__}: {exc}")
    if services["database"] == "ok":
        figures["outbox_backlog"], figures["outbox_oldest_seconds"] = outbox_figures(now)
        figures["delivery_oldest_due_seconds"] = oldest_due_delivery_age(now)
    return figures, errors


def health() -> tuple[dict, bool]:
    """The report, and whether every service answers."""
    services = service_health()
    down = [f"{name}: {result}" for name, result in services.items() if result != "ok"]
    figures, unreadable = pipeline_figures(services)
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
    }
    return report, not down
