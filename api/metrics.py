"""``GET /metrics``: the Prometheus text format for the web process to be scraped.

Two parts, one answer (``notifications/metrics.py`` says which is which):

- the state of the pipeline, from the same reading as ``/api/health/`` (one reading serves
  every caller for :data:`api.health.CACHE_SECONDS`, so scrapes run no query of their own
  in between): whether each service answers, the consumer lag per partition, the outbox
  backlog and its oldest row's age, the oldest due delivery's wait, unfinished deliveries
  and digests, retries waiting, open roll-up windows, disabled destinations;
- what the processes counted: the web process's own, or with ``PROMETHEUS_MULTIPROC_DIR``
  every web and worker process's, added up.

A figure whose service is down is left out (absent, not 0), and ``notiflow_up`` says which
service it was.
"""

from __future__ import annotations

from collections.abc import Iterator

from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from api import health
from notifications import metrics

FIGURES = {
    "outbox_backlog": ("notiflow_outbox_backlog_rows", "Outbox rows not yet published to Kafka."),
    "outbox_oldest_seconds": (
        "notiflow_outbox_oldest_age_seconds",
        "Age of the oldest outbox row not yet published (0 when none).",
    ),
    "delivery_oldest_due_seconds": (
        "notiflow_delivery_oldest_due_age_seconds",
        "How long the longest-waiting due delivery has waited for a worker (0 when none).",
    ),
}
COUNTS = {
    "deliveries": (
        "notiflow_deliveries_unfinished",
        "Deliveries queued, sending or held, by channel and status.",
        ["channel", "status"],
    ),
    "retrying": (
        "notiflow_delivery_retries_waiting",
        "Queued deliveries waiting for their retry time, by channel.",
        ["channel"],
    ),
    "rollup_windows_open": ("notiflow_rollup_windows_open", "Roll-up windows still open.", []),
    "destinations_disabled": (
        "notiflow_destinations_disabled",
        "Organization destinations disabled after repeated failures, by type.",
        ["type"],
    ),
    "digests": (
        "notiflow_digests_unfinished",
        "Digests built and not yet sent (queued or sending), by period and status.",
        ["period", "status"],
    ),
}


class PipelineCollector(Collector):
    """The pipeline's state at scrape time, from :func:`api.health.cached_reading`."""

    def collect(self) -> Iterator[Metric]:
        reading = health.cached_reading()
        up = GaugeMetricFamily(
            "notiflow_up", "1 when the service answers, else 0.", labels=["service"]
        )
        for service, failure in reading["failures"].items():
            up.add_metric([service], 0.0 if failure else 1.0)
        yield up
        if reading["figures"]["consumer_lag"] is not None:
            lag = GaugeMetricFamily(
                "notiflow_consumer_lag_events",
                "Events on the events topic the consumer group has not committed past, "
                "by partition.",
                labels=["partition"],
            )
            for partition, behind in sorted(reading["lag_by_partition"].items()):
                lag.add_metric([str(partition)], behind)
            yield lag
        for figure, (name, documentation) in FIGURES.items():
            if (value := reading["figures"][figure]) is not None:
                yield GaugeMetricFamily(name, documentation, value=value)
        for key, (name, documentation, labels) in COUNTS.items():
            if key not in reading["counts"]:
                continue
            family = GaugeMetricFamily(name, documentation, labels=labels)
            for values, count in reading["counts"][key]:
                family.add_metric(list(values), count)
            yield family


@transaction.non_atomic_requests  # answers while the database does not (as /api/health/)
@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    pipeline = CollectorRegistry(auto_describe=False)
    pipeline.register(PipelineCollector())
    body = generate_latest(pipeline) + generate_latest(metrics.process_registry())
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)
