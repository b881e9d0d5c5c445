"""Soak: steady ingestion plus resource edits for minutes, the real consumer as a
subprocess, SIGKILLed and restarted once in the middle.

At the end the consumer group has no lag, every event's notifications are stored exactly
once, the consumers logged no ERROR and no process's memory kept growing. The figures are
printed (run with ``-s``) for docs/reliability.md.

``NOTIFLOW_SOAK_SECONDS`` (default 300) is the ingestion time; ``NOTIFLOW_SOAK_RATE``
(default 60) the events per second, spread over three teams.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
from cryptography.fernet import Fernet
from django.conf import settings
from kafka import KafkaConsumer, TopicPartition

from notifications import stream
from notifications.models import Category, Notification, Outbox
from notifications.stream import TopicName
from tests.factories import InsightFactory, TeamFactory, TriggerFactory
from tests.servers.worker import ROOT, subprocess_database_url
from workspace.activity import acting_as

SOAK_SECONDS = int(os.environ.get("NOTIFLOW_SOAK_SECONDS", "300"))
SOAK_RATE = int(os.environ.get("NOTIFLOW_SOAK_RATE", "60"))
TEAMS = 3
SAMPLE_EVERY = 5.0
# A process's first samples show it importing Django and joining the group, not its
# steady state; they are left out of the memory bound.
WARM_UP_SECONDS = 30.0
# Peak RSS in the second half of a process's samples may exceed the first half's peak by
# this much at most (see docs/reliability.md, "Soak"). The consumers settle near 120 MB, so
# 10 % is 12 MB: a leak of 1.5 KB per event over the ~9,000 events of a half at the default
# rate crosses it; the two measured runs grew by at most 1.1 %.
RSS_GROWTH_LIMIT = 0.10
ERROR_LINE = re.compile(r"\b(ERROR|CRITICAL)\b|Traceback")
RECORD_START = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")
# kafka-python 3.0.12 logs a socket the broker closed at ERROR, with its traceback, and
# reconnects on its own (seen once in a CI soak); lag 0 and the exact store below are what
# say the consumer recovered. Every other error record fails the soak.
CLIENT_SOCKET_CLOSED = re.compile(r"ERROR kafka\.net\.transport .*Error receiving network data")


def error_records(text: str) -> list[str]:
    """The log's error records (a record is a timestamped line and its continuation lines)."""
    records: list[list[str]] = []
    for line in text.splitlines():
        if RECORD_START.match(line) or not records:
            records.append([line])
        else:
            records[-1].append(line)
    return [
        "\n".join(record)
        for record in records
        if any(ERROR_LINE.search(line) for line in record)
        and not CLIENT_SOCKET_CLOSED.search(record[0])
    ]


pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]


@dataclass
class Samples:
    """RSS per process (MB) and consumer lag over time, sampled by a background thread."""

    rss: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    lag: list[tuple[float, int]] = field(default_factory=list)

    def add_rss(self, name: str, at: float, pid: int) -> None:
        try:
            mb = psutil.Process(pid).memory_info().rss / 2**20
        except psutil.NoSuchProcess:
            return
        self.rss.setdefault(name, []).append((at, mb))


def consumer_lag(admin, ends_reader: KafkaConsumer, partitions: list[TopicPartition]) -> int:
    """End offsets minus the group's committed offsets, over every partition."""
    group = stream.consumer_group()
    committed = admin.list_group_offsets({group: partitions}).get(group, {})
    ends = ends_reader.end_offsets(partitions)
    return sum(
        ends[tp] - (max(committed[tp].offset, 0) if tp in committed else 0) for tp in partitions
    )


def start_consumer(log_path: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": subprocess_database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "NOTIFLOW_TOPIC_PREFIX": settings.NOTIFLOW_TOPIC_PREFIX,
        "DJANGO_DEBUG": "0",  # which refuses the development keys: give it its own
        "DJANGO_SECRET_KEY": "notiflow-soak-test-secret-key",
        "NOTIFLOW_SECRETS_KEYS": Fernet.generate_key().decode(),
    }
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "manage.py", "consume_events"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def second_half_growth(samples: list[tuple[float, float]], born: float) -> float:
    """Peak RSS of the second half of the samples over the peak of the first half, minus 1,
    leaving out the warm-up of a process started at ``born``."""
    values = [mb for at, mb in samples if at - born >= WARM_UP_SECONDS]
    half = len(values) // 2
    return max(values[half:]) / max(values[:half]) - 1


