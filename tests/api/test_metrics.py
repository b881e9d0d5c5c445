"""``GET /metrics`` on the real services: the Prometheus text format, the pipeline's state
read at scrape time (the same reading as /api/health/), what the processes counted — added
up across processes with ``PROMETHEUS_MULTIPROC_DIR`` — and no label that names a person, a
team or a trigger."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from digests.models import Digest
from notifications.models import ChannelConfig, Delivery, DeliveryStatus, Outbox, RollupWindow
from tests.factories import TriggerFactory

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def scrape(client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def test_the_pipeline_state_is_read_at_scrape_time(client, team, member_of, api_client):
    now = timezone.now().isoformat()
    batch = [
        {"event": "checkout_error", "distinct_id": f"u{i}", "timestamp": now} for i in range(7)
    ]
    ingested = client.post(
        "/api/ingest/", {"api_key": team.api_token, "batch": batch}, content_type="application/json"
    )
    assert ingested.status_code == 202, ingested.content
    ada = member_of(team)
    api_client.force_authenticate(ada)
    assert (
        api_client.post("/api/insights/", {"team": team.pk, "name": "Revenue"}).status_code == 201
    )
    Outbox.objects.update(created_at=timezone.now() - timedelta(minutes=2))

    trigger = TriggerFactory(team=team, owner=ada)
    for key, state in [
        ("a", DeliveryStatus.QUEUED),
        ("b", DeliveryStatus.QUEUED),
        ("c", DeliveryStatus.HELD),
        ("d", DeliveryStatus.SENT),
    ]:
        Delivery.objects.create(
            idempotency_key=key, channel="slack", destination="#alerts", team=team, status=state
        )
    Delivery.objects.filter(idempotency_key="b").update(
        next_retry_at=timezone.now() + timedelta(minutes=5)
    )
    moment = timezone.now()
    RollupWindow.objects.create(
        trigger=trigger,
        channel="slack",
        destination="#alerts",
        opened_at=moment,
        closes_at=moment,
        hard_close_at=moment,
        first_event_at=moment,
        last_event_at=moment,
    )
    ChannelConfig.objects.create(
        organization=team.organization,
        type="webhook",
        name="ops",
        enabled=False,
        disabled_reason="10 failures in a row",
    )
    Digest.objects.create(
        digest_key="k",
        user=ada,
        channel="email",
        period="daily",
        window_start=moment,
        window_end=moment,
    )

    found = scrape(client)
    assert {
        service: found[("notiflow_up", (("service", service),))]
        for service in ("database", "redis", "kafka")
    } == {"database": 1.0, "redis": 1.0, "kafka": 1.0}
    lag = {
        labels: v for (name, labels), v in found.items() if name == "notiflow_consumer_lag_events"
    }
    assert sum(lag.values()) == 7 and len(lag) == 4  # one series per partition
    assert found[("notiflow_outbox_backlog_rows", ())] == 1
    assert 120 <= found[("notiflow_outbox_oldest_age_seconds", ())] < 180
    unfinished = "notiflow_deliveries_unfinished"
    assert found[(unfinished, (("channel", "slack"), ("status", "queued")))] == 2
    assert found[(unfinished, (("channel", "slack"), ("status", "held")))] == 1
    assert not any(n == unfinished and ("status", "sent") in labels for n, labels in found)
    assert found[("notiflow_delivery_retries_waiting", (("channel", "slack"),))] == 1
    assert found[("notiflow_rollup_windows_open", ())] == 1
    assert found[("notiflow_destinations_disabled", (("type", "webhook"),))] == 1
    assert found[("notiflow_digests_unfinished", (("period", "daily"), ("status", "queued")))] == 1


def test_a_service_down_is_up_0_and_its_figures_are_absent_not_0(client, settings):
    settings.KAFKA_BOOTSTRAP_SERVERS = "127.0.0.1:1"
    found = scrape(client)
    assert found[("notiflow_up", (("service", "kafka"),))] == 0
    assert found[("notiflow_up", (("service", "database"),))] == 1
    assert not any(name == "notiflow_consumer_lag_events" for name, _ in found)
    assert ("notiflow_outbox_backlog_rows", ()) in found


def test_a_scrape_within_a_few_seconds_of_a_health_check_reads_nothing_again(client):
    """One reading serves /api/health/ and /metrics: a scrape right after a health check
    runs no query and opens no Kafka client."""
    assert client.get("/api/health/").status_code == 200
    with CaptureQueriesContext(connection) as captured:
        scrape(client)
    assert [q["sql"] for q in captured.captured_queries if "SAVEPOINT" not in q["sql"]] == []


def test_no_label_names_a_person_a_team_or_a_trigger(client, team):
    allowed = {
        "service",
        "partition",
        "channel",
        "status",
        "type",
        "period",
        "outcome",
        "le",
        "generation",
        "implementation",
        "major",
        "minor",
        "patchlevel",
        "version",
    }
    labels = {key for _, pairs in scrape(client) for key, _ in pairs}
    assert labels <= allowed


def count_a_delivery_in_another_process(directory, channel: str) -> None:
    """A worker process that sent one delivery on ``channel``, counting into ``directory``."""
    script = textwrap.dedent(
        f"""
        import django, os
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
        django.setup()
        from notifications import metrics
        metrics.DELIVERIES.labels(channel={channel!r}, outcome="sent").inc()
        """
    )
    subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)},
        check=True,
        timeout=60,
    )


def test_with_a_multiprocess_directory_every_process_counts_into_one_answer(
    client, settings, tmp_path
):
    """Two worker processes each record a sent Slack delivery; the web's /metrics says 2."""
    for _ in range(2):
        count_a_delivery_in_another_process(tmp_path, "slack")
    settings.PROMETHEUS_MULTIPROC_DIR = str(tmp_path)
    found = scrape(client)
    assert found[("notiflow_deliveries_total", (("channel", "slack"), ("outcome", "sent")))] == 2


