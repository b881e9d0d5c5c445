"""``consume_events`` serves its own Prometheus ``/metrics``: the records it processed, its
matches and dead letters, its batch durations, on the real broker; a port that is taken or
impossible stops it with one line."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from tests.servers.worker import subprocess_database_url

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def consume_events(settings, *args: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "manage.py", "consume_events", *args],
        cwd=ROOT,
        env={
            **os.environ,
            "DATABASE_URL": subprocess_database_url(),  # the test's, migrated; not the local one
            "NOTIFLOW_TOPIC_PREFIX": settings.NOTIFLOW_TOPIC_PREFIX,
            **env,
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def counted(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if not sample.labels
    }


def test_the_consumer_counts_what_it_processed_on_its_own_port(client, team, settings):
    now = timezone.now().isoformat()
    batch = [{"event": "signup", "distinct_id": f"u{i}", "timestamp": now} for i in range(8)]
    response = client.post(
        "/api/ingest/", {"api_key": team.api_token, "batch": batch}, content_type="application/json"
    )
    assert response.status_code == 202, response.content

    port = free_port()
    process = consume_events(settings, NOTIFLOW_CONSUMER_METRICS_PORT=str(port))
    try:
        deadline = time.monotonic() + 90
        found: dict[str, float] = {}
        while time.monotonic() < deadline and found.get("notiflow_consumer_events_total") != 8:
            if process.poll() is not None:
                pytest.fail(f"consume_events exited: {process.communicate()}")
            try:
                found = counted(port)
            except OSError:
                pass  # not listening yet
            time.sleep(0.2)
        assert found["notiflow_consumer_events_total"] == 8
        assert found["notiflow_consumer_dead_lettered_total"] == 0
        assert found["notiflow_consumer_batch_duration_seconds_count"] >= 1
        assert "process_cpu_seconds_total" in found
        assert "notiflow_deliveries_total" not in str(found)  # the worker's, not here
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_a_taken_metrics_port_stops_the_consumer_in_one_line(settings):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = consume_events(settings, "--until-idle", "--metrics-port", str(port))
        _, err = process.communicate(timeout=120)
    assert process.returncode == 1
    (line,) = err.strip().splitlines()
    assert line.startswith(f"CommandError: cannot serve metrics on 127.0.0.1:{port} (")
    assert line.endswith("or 0 for none")


@pytest.mark.parametrize("port", ["-1", "65536"])
def test_an_impossible_metrics_port_is_refused_in_one_line(settings, port):
    process = consume_events(settings, "--until-idle", "--metrics-port", port)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 1
    assert err.strip().splitlines() == [
        f"CommandError: --metrics-port {port} must be from 0 to 65535"
    ]


def test_a_taken_metrics_port_is_refused_before_kafka_is_touched(settings):
    """The port is bound first: the refusal is the only line (a Kafka client started before
    it can log its own warnings on a busy machine), and it comes even with no broker."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = consume_events(
            settings, "--metrics-port", str(port), KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1"
        )
        _, err = process.communicate(timeout=120)
    assert process.returncode == 1
    (line,) = err.strip().splitlines()
    assert line.startswith(f"CommandError: cannot serve metrics on 127.0.0.1:{port} (")
