"""Every Prometheus metric notiflow's processes record, in one place (names and labels
follow Prometheus' conventions; no label takes a per-user, per-team or per-trigger value).

Two kinds:

- **Counted where it happens** (this module's counters and histograms): the consumer's
  events, matches, dead letters and batch durations, each delivery's and digest's outcome,
  each digest run. With ``PROMETHEUS_MULTIPROC_DIR`` set (``scripts/dev`` sets it for the web
  process and the Celery worker, whose prefork children each write their own file) the web
  process's ``/metrics`` adds them up across processes; the consumer serves its own on
  ``NOTIFLOW_CONSUMER_METRICS_PORT``.
- **Read from the database and Kafka at scrape time** (:mod:`api.metrics`): lag, backlogs,
  the oldest waiting rows, open roll-up windows, disabled destinations. They are state, not
  events, and every process would report the same figure.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from django.conf import settings
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    start_http_server,
)
from prometheus_client.core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

disable_created_metrics()  # a counter's start time is the process's; no *_created series

CONSUMER = CollectorRegistry()
"""The consumer's own, served only on its port: the web and worker processes never show
them as zeros of their own."""

CONSUMER_EVENTS = Counter(
    "notiflow_consumer_events",
    "Records the consumer processed: events (matched or not) and dead letters.",
    registry=CONSUMER,
)
CONSUMER_MATCHES = Counter(
    "notiflow_consumer_matches",
    "Trigger matches the consumer found (one event can match several triggers).",
    registry=CONSUMER,
)
CONSUMER_DEAD_LETTERED = Counter(
    "notiflow_consumer_dead_lettered",
    "Records the consumer sent to the dead-letter topic.",
    registry=CONSUMER,
)
CONSUMER_BATCH_SECONDS = Histogram(
    "notiflow_consumer_batch_duration_seconds",
    "Time to process one polled batch, from decode to the database commit.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=CONSUMER,
)
DELIVERIES = Counter(
    "notiflow_deliveries",
    "Delivery attempts by channel and outcome (sent, retry, failed, skipped, held).",
    ["channel", "outcome"],
)
DIGESTS = Counter(
    "notiflow_digests",
    "Digests sent, retrying, failed, skipped or empty after a send, by period and channel.",
    ["period", "channel", "outcome"],
)
DIGEST_RUNS = Counter(
    "notiflow_digest_runs",
    "Digest runs finished, by period.",
    ["period"],
)
DIGEST_RUN_SECONDS = Histogram(
    "notiflow_digest_run_duration_seconds",
    "Time a digest run took, build and send, by period.",
    ["period"],
    buckets=(0.1, 0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 900.0, 3600.0),
)
DIGESTS_BUILT = Counter(
    "notiflow_digests_built",
    "Digests a run built (one per user, channel and window), by period.",
    ["period"],
)


# What a delivery's or digest's status after an attempt is called as an outcome: ``queued``
# again means it waits for a retry.
OUTCOMES = {
    "sent": "sent",
    "queued": "retry",
    "failed": "failed",
    "skipped": "skipped",
    "held": "held",
    "empty": "empty",
}


def count_delivery(channel: str, status: str) -> None:
    """One delivery attempt and the status it left the delivery in."""
    DELIVERIES.labels(channel=channel, outcome=OUTCOMES[status]).inc()


def count_digest_run(period: str, seconds: float, built: int, sent: Iterable[Any]) -> None:
    """A finished digest run: its time, the digests it built and each one it sent (or tried
    to: ``channel`` and ``status`` of each)."""
    DIGEST_RUNS.labels(period=period).inc()
    DIGEST_RUN_SECONDS.labels(period=period).observe(seconds)
    DIGESTS_BUILT.labels(period=period).inc(built)
    for digest in sent:
        DIGESTS.labels(period=period, channel=digest.channel, outcome=OUTCOMES[digest.status]).inc()


CONSUMER_NAMES = frozenset(family.name for family in CONSUMER.collect())


class SharedCounts(Collector):
    """Every process's files in ``directory`` but the consumer's counters: each process that
    imports this module writes them (at 0), and the consumer serves the real ones itself."""

    def __init__(self, directory: str) -> None:
        self.directory = directory

    def collect(self) -> Iterator[Metric]:
        for family in MultiProcessCollector(None, path=self.directory).collect():
            if family.name not in CONSUMER_NAMES:
                yield family


def process_registry() -> CollectorRegistry:
    """What this process reports as counted: every process's files when
    ``PROMETHEUS_MULTIPROC_DIR`` is set, else this process's own counters."""
    if directory := settings.PROMETHEUS_MULTIPROC_DIR:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(SharedCounts(directory))
        return registry
    return REGISTRY


def serve_consumer(port: int, host: str = "127.0.0.1") -> None:
    """The consumer's ``/metrics`` on ``host:port`` (a daemon thread): its counters and
    this process's own figures (CPU, memory). Raises ``OSError`` when the port is taken."""
    from prometheus_client import PROCESS_COLLECTOR

    CONSUMER.register(PROCESS_COLLECTOR)
    start_http_server(port, addr=host, registry=CONSUMER)


def count_batch(result: Any, seconds: float) -> None:
    """A batch the consumer committed: its events (dead letters included), matches and
    dead letters, and how long it took."""
    CONSUMER_EVENTS.inc(result.events + result.dead_lettered)
    CONSUMER_MATCHES.inc(result.matches)
    CONSUMER_DEAD_LETTERED.inc(result.dead_lettered)
    CONSUMER_BATCH_SECONDS.observe(seconds)