def test_the_dashboard_and_the_readme_name_only_metrics_notiflow_has():
    """A renamed metric must not leave a dashboard panel or a README row reading nothing."""
    import re
    from pathlib import Path

    from prometheus_client import REGISTRY

    from api.metrics import COUNTS, FIGURES
    from notifications import metrics

    root = Path(__file__).resolve().parents[2]
    known = {"notiflow_up", "notiflow_consumer_lag_events"}
    known |= {name for name, _ in FIGURES.values()} | {name for name, _, _ in COUNTS.values()}
    for registry in (REGISTRY, metrics.CONSUMER):
        for family in registry.collect():
            known |= {sample.name for sample in family.samples} | {family.name}
            known |= {family.name + "_total"}
    named = set()
    for path in ("docs/grafana-dashboard.json", "README.md"):
        named |= set(re.findall(r"notiflow_[a-z_]+", (root / path).read_text()))
    named = {re.sub(r"_(bucket|count|sum)$", "", name) for name in named}
    assert named - {re.sub(r"_(bucket|count|sum)$", "", k) for k in known} == set()


def test_the_consumers_counters_are_not_served_by_the_web(client, settings, tmp_path):
    """Every process that imports the metrics writes its counters' files in multi-process
    mode, the consumer's included (at 0): the web's /metrics must not serve those zeros
    beside the consumer's own port, where the real counts are."""
    count_a_delivery_in_another_process(tmp_path, "email")
    settings.PROMETHEUS_MULTIPROC_DIR = str(tmp_path)
    names = {name for name, _ in scrape(client)}
    assert "notiflow_deliveries_total" in names
    consumer = {n for n in names if n.startswith("notiflow_consumer_")}
    assert consumer <= {"notiflow_consumer_lag_events"}  # the pipeline's, read from Kafka
