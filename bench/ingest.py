"""``bench/run ingest``: ``POST /api/ingest/`` under load, against gunicorn on loopback.

Three measurements in one run, each for the same bounded duration and the same batches
of 100 events:

- ``http``     gunicorn (same flags) serving ``bench.noop_wsgi`` (reads the body, answers
  202): what the load generator and gunicorn alone can do. The HTTP ceiling.
- ``publish``  ``stream.publish_events`` called in-process with the events that batch
  becomes (one batch at a time, waiting for every ack, as the view does): the Kafka
  ceiling of one client.
- ``ingest``   ``.venv/bin/gunicorn config.wsgi -w 2 --threads 4 -b 127.0.0.1:<port>``
  (production's flags, docker-compose.yml) with the benchmark's DATABASE_URL and topic
  prefix, and ``bench.settings_ingest`` (the per-IP ingest throttle off: one load
  generator stands in for many clients): the real endpoint.

The load generator is a closed loop of ``--concurrency`` Python threads, each with its own
``http.client`` connection (kept alive when the server allows it, as gthread workers do;
sync workers, ``--threads 1``, close it after each response, so the thread reconnects).
Traffic goes only to 127.0.0.1.
Requests that start in the first ``--warmup`` seconds are not counted.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench import common

HOST = "127.0.0.1"
BATCH = 100


@dataclass
class Load:
    name: str
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    events_per_request: int = BATCH
    accepted_incl_warmup: int = 0

    @property
    def ok(self) -> int:
        return self.statuses.get(202, 0)

    @property
    def rate(self) -> float:
        return self.ok * self.events_per_request / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": len(self.latencies),
            "accepted_batches": self.ok,
            "events_per_s": round(self.rate),
            "batches_per_s": round(self.ok / self.seconds, 1) if self.seconds else 0,
            "p50_ms": common.ms(common.percentile(self.latencies, 50)),
            "p95_ms": common.ms(common.percentile(self.latencies, 95)),
            "p99_ms": common.ms(common.percentile(self.latencies, 99)),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "errors": self.errors[:5],
            "seconds": round(self.seconds, 2),
        }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def make_bodies(api_key: str, count: int, *, seed: int = 11) -> list[bytes]:
    """``count`` distinct request bodies of ``BATCH`` events each, as a client sends them."""
    rng = random.Random(seed)
    base = datetime.now(UTC) - timedelta(minutes=30)
    names = ("$pageview", "$autocapture", "checkout_started", "search", "api_call", "alert_1")
    bodies = []
    for b in range(count):
        batch = [
            {
                "event": names[rng.randrange(len(names))],
                "distinct_id": f"person-{rng.randrange(50_000)}",
                "timestamp": (base + timedelta(milliseconds=b * BATCH + i))
                .isoformat()
                .replace("+00:00", "Z"),
                "properties": {
                    "$current_url": f"https://shop.example.com/products/{rng.randrange(5_000)}",
                    "$browser": ("Chrome", "Firefox", "Safari")[rng.randrange(3)],
                    "plan": ("free", "team", "enterprise")[rng.randrange(3)],
                    "amount": rng.randrange(0, 200),
                    "session_id": f"s-{rng.getrandbits(48):012x}",
                },
            }
            for i in range(BATCH)
        ]
        bodies.append(json.dumps({"api_key": api_key, "batch": batch}).encode())
    return bodies


def drive(
    name: str, port: int, bodies: list[bytes], *, concurrency: int, duration: float, warmup: float
) -> Load:
    """Closed-loop load for ``warmup + duration`` seconds; stops by itself."""
    load = Load(name=name)
    lock = threading.Lock()
    start = time.perf_counter()
    counted_from = start + warmup
    deadline = counted_from + duration

    def worker(index: int) -> None:
        conn = http.client.HTTPConnection(HOST, port, timeout=30)
        i = index
        local_lat: list[float] = []
        local_status: dict[int, int] = {}
        local_err: list[str] = []
        local_all = 0
        while (t0 := time.perf_counter()) < deadline:
            body = bodies[i % len(bodies)]
            i += concurrency
            try:
                conn.request(
                    "POST",
                    "/api/ingest/",
                    body=body,
                    headers={"Content-Type": "application/json"},
                )
                response = conn.getresponse()
                response.read()
                status = response.status
                if response.will_close:
                    conn.close()
            except (OSError, http.client.HTTPException) as exc:
                status = 0
                local_err.append(f"{exc.__class__.__name__}: {exc}")
                conn.close()
                time.sleep(0.05)
            t1 = time.perf_counter()
            local_all += status == 202
            if t0 >= counted_from:
                local_lat.append(t1 - t0)
                local_status[status] = local_status.get(status, 0) + 1
        conn.close()
        with lock:
            load.latencies += local_lat
            for k, v in local_status.items():
                load.statuses[k] = load.statuses.get(k, 0) + v
            load.errors += local_err
            load.accepted_incl_warmup += local_all

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    load.seconds = duration
    return load


class Gunicorn:
    """``.venv/bin/gunicorn <app> -w N -b 127.0.0.1:<port>``, ended by its own pid."""

    def __init__(
        self,
        app: str,
        *,
        workers: int,
        extra: list[str],
        log_name: str,
        settings_module: str = "config.settings",
    ) -> None:
        self.port = free_port()
        self.settings_module = settings_module
        self.log_path = common.OUT_DIR / log_name
        gunicorn = Path(sys.executable).with_name("gunicorn")
        self.argv = [str(gunicorn), app, "-w", str(workers), "-b", f"{HOST}:{self.port}", *extra]
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Gunicorn:
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            self.argv,
            cwd=common.ROOT,
            env={**os.environ, "DJANGO_SETTINGS_MODULE": self.settings_module},
            stdout=log,
            stderr=log,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited; see {self.log_path}")
            try:
                conn = http.client.HTTPConnection(HOST, self.port, timeout=5)
                conn.request("GET", "/api/health/")
                conn.getresponse().read()
                conn.close()
                return self
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not answer on {HOST}:{self.port}; see {self.log_path}")

    def __exit__(self, *exc: object) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def publish_only(bodies: list[bytes], *, duration: float, warmup: float) -> Load:
    """The Kafka ceiling: the same batches, built into events beforehand (untimed), each
    sent with ``stream.publish_events`` (encode + send + wait for every ack)."""
    from django.utils import timezone

    from notifications import stream
    from notifications.ingestion import ingest_batch
    from workspace.models import Team

    decoded = [json.loads(b) for b in bodies]
    team = Team.objects.get(api_token=decoded[0]["api_key"])
    batches = [ingest_batch(team=team, batch=d["batch"], now=timezone.now()) for d in decoded]
    load = Load(name="publish")
    start = time.perf_counter()
    counted_from = start + warmup
    deadline = counted_from + duration
    i = 0
    while (t0 := time.perf_counter()) < deadline:
        stream.publish_events(batches[i % len(batches)])
        i += 1
        t1 = time.perf_counter()
        if t0 >= counted_from:
            load.latencies.append(t1 - t0)
            load.statuses[202] = load.statuses.get(202, 0) + 1
    load.seconds = duration
    stream.reset_shared_producer()
    return load


def profile_view(bodies: list[bytes], requests: int) -> None:
    """``requests`` POSTs to the real view in-process (test Client) under pyinstrument."""
    from django.test import Client

    from bench.consumer import write_profile

    common.use_tools()
    from pyinstrument import Profiler

    client = Client(SERVER_NAME="127.0.0.1")
    profiler = Profiler(interval=0.001)
    profiler.start()
    for i in range(requests):
        response = client.post(
            "/api/ingest/", bodies[i % len(bodies)], content_type="application/json"
        )
        assert response.status_code == 202, response.content[:300]
    profiler.stop()
    write_profile(profiler, "ingest-view", prefix="profile")


def topic_end_offsets() -> int:
    from kafka import KafkaConsumer, TopicPartition

    from notifications import stream
    from notifications.stream import TopicName

    name = stream.topic(TopicName.EVENTS)
    consumer = KafkaConsumer(bootstrap_servers=stream.bootstrap_servers())
    try:
        parts = [TopicPartition(name, p) for p in consumer.partitions_for_topic(name) or ()]
        return sum(consumer.end_offsets(parts).values())
    finally:
        consumer.close()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench/run ingest", description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=20.0, help="seconds measured per run")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=4, help="load generator threads")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn -w")
    parser.add_argument(
        "--threads",
        type=int,
        default=4,
        help="gunicorn --threads (gthread workers above 1), as docker-compose.yml runs it",
    )
    parser.add_argument(
        "--gunicorn-args", default="", help="extra gunicorn flags, e.g. '--threads 4'"
    )
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="N",
        help="also profile N in-process POSTs with pyinstrument (after the timed runs)",
    )
    args = parser.parse_args(argv)
    if args.duration > 300:
        parser.error("--duration is capped at 300 s")

    env = common.configure_environment()
    common.ensure_database()
    common.setup_django()
    from bench.consumer import build_world
    from notifications import stream
    from workspace.models import Team

    world = build_world(teams=1, members_per_team=1)
    api_key = Team.objects.get(pk=world.teams[0][0]).api_token
    stream.ensure_topics()
    bodies = make_bodies(api_key, 64)
    extra = ["--threads", str(args.threads), "--log-level", "warning", *args.gunicorn_args.split()]
    load_args = {"concurrency": args.concurrency, "duration": args.duration, "warmup": args.warmup}
    loadavg_before = os.getloadavg()

    common.log(f"http baseline: gunicorn bench.noop_wsgi, {args.duration:.0f}s")
    with Gunicorn(
        "bench.noop_wsgi:application",
        workers=args.workers,
        extra=extra,
        log_name="ingest-noop-gunicorn.log",
    ) as server:
        http_load = drive("http", server.port, bodies, **load_args)

    common.log(f"publish baseline: stream.publish_events in-process, {args.duration:.0f}s")
    publish_load = publish_only(bodies, duration=args.duration, warmup=args.warmup)

    before = topic_end_offsets()
    common.log(
        f"ingest: gunicorn config.wsgi -w {args.workers} --threads {args.threads}, "
        f"{args.duration:.0f}s"
    )
    with Gunicorn(
        "config.wsgi",
        workers=args.workers,
        extra=extra,
        log_name="ingest-gunicorn.log",
        settings_module="bench.settings_ingest",
    ) as server:
        ingest_load = drive("ingest", server.port, bodies, **load_args)
        command_line = " ".join(server.argv[1:]).replace(str(common.ROOT) + "/", "")
    written = topic_end_offsets() - before

    loads = {"http": http_load, "publish": publish_load, "ingest": ingest_load}
    result = {
        "bench": "ingest",
        "date": common.now_iso(),
        "command": "bench/run ingest " + " ".join(argv),
        "server": f"gunicorn {command_line}",
        "server_settings": "bench.settings_ingest (config.settings, ingest throttle off)",
        "concurrency": args.concurrency,
        "batch": BATCH,
        "duration_s": args.duration,
        "topic": f"{env['NOTIFLOW_TOPIC_PREFIX']}.events",
        "events_written_during_ingest": written,
        "events_accepted_during_ingest": ingest_load.accepted_incl_warmup * BATCH,
        "loadavg_before": [round(x, 2) for x in loadavg_before],
        "versions": common.versions(),
        "runs": {k: v.to_dict() for k, v in loads.items()},
        "ratios": {
            "ingest_vs_http": common.ratio(ingest_load.rate, http_load.rate),
            "ingest_vs_publish": common.ratio(ingest_load.rate, publish_load.rate),
        },
        "targets": {
            "ingest_ge_5000_events_per_s": ingest_load.rate >= 5000,
            "ingest_p95_lt_50ms": common.percentile(ingest_load.latencies, 95) < 0.050,
        },
    }
    rows = [
        (
            name,
            len(load.latencies),
            round(load.rate),
            common.percentile(load.latencies, 50) * 1000,
            common.percentile(load.latencies, 95) * 1000,
            common.percentile(load.latencies, 99) * 1000,
            sum(v for k, v in load.statuses.items() if k != 202),
            f"{ingest_load.rate / load.rate:.2f}x" if load.rate else None,
        )
        for name, load in loads.items()
    ]
    headers = (
        "run",
        "batches",
        "events/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "non-202",
        "ingest vs this",
    )
    footer = (
        f"events written to Kafka during ingest: {written:,} "
        f"(accepted with 202, warm-up included: {ingest_load.accepted_incl_warmup * BATCH:,})\n"
        "targets: " + ", ".join(f"{k}={'yes' if v else 'NO'}" for k, v in result["targets"].items())
    )
    common.emit(result, common.table(headers, rows) + "\n" + footer)
    if args.profile:
        profile_view(bodies, args.profile)
    return 0
