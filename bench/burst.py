"""``bench/run burst``: 10,000 matching events within 10 s → one Slack message per
destination per roll-up window, and how long after the window's end it is posted —
beside Prometheus Alertmanager given the same burst.

notiflow: ``--destinations`` triggers (default 4) on ``checkout_error``, each with
``{"mode": "rollup", "window_seconds": W}`` and one Slack target ``#burst-<d>`` through the
org's bot; the events are published with ``stream.publish_events`` at an even pace over
``--seconds``. Running as the Procfile runs them, on the benchmark's database, Redis db and
topic prefix: ``manage.py consume_events``, a ``celery -A config worker`` (sends the
deliveries) and ``celery -A config beat`` (``flush_rollups``, every 1 s as installed;
``--flush-every N`` sets that interval in the benchmark database first, as an operator
would in the admin). Slack is the tests' Web API stand-in (``tests.servers.slack``), which
here also notes when each post arrives. Window end = ``RollupWindow.closes_at``.

Alertmanager (Debian's ``prometheus-alertmanager``, installed with apt-get if missing, run
on 127.0.0.1 with its own config and storage in a temp dir, clustering off): route
``group_by: [destination]``, ``group_wait`` = ``group_interval`` = W, ``repeat_interval``
24 h, one webhook receiver (an HTTP sink that notes arrival times, ``max_alerts: 5``). The
same burst is posted to ``/api/v2/alerts``: per event one alert per destination, in the
same chunks at the same pace. Its group flushes are due at (first alert of the group) +
group_wait + k × group_interval; latency = webhook arrival − the latest such tick (an upper
bound: the group is created a little after our POST is sent).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import common

EVENT = "checkout_error"
TOKEN = "xoxb-notiflow-bench"
CHUNK = 100


def stamped(server_class: type) -> type:
    """``server_class`` that also notes ``time.time()`` as each request arrives."""

    class Stamped(server_class):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.arrivals: list[tuple[float, Any]] = []

        def dispatch(self, request: Any) -> Any:
            self.arrivals.append((time.time(), request))
            return super().dispatch(request)

    return Stamped


# --- notiflow --------------------------------------------------------------------------


def build_world(destinations: int, window: int) -> tuple[int, int]:
    from django.test.utils import override_settings

    from bench.digests import empty_world
    from notifications.models import ChannelConfig
    from notifications.secrets import encrypt
    from tests.factories import MembershipFactory, TeamFactory, TriggerFactory, UserFactory

    empty_world()
    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        team = TeamFactory()
        owner = UserFactory()
    MembershipFactory(user=owner, team=team)
    ChannelConfig.objects.create(
        organization=team.organization,
        type="slack",
        name="Bench Slack",
        secret_encrypted=encrypt(TOKEN),
    )
    for d in range(destinations):
        TriggerFactory(
            team=team,
            owner=owner,
            name=f"Checkout errors {d}",
            config={"event": EVENT, "filters": []},
            event_name=EVENT,
            channels=[{"type": "slack", "target": f"#burst-{d}"}],
            delivery={"mode": "rollup", "window_seconds": window},
        )
    return team.pk, team.organization_id


def paced(total: int, seconds: float, send: Any) -> float:
    """Call ``send(start, count)`` for chunks of 100 at an even pace; returns the start."""
    chunks = -(-total // CHUNK)
    started = time.time()
    for c in range(chunks):
        due = started + c * seconds / chunks
        time.sleep(max(0.0, due - time.time()))
        send(c * CHUNK, min(CHUNK, total - c * CHUNK))
    return started


def publish_burst(team: tuple[int, int], total: int, seconds: float) -> dict[str, float]:
    from notifications import stream
    from notifications.events import Event, Source

    def send(start: int, count: int) -> None:
        now = datetime.now(UTC)
        stream.publish_events(
            [
                Event(
                    name=EVENT,
                    team_id=team[0],
                    org_id=team[1],
                    source=Source.INGEST,
                    occurred_at=now,
                    properties={"distinct_id": f"u{i}", "amount": i},
                )
                for i in range(start, start + count)
            ]
        )

    started = paced(total, seconds, send)
    return {"started": started, "ended": time.time()}


def wait_for_notiflow(destinations: int, total: int, timeout: float) -> None:
    """Until every hit is counted, every window flushed and every delivery sent."""
    from django.db.models import Sum

    from notifications.models import Delivery, RollupWindow

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counted = RollupWindow.objects.aggregate(n=Sum("count"))["n"] or 0
        open_ = RollupWindow.objects.filter(status=RollupWindow.Status.OPEN).count()
        unsent = Delivery.objects.exclude(status="sent").count()
        if counted == destinations * total and not open_ and not unsent:
            return
        time.sleep(0.5)
    raise RuntimeError(
        f"notiflow did not finish in {timeout:.0f}s: {counted} hits counted, {open_} windows "
        f"open, {unsent} deliveries not sent"
    )


def notiflow_figures(slack: Any) -> dict[str, Any]:
    from notifications.models import RollupWindow
    from tests.servers.slack import parse_post

    posts: dict[str, list[float]] = defaultdict(list)
    for at, request in slack.arrivals:
        if request.path.rstrip("/") == "/api/chat.postMessage":
            posts[parse_post(request).channel].append(at)
    windows: dict[str, list[RollupWindow]] = defaultdict(list)
    for w in RollupWindow.objects.filter(channel="slack").order_by("closes_at"):
        windows[w.destination].append(w)
    latencies: list[float] = []
    per_destination = {}
    for destination, rows in sorted(windows.items()):
        arrived = sorted(posts.get(destination, []))
        per_destination[destination] = {
            "windows": len(rows),
            "messages": len(arrived),
            "events": sum(w.count for w in rows),
            "window_counts": [w.count for w in rows],
        }
        if len(arrived) == len(rows):
            latencies += [at - w.closes_at.timestamp() for at, w in zip(arrived, rows, strict=True)]
    return {
        "destinations": per_destination,
        "one_message_per_window": all(
            d["messages"] == d["windows"] for d in per_destination.values()
        )
        and set(posts) <= set(windows),
        "latency": common.latency(latencies),
    }


def run_notiflow(args: argparse.Namespace) -> dict[str, Any]:
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    from notifications import stream
    from tests.servers.slack import SlackServer
    from tests.servers.worker import celery_worker

    stream.ensure_topics()
    team = build_world(args.destinations, args.window)
    flush = PeriodicTask.objects.get(task="notifications.tasks.flush_rollups")
    if args.flush_every:
        every, _ = IntervalSchedule.objects.get_or_create(
            every=args.flush_every, period=IntervalSchedule.SECONDS
        )
        flush.interval = every
        flush.save()
    flush_every = flush.interval.every
    log_dir = Path(tempfile.mkdtemp(prefix="burst-", dir=common.OUT_DIR))
    with stamped(SlackServer)(token=TOKEN) as slack:
        env = {"SLACK_API_BASE_URL": slack.api_url}
        common.log(f"notiflow: consumer, worker, beat (flush every {flush_every}s); logs {log_dir}")
        with (
            celery_worker(log_dir, concurrency=2, env=env),
            common.background(
                [sys.executable, "-m", "celery", "-A", "config", "beat", "--loglevel", "INFO"],
                log_name="burst-beat.log",
                env=env,
            ),
            common.background(
                [sys.executable, "manage.py", "consume_events"],
                log_name="burst-consumer.log",
                env=env,
            ),
        ):
            time.sleep(args.settle)  # the consumer's group join; beat's first tick
            common.log(f"notiflow: {args.events:,} events over {args.seconds:.0f}s")
            burst = publish_burst(team, args.events, args.seconds)
            wait_for_notiflow(args.destinations, args.events, args.timeout)
        figures = notiflow_figures(slack)
    return {
        "flush_rollups_every_s": flush_every,
        "publish_s": round(burst["ended"] - burst["started"], 2),
        **figures,
    }


# --- Alertmanager ----------------------------------------------------------------------


def ensure_alertmanager() -> str:
    binary = shutil.which("prometheus-alertmanager")
    if binary:
        return binary
    common.log("installing Debian's prometheus-alertmanager with apt-get")
    apt = ["apt-get"] if shutil.which("sudo") is None else ["sudo", "apt-get"]
    subprocess.run([*apt, "update", "-qq"], check=True, stdout=sys.stderr)
    subprocess.run(
        [*apt, "install", "-y", "-qq", "prometheus-alertmanager"],
        check=True,
        stdout=sys.stderr,
        env={"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
    )
    return shutil.which("prometheus-alertmanager") or "/usr/bin/prometheus-alertmanager"


def alertmanager_version(binary: str) -> str:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout
    out = out or subprocess.run([binary, "--version"], capture_output=True, text=True).stderr
    return out.split("\n")[0].removeprefix("alertmanager, version ").strip()


def post_alerts(url: str, alerts: list[dict[str, Any]]) -> None:
    request = urllib.request.Request(
        url, data=json.dumps(alerts).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()


def run_alertmanager(args: argparse.Namespace) -> dict[str, Any]:
    from tests.servers import free_port
    from tests.servers.http_sink import HttpSink

    binary = ensure_alertmanager()
    workdir = Path(tempfile.mkdtemp(prefix="alertmanager-", dir=common.OUT_DIR))
    port = free_port()
    with stamped(HttpSink)() as sink:
        (workdir / "alertmanager.yml").write_text(
            json.dumps(  # JSON is YAML
                {
                    "route": {
                        "receiver": "bench",
                        "group_by": ["destination"],
                        "group_wait": f"{args.window}s",
                        "group_interval": f"{args.window}s",
                        "repeat_interval": "24h",
                    },
                    "receivers": [
                        {
                            "name": "bench",
                            "webhook_configs": [
                                {"url": f"{sink.url}/", "send_resolved": False, "max_alerts": 5}
                            ],
                        }
                    ],
                },
                indent=2,
            )
        )
        argv = [
            binary,
            f"--config.file={workdir / 'alertmanager.yml'}",
            f"--storage.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            "--log.level=warn",
        ]
        base = f"http://127.0.0.1:{port}"

        def ready() -> bool:
            try:
                with urllib.request.urlopen(f"{base}/-/ready", timeout=2) as response:
                    return response.status == 200
            except OSError:
                return False

        with common.background(argv, log_name="burst-alertmanager.log", ready=ready):
            run = uuid.uuid4().hex[:8]

            def send(start: int, count: int) -> None:
                now = datetime.now(UTC)
                ends = datetime.fromtimestamp(now.timestamp() + 3600, UTC)
                post_alerts(
                    f"{base}/api/v2/alerts",
                    [
                        {
                            "labels": {
                                "alertname": EVENT,
                                "destination": f"#burst-{d}",
                                "event": f"{run}-{i}",
                            },
                            "annotations": {"amount": str(i)},
                            "startsAt": now.isoformat(),
                            "endsAt": ends.isoformat(),
                        }
                        for i in range(start, start + count)
                        for d in range(args.destinations)
                    ],
                )

            common.log(f"alertmanager {alertmanager_version(binary)}: the same burst")
            started = paced(args.events, args.seconds, send)
            ended = time.time()
            # Quiet for three intervals after the last alert: every flush has happened.
            time.sleep(max(0.0, ended + 3 * args.window + 2 - time.time()))
    per_destination: dict[str, dict[str, Any]] = {}
    latencies: list[float] = []
    for at, request in sink.arrivals:
        body = request.json()
        destination = body["groupLabels"]["destination"]
        entry = per_destination.setdefault(destination, {"messages": 0, "alerts_in_message": []})
        entry["messages"] += 1
        entry["alerts_in_message"].append(len(body["alerts"]) + body.get("truncatedAlerts", 0))
        first_tick = started + args.window
        k = max(0, int((at - first_tick) // args.window))
        latencies.append(at - (first_tick + k * args.window))
    return {
        "version": alertmanager_version(binary),
        "publish_s": round(ended - started, 2),
        "destinations": dict(sorted(per_destination.items())),
        "latency": common.latency(latencies),
    }


# --- command -----------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench/run burst", description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=10.0, help="the burst's length")
    parser.add_argument("--destinations", type=int, default=4)
    parser.add_argument(
        "--window", type=int, default=5, help="roll-up window = group_wait/interval"
    )
    parser.add_argument(
        "--flush-every",
        type=int,
        default=0,
        help="set beat's flush_rollups interval (seconds) in the benchmark database first; "
        "default: as installed",
    )
    parser.add_argument("--settle", type=float, default=8.0, help="seconds before the burst")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--skip-alertmanager", action="store_true")
    args = parser.parse_args(argv)

    env = common.configure_environment()
    common.ensure_database()
    common.setup_django()
    loadavg_before = os.getloadavg()
    ours = run_notiflow(args)
    theirs = None if args.skip_alertmanager else run_alertmanager(args)
    result = {
        "bench": "burst",
        "date": common.now_iso(),
        "command": "bench/run burst " + " ".join(argv),
        "database": env["DATABASE_URL"].rsplit("/", 1)[-1],
        "loadavg_before": [round(x, 2) for x in loadavg_before],
        "events": args.events,
        "seconds": args.seconds,
        "window_s": args.window,
        "versions": {
            **common.versions(),
            "alertmanager": theirs["version"] if theirs else None,
        },
        "notiflow": ours,
        "alertmanager": theirs,
        "targets": targets(ours, theirs),
    }
    rows = []
    for destination, d in ours["destinations"].items():
        am = (theirs or {}).get("destinations", {}).get(destination, {})
        rows.append((destination, d["events"], d["windows"], d["messages"], am.get("messages")))
    table = common.table(
        ("destination", "events", "notiflow windows", "notiflow Slack posts", "AM webhooks"),
        rows,
    )
    lat = [("notiflow: window end → Slack POST", *common.latency_row(ours["latency"]))]
    if theirs:
        lat.append(("Alertmanager: group tick → webhook", *common.latency_row(theirs["latency"])))
    table += "\n\n" + common.table(("latency", "n", "p50 ms", "p95 ms", "max ms"), lat)
    common.emit(result, table + "\n" + common.targets_line(result["targets"]))
    return 0


def targets(ours: dict[str, Any], theirs: dict[str, Any] | None) -> dict[str, bool]:
    p95 = ours["latency"]["p95_ms"]
    found = {
        "one_message_per_destination_per_window": ours["one_message_per_window"],
        "window_end_to_slack_p95_lt_2s": p95 is not None and p95 < 2000,
    }
    if theirs:
        found["no_slower_than_alertmanager_p95"] = p95 is not None and p95 <= (
            theirs["latency"]["p95_ms"] or 0
        )
    return found