@pytest.mark.timeout(SOAK_SECONDS + 600)
def test_soak_with_a_consumer_restart_ends_with_no_lag_no_duplicates_and_flat_memory(
    member_of, api_client, tmp_path
):
    teams = [TeamFactory() for _ in range(TEAMS)]
    subscribers = {team.pk: [member_of(team), member_of(team)] for team in teams}
    for team in teams:
        TriggerFactory(
            team=team,
            owner=subscribers[team.pk][0],
            config={
                "event": "soak_event",
                "filters": [{"property": "amount", "operator": "gt", "value": 50}],
            },
            subscribers=subscribers[team.pk],
        )
    owners = {team.pk: member_of(team) for team in teams}
    editors = {team.pk: member_of(team) for team in teams}
    insights = [
        InsightFactory(team=team, created_by=owners[team.pk], name=f"Soak {team.pk}-{i}")
        for team in teams
        for i in range(5)
    ]
    stream.ensure_topics()
    events_topic = stream.topic(TopicName.EVENTS)
    partitions = [
        TopicPartition(events_topic, p) for p in range(settings.NOTIFLOW_TOPIC_PARTITIONS)
    ]

    logs = [tmp_path / "consumer-1.log", tmp_path / "consumer-2.log"]
    consumer = start_consumer(logs[0])
    processes = {"pytest (ingest, relay)": os.getpid(), "consumer 1": consumer.pid}
    born = {"pytest (ingest, relay)": -WARM_UP_SECONDS, "consumer 1": 0.0}
    samples = Samples()
    started = time.monotonic()
    sampling = threading.Event()
    admin = stream.build_admin()
    ends_reader = KafkaConsumer(bootstrap_servers=stream.bootstrap_servers(), group_id=None)
    kafka_clients = threading.Lock()

    def lag() -> int:
        with kafka_clients:
            return consumer_lag(admin, ends_reader, partitions)

    def sample() -> None:
        while not sampling.wait(SAMPLE_EVERY):
            at = time.monotonic() - started
            for name, pid in list(processes.items()):
                samples.add_rss(name, at, pid)
            samples.lag.append((at, lag()))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()

    expected: set[tuple[uuid.UUID, int]] = set()
    per_team = max(1, SOAK_RATE // TEAMS)
    ingested = edits = 0
    restarted_at = None
    tick = 0
    try:
        while time.monotonic() - started < SOAK_SECONDS:
            for team in teams:
                batch = []
                for _ in range(per_team):
                    event_id = uuid.uuid4()
                    amount = ingested % 100
                    batch.append(
                        {
                            "event": "soak_event",
                            "distinct_id": f"user-{ingested % 500}",
                            "uuid": str(event_id),
                            "properties": {"amount": amount},
                        }
                    )
                    if amount > 50:
                        expected.update((event_id, user.pk) for user in subscribers[team.pk])
                    ingested += 1
                response = api_client.post(
                    "/api/ingest/", {"api_key": team.api_token, "batch": batch}, format="json"
                )
                assert response.status_code == 202, response.content
            if tick % 2 == 0:
                insight = insights[(tick // 2) % len(insights)]
                with acting_as(editors[insight.team_id]):
                    insight.name = f"Soak {insight.team_id} edit {tick}"
                    insight.save()
                edits += 1
            if restarted_at is None and time.monotonic() - started >= SOAK_SECONDS / 2:
                consumer.send_signal(signal.SIGKILL)
                consumer.wait(timeout=10)
                restarted_at = time.monotonic() - started
                consumer = start_consumer(logs[1])
                processes["consumer 2"] = consumer.pid
                born["consumer 2"] = restarted_at
                del processes["consumer 1"]
            tick += 1
            time.sleep(max(0.0, started + tick - time.monotonic()))
        ingest_seconds = time.monotonic() - started

        deadline = time.monotonic() + 300
        while lag() and time.monotonic() < deadline:
            time.sleep(1)
        drained_after = time.monotonic() - started - ingest_seconds
        final_lag = lag()
    finally:
        sampling.set()
        sampler.join(timeout=30)
        consumer.send_signal(signal.SIGTERM)
        consumer.wait(timeout=60)
        ends_reader.close()
        admin.close()

    edited = set(
        Outbox.objects.filter(payload__properties__action="updated").values_list(
            "event_id", flat=True
        )
    )
    alerts = Notification.objects.filter(category=Category.ALERT)
    activity = Notification.objects.filter(category=Category.ACTIVITY)
    stored = set(alerts.values_list("event_id", "recipient_id"))
    error_lines = [record for path in logs for record in error_records(path.read_text())]
    growth = {name: second_half_growth(rss, born[name]) for name, rss in samples.rss.items()}

    print(f"\nsoak: {ingest_seconds:.0f} s, {ingested} events ingested, {edits} edits")
    print(f"consumer SIGKILLed and restarted at {restarted_at:.0f} s")
    print(f"lag 0 again {drained_after:.0f} s after ingestion stopped; final lag {final_lag}")
    print(f"alert notifications {alerts.count()} (expected {len(expected)})")
    print(f"activity notifications {activity.count()} (expected {len(edited)})")
    print("lag samples (s, events): " + ", ".join(f"{t:.0f}:{n}" for t, n in samples.lag))
    for name, rss in samples.rss.items():
        print(
            f"RSS {name} (s, MB): "
            + ", ".join(f"{t:.0f}:{mb:.0f}" for t, mb in rss)
            + f"; second-half growth {growth[name]:+.1%}"
        )
    print(f"error lines in consumer logs: {len(error_lines)}")

    assert final_lag == 0
    assert alerts.count() == len(stored) == len(expected)
    assert stored == expected
    assert activity.count() == len(edited) == edits
    assert set(activity.values_list("event_id", flat=True)) == edited
    assert error_lines == []
    assert all(g <= RSS_GROWTH_LIMIT for g in growth.values()), growth
