"""``bench/run activity_latency``: a resource saved → the notification visible in the API.

The whole local stack runs as the Procfile runs it, on the benchmark's database, Redis db
and topic prefix: ``gunicorn config.wsgi -w 2`` (the web process; runserver in scripts/dev),
a ``celery -A config worker`` (relays the outbox when the save's transaction commits) and
``manage.py consume_events``. Beat is not started: its 5-second relay only backs up the
nudge, and is not what a user waits for.

Bob edits carol's insight with ``PATCH /api/insights/<id>/`` (token auth), one edit at a
time; the clock starts before the request is sent and stops when carol's
``GET /api/notifications/?unread=true`` first lists the notification of that edit (polled
back to back). The first ``--warmup`` edits are not counted (the consumer's group join).
The database timestamps of each edit split the time into stages: the API request, the
outbox relay (row written → published), Kafka + consumer (published → notification row
stored), and the rest (until carol's poll saw it).

Baseline in the same run: a bare Kafka round trip — one record produced with
``stream.build_producer()`` (acks=all, waited for), polled by ``stream.build_consumer()``
on a topic of its own, one at a time.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from bench import common
from bench.ingest import HOST, Gunicorn

MARK = "Revenue edit {:05d}"


def api(port: int, method: str, path: str, token: str, body: Any = None) -> tuple[int, Any]:
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        headers = {"Authorization": f"Token {token}", "Accept": "application/json"}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=payload, headers=headers)
        response = conn.getresponse()
        data = response.read()
        return response.status, json.loads(data) if data else None
    finally:
        conn.close()


def build_world() -> dict[str, Any]:
    """One org, one team, bob (the editor) and carol (the insight's owner), with tokens."""
    from django.test.utils import override_settings
    from rest_framework.authtoken.models import Token

    from bench.digests import empty_world
    from tests.factories import InsightFactory, MembershipFactory, TeamFactory, UserFactory

    empty_world()
    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        team = TeamFactory()
        bob = UserFactory(username="bob", first_name="Bob", last_name="Editor")
        carol = UserFactory(username="carol", first_name="Carol", last_name="Owner")
    for user in (bob, carol):
        MembershipFactory(user=user, team=team)
    insight = InsightFactory(team=team, created_by=carol, name="Weekly revenue")
    return {
        "insight": insight.pk,
        "bob": Token.objects.create(user=bob).key,
        "carol": Token.objects.create(user=carol).key,
        "carol_id": carol.pk,
    }


def edit_and_wait(port: int, world: dict[str, Any], k: int, timeout: float) -> dict[str, Any]:
    """One edit; returns its timings (perf_counter seconds) and wall-clock start."""
    name = MARK.format(k)
    wall = time.time()
    started = time.perf_counter()
    status, _ = api(
        port, "PATCH", f"/api/insights/{world['insight']}/", world["bob"], {"name": name}
    )
    answered = time.perf_counter()
    if status != 200:
        raise RuntimeError(f"PATCH answered {status}")
    polls = 0
    while time.perf_counter() - started < timeout:
        polls += 1
        status, page = api(port, "GET", "/api/notifications/?unread=true", world["carol"])
        if status == 200 and any(name in item["title"] for item in page["results"]):
            return {
                "k": k,
                "name": name,
                "wall_start": wall,
                "request_s": answered - started,
                "visible_s": time.perf_counter() - started,
                "polls": polls,
            }
    raise RuntimeError(f"edit {k} not visible to carol after {timeout:.0f}s")


def stages(samples: list[dict[str, Any]], carol_id: int) -> dict[str, list[float]]:
    """Per edit, from the database's timestamps: request → outbox row, row → published,
    published → notification stored, stored → seen by carol's poll."""
    from notifications.models import Notification, Outbox

    by_name = {s["name"]: s for s in samples}
    found: dict[str, list[float]] = {"to_outbox": [], "relay": [], "consume": [], "to_seen": []}
    notes = Notification.objects.filter(recipient_id=carol_id, event_id__isnull=False)
    outbox = {
        o.event_id: o for o in Outbox.objects.filter(event_id__in=[n.event_id for n in notes])
    }
    for note in notes:
        sample = next((s for n, s in by_name.items() if n in note.title), None)
        row = outbox.get(note.event_id)
        if sample is None or row is None or row.published_at is None:
            continue
        start = sample["wall_start"]
        seen = start + sample["visible_s"]
        found["to_outbox"].append(_ts(row.created_at) - start)
        found["relay"].append(_ts(row.published_at) - _ts(row.created_at))
        found["consume"].append(_ts(note.created_at) - _ts(row.published_at))
        found["to_seen"].append(seen - _ts(note.created_at))
    return found


def _ts(moment: datetime) -> float:
    return moment.timestamp()


def kafka_round_trips(n: int) -> list[float]:
    """Produce one record (wait for acks=all), poll until it arrives; ``n`` times."""
    from django.conf import settings
    from kafka.admin import NewTopic

    from notifications import stream

    name = f"{settings.NOTIFLOW_TOPIC_PREFIX}.bench-rtt-{uuid.uuid4().hex[:8]}"
    admin = stream.build_admin()
    try:
        admin.create_topics([NewTopic(name=name, num_partitions=1, replication_factor=1)])
        producer = stream.build_producer()
        consumer = stream.build_consumer(name, group_id=f"{name}.group")
        try:
            while not consumer.assignment():
                consumer.poll(timeout_ms=100)
            times = []
            for k in range(n):
                payload = f"rtt-{k}".encode()
                started = time.perf_counter()
                producer.send(name, payload).get(timeout=10)
                got = False
                while not got:
                    for records in consumer.poll(timeout_ms=500).values():
                        got = got or any(r.value == payload for r in records)
                times.append(time.perf_counter() - started)
            return times
        finally:
            producer.close(timeout=5)
            consumer.close()
    finally:
        admin.delete_topics([name])
        admin.close()


def profile_edits(world: dict[str, Any], edits: int) -> None:
    """pyinstrument over ``edits`` edits in-process: the PATCH through Django's test client
    (view, activity log, outbox row, on-commit nudge) and then ``stream.relay_outbox()``,
    what the worker runs when nudged. The consumer's side is ``bench/run consumer``'s."""
    common.use_tools()
    from django.contrib.auth import get_user_model
    from django.test import Client
    from pyinstrument import Profiler

    from bench.consumer import write_profile
    from notifications import stream

    client = Client(SERVER_NAME="127.0.0.1")
    client.force_login(get_user_model().objects.get(username="bob"))
    profiler = Profiler(interval=0.001)
    profiler.start()
    for k in range(edits):
        client.patch(
            f"/api/insights/{world['insight']}/",
            json.dumps({"name": f"Profiled edit {k}"}),
            content_type="application/json",
        )
        stream.relay_outbox()
    profiler.stop()
    write_profile(profiler, "edit-relay", prefix="profile-activity")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="bench/run activity_latency", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--edits", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=5, help="uncounted edits first")
    parser.add_argument("--round-trips", type=int, default=200, help="Kafka baseline")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--timeout", type=float, default=60, help="per edit, seconds")
    parser.add_argument(
        "--profile", type=int, default=0, help="then profile N edits + relays in-process"
    )
    args = parser.parse_args(argv)

    env = common.configure_environment()
    common.ensure_database()
    common.setup_django()
    from notifications import stream
    from tests.servers.worker import celery_worker

    stream.ensure_topics()
    loadavg_before = os.getloadavg()
    world = build_world()
    common.log("baseline: bare Kafka produce → consume round trips")
    baseline = kafka_round_trips(args.round_trips)
    log_dir = Path(tempfile.mkdtemp(prefix="activity-", dir=common.OUT_DIR))
    common.log(f"starting gunicorn, a celery worker and consume_events (logs: {log_dir})")
    samples: list[dict[str, Any]] = []
    with (
        Gunicorn(
            "config.wsgi", workers=args.workers, extra=[], log_name="activity-gunicorn.log"
        ) as web,
        celery_worker(log_dir, concurrency=2),
        common.background(
            [sys.executable, "manage.py", "consume_events"], log_name="activity-consumer.log"
        ),
    ):
        for k in range(args.warmup + args.edits):
            sample = edit_and_wait(web.port, world, k, args.timeout)
            if k >= args.warmup:
                samples.append(sample)
            if k % 50 == 0:
                common.log(f"edit {k}: visible after {sample['visible_s'] * 1000:.0f} ms")
    split = stages(samples, world["carol_id"])
    if args.profile:
        profile_edits(world, args.profile)
    visible = [s["visible_s"] for s in samples]
    result = {
        "bench": "activity_latency",
        "date": common.now_iso(),
        "command": "bench/run activity_latency " + " ".join(argv),
        "stack": f"gunicorn config.wsgi -w {args.workers}; celery -A config worker "
        "--concurrency 2 (prefork); manage.py consume_events; no beat",
        "database": env["DATABASE_URL"].rsplit("/", 1)[-1],
        "loadavg_before": [round(x, 2) for x in loadavg_before],
        "versions": common.versions(),
        "visible": common.latency(visible),
        "request": common.latency([s["request_s"] for s in samples]),
        "polls_per_edit_p50": common.percentile([s["polls"] for s in samples], 50),
        "stages": {name: common.latency(values) for name, values in split.items()},
        "kafka_round_trip": common.latency(baseline),
        "targets": {"visible_p95_lt_1s": common.percentile(visible, 95) < 1.0},
    }
    rows = [
        ("edit → visible to carol", *common.latency_row(result["visible"])),
        ("  PATCH request", *common.latency_row(result["request"])),
        ("  request start → outbox row", *common.latency_row(result["stages"]["to_outbox"])),
        ("  outbox relay (row → published)", *common.latency_row(result["stages"]["relay"])),
        ("  Kafka + consumer (→ stored)", *common.latency_row(result["stages"]["consume"])),
        ("  stored → seen by the poll", *common.latency_row(result["stages"]["to_seen"])),
        ("baseline: Kafka round trip", *common.latency_row(result["kafka_round_trip"])),
    ]
    rendered = common.table(("measure", "n", "p50 ms", "p95 ms", "max ms"), rows)
    common.emit(result, rendered + "\n" + common.targets_line(result["targets"]))
    return 0
