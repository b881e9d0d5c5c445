"""``bench/run inbox``: the in-app inbox at 100,000 notifications, beside django-notifications-hq.

Data, the same on both sides: one user with 100,000 notifications (every 10th unread:
10,000 unread) spread over 90 days, and 99 other users with 1,000 each (199,000 rows in
the table), all in the database ``notiflow_bench`` on the local PostgreSQL.

Operations, each timed ``--iterations`` times after a warm-up, at two layers:

- ``view``: the HTTP endpoint through Django's test ``Client`` in-process (middleware,
  session auth, serialization; no socket), as a browser's session would call it.
  notiflow: ``GET /api/notifications/`` (first page, 50), ``GET …/unread_count/``,
  ``POST …/read_all/``. django-notifications-hq: ``GET api/all_list/?max=50``,
  ``GET api/unread_count/``, ``GET mark-all-as-read/`` (its own views).
- ``orm``: the query each view stands on, without the request: notiflow's
  ``notifications.services``; hq's ``user.notifications`` manager methods.

``read_all`` always marks the same 10,000 rows: they are set unread again (untimed)
before each timed call, and it runs last. Query counts come from ``CaptureQueriesContext``
on one call; the statements, and ``EXPLAIN ANALYZE`` of the slowest on the notification
table, go to ``bench/.out/inbox-<side>-<layer>-<op>.sql``.

The hq half runs in its own process (``python -m bench inbox-hq --serve``, settings
``bench.settings_notifications_hq``), because hq's import name and table names are the
same as notiflow's (see that module). The two sides' calls alternate one by one (the
parent asks hq over a pipe; each side times its own call), so a noisy neighbour on the
machine weighs on both alike.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from bench import common

TARGET_ROWS = 100_000
OTHER_USERS = 99
OTHER_ROWS = 1_000
UNREAD_EVERY = 10
PAGE = 50
SPREAD = timedelta(days=90)
TABLE = '"notifications_notification"'  # notiflow's and hq's table share this name


@dataclass(frozen=True)
class Op:
    name: str
    layer: str
    call: Callable[[], Any]
    before_each: Callable[[], Any] | None = None
    iterations: int = 200

    @property
    def key(self) -> str:
        return f"{self.layer}:{self.name}"

    def once(self) -> float:
        """Prepare (untimed), then one timed call; seconds."""
        if self.before_each:
            self.before_each()
        t0 = time.perf_counter()
        self.call()
        return time.perf_counter() - t0


def capture(op: Op, side: str) -> int:
    """One call under ``CaptureQueriesContext``: its statements (and the plan of the slowest
    one on the notification table) go to bench/.out; returns the number of queries."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    if op.before_each:
        op.before_each()
    with CaptureQueriesContext(connection) as captured:
        op.call()
    queries = [dict(q) for q in captured.captured_queries]
    lines = [f"-- {side} {op.key}: {len(queries)} queries"]
    lines += [f"-- {q['time']} s\n{q['sql']};" for q in queries]
    selects = [
        q for q in queries if q["sql"].lstrip().upper().startswith("SELECT") and TABLE in q["sql"]
    ]
    if selects:
        if op.before_each:
            op.before_each()
        slowest = max(selects, key=lambda q: float(q["time"]))
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + slowest["sql"])
            plan = "\n".join(row[0] for row in cursor.fetchall())
        lines.append(f"-- EXPLAIN ANALYZE of the slowest on {TABLE}:\n{plan}")
    name = op.key.replace(":", "-")
    (common.OUT_DIR / f"inbox-{side}-{name}.sql").write_text("\n".join(lines) + "\n")
    return len(queries)


def spread_times(count: int) -> list[Any]:
    from django.utils import timezone

    now = timezone.now()
    step = SPREAD / count
    return [now - step * i for i in range(count)]


# --- notiflow's side ---------------------------------------------------------------------


def notiflow_data() -> tuple[Any, list[int]]:
    """The users and rows; returns the target user and the ids of its unread rows."""
    from bench.consumer import build_world
    from notifications.models import Notification

    world = build_world(teams=1, members_per_team=OTHER_USERS + 1)
    team_id = world.teams[0][0]
    users = world.members[team_id]
    target, others = users[0], users[1:]

    def rows(user_id: int, count: int) -> list[Notification]:
        made = []
        for i, when in enumerate(spread_times(count)):
            actor = others[i % len(others)] if user_id == target else target
            made.append(
                Notification(
                    recipient_id=user_id,
                    team_id=team_id,
                    category="activity",
                    title=f"Alex Example edited dashboard “Revenue {i % 500}”",
                    body="Changed name: Revenue → Revenue (EU); pinned: False → True",
                    url=f"/dashboards/{i % 500}",
                    actor_id=actor,
                    actor_name="Alex Example",
                    event_name="activity.updated",
                    reason="You own or recently worked on this resource.",
                    dedup_key=f"bench:{user_id}:{i}",
                    group_key=f"activity:{user_id}",
                    first_seen_at=when,
                    last_seen_at=when,
                    read_at=None if i % UNREAD_EVERY == 0 else when,
                )
            )
        return made

    Notification.objects.bulk_create(rows(target, TARGET_ROWS), batch_size=5000)
    for other in others:
        Notification.objects.bulk_create(rows(other, OTHER_ROWS), batch_size=5000)
    unread = list(
        Notification.objects.filter(recipient_id=target, read_at__isnull=True).values_list(
            "id", flat=True
        )
    )
    from django.contrib.auth import get_user_model

    return get_user_model().objects.get(pk=target), unread


def notiflow_ops(
    user: Any, unread_ids: list[int], *, iterations: int, read_all_iterations: int
) -> list[Op]:
    from django.test import Client

    from notifications import services
    from notifications.models import Notification

    client = Client(SERVER_NAME="127.0.0.1")
    client.force_login(user)

    def restore() -> None:
        Notification.objects.filter(id__in=unread_ids).update(read_at=None)

    def get(path: str) -> Callable[[], Any]:
        def call() -> Any:
            response = client.get(path)
            assert response.status_code == 200, response.status_code
            return response.content

        return call

    def read_all_view() -> Any:
        response = client.post("/api/notifications/read_all/")
        assert response.status_code == 200, response.status_code
        assert response.json()["marked"] == len(unread_ids), response.json()

    def list_orm() -> Any:
        inbox = services.notification_inbox(user=user).select_related("team")
        return list(
            inbox.filter(archived_at__isnull=True).order_by("-last_seen_at", "-id")[: PAGE + 1]
        )

    # read_all last: its restore leaves dead tuples that would tax the ops after it
    return [
        Op("list", "view", get("/api/notifications/"), iterations=iterations),
        Op("unread_count", "view", get("/api/notifications/unread_count/"), iterations=iterations),
        Op("list", "orm", list_orm, iterations=iterations),
        Op(
            "unread_count",
            "orm",
            lambda: services.notification_unread_count(user=user),
            iterations=iterations,
        ),
        Op("read_all", "view", read_all_view, restore, iterations=read_all_iterations),
        Op(
            "read_all",
            "orm",
            lambda: services.notification_mark_all_read(user=user),
            restore,
            iterations=read_all_iterations,
        ),
    ]


def analyze() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")


# --- command -----------------------------------------------------------------------------


class HQ:
    """The django-notifications-hq process, driven one call at a time over a pipe."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench", "inbox-hq", "--serve"],
            cwd=common.ROOT,
            env={**os.environ, "DJANGO_SETTINGS_MODULE": "bench.settings_notifications_hq"},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def ask(self, **command: Any) -> dict[str, Any]:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"inbox-hq exited ({self.proc.wait()}); see its stderr above")
        return json.loads(line)

    def ready(self) -> dict[str, Any]:
        assert self.proc.stdout
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"inbox-hq exited ({self.proc.wait()}) while loading")
        return json.loads(line)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.ask(cmd="quit")
            finally:
                self.proc.wait(timeout=30)


def summary(samples: list[float], queries: int) -> dict[str, Any]:
    return {
        "p50_ms": common.ms(common.percentile(samples, 50)),
        "p95_ms": common.ms(common.percentile(samples, 95)),
        "iterations": len(samples),
        "queries": queries,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench/run inbox", description=__doc__.split("\n")[0])
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--read-all-iterations", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--skip-hq", action="store_true", help="notiflow only (no baseline)")
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="N",
        help="afterwards, profile N calls of notiflow's list and unread_count views",
    )
    args = parser.parse_args(argv)

    common.configure_environment()
    common.ensure_database()
    common.setup_django()
    loadavg_before = os.getloadavg()
    hq = None if args.skip_hq else HQ(args)  # loads its rows while we load ours
    try:
        common.log(f"notiflow: loading {TARGET_ROWS + OTHER_USERS * OTHER_ROWS:,} notifications")
        with common.Timer() as load_timer:
            user, unread = notiflow_data()
            analyze()
        common.log(f"notiflow: loaded in {load_timer.elapsed:.0f}s")
        ops = notiflow_ops(
            user, unread, iterations=args.iterations, read_all_iterations=args.read_all_iterations
        )
        hq_meta = hq.ready() if hq else {}
        ours: dict[str, Any] = {}
        theirs: dict[str, Any] = {}
        for op in ops:
            common.log(f"{op.key} × {op.iterations}" + (", alternating with hq" if hq else ""))
            for _ in range(args.warmup):
                op.once()
                if hq:
                    hq.ask(cmd="run", op=op.key)
            mine_q = capture(op, "notiflow")
            theirs_q = hq.ask(cmd="capture", op=op.key)["queries"] if hq else 0
            mine_s: list[float] = []
            theirs_s: list[float] = []
            for i in range(op.iterations):
                # alternate who goes first, so neither always follows the other's writes
                if hq and i % 2:
                    theirs_s.append(hq.ask(cmd="run", op=op.key)["seconds"])
                mine_s.append(op.once())
                if hq and not i % 2:
                    theirs_s.append(hq.ask(cmd="run", op=op.key)["seconds"])
            ours[op.key] = summary(mine_s, mine_q)
            if hq:
                theirs[op.key] = summary(theirs_s, theirs_q)
    finally:
        if hq:
            hq.close()

    compared = {}
    for key, mine in ours.items():
        other = theirs.get(key)
        compared[key] = {
            "notiflow": mine,
            "django_notifications_hq": other,
            "hq_p50_over_notiflow_p50": common.ratio(other["p50_ms"], mine["p50_ms"])
            if other
            else None,
            "hq_p95_over_notiflow_p95": common.ratio(other["p95_ms"], mine["p95_ms"])
            if other
            else None,
        }
    result = {
        "bench": "inbox",
        "date": common.now_iso(),
        "command": "bench/run inbox " + " ".join(argv),
        "method": "notiflow and hq calls alternate one by one (two processes, one database)",
        "rows": {
            "target_user": TARGET_ROWS,
            "other_users": OTHER_USERS,
            "per_other": OTHER_ROWS,
            "unread_of_target": len(unread),
        },
        "load_seconds": round(load_timer.elapsed, 1),
        "loadavg_before": [round(x, 2) for x in loadavg_before],
        "versions": common.versions(),
        "baseline": hq_meta,
        "ops": compared,
        "targets": targets(compared),
    }
    rows = []
    for key, c in compared.items():
        mine, other = c["notiflow"], c["django_notifications_hq"] or {}
        rows.append(
            (
                key,
                mine["p50_ms"],
                mine["p95_ms"],
                mine["queries"],
                other.get("p50_ms"),
                other.get("p95_ms"),
                other.get("queries"),
                f"{c['hq_p50_over_notiflow_p50']:.2f}x" if c["hq_p50_over_notiflow_p50"] else None,
                f"{c['hq_p95_over_notiflow_p95']:.2f}x" if c["hq_p95_over_notiflow_p95"] else None,
            )
        )
    headers = (
        "op",
        "notiflow p50 ms",
        "p95 ms",
        "queries",
        "hq p50 ms",
        "hq p95 ms",
        "hq queries",
        "hq/ours p50",
        "hq/ours p95",
    )
    footer = "targets: " + ", ".join(
        f"{k}={'yes' if v else 'NO'}" for k, v in result["targets"].items()
    )
    common.emit(result, common.table(headers, rows) + "\n" + footer)
    if args.profile:
        profile_views(ops, args.profile)
    return 0


def profile_views(ops: list[Op], calls: int) -> None:
    """pyinstrument over ``calls`` calls of each read-only view (trees in bench/.out)."""
    from bench.consumer import write_profile

    common.use_tools()
    from pyinstrument import Profiler

    for op in ops:
        if op.layer != "view" or op.before_each:
            continue
        profiler = Profiler(interval=0.0005)
        profiler.start()
        for _ in range(calls):
            op.call()
        profiler.stop()
        write_profile(profiler, op.name, prefix="profile-inbox-view")


def targets(compared: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = {
        "view_list_p95_lt_20ms": compared["view:list"]["notiflow"]["p95_ms"] < 20
    }
    if all(c["django_notifications_hq"] for c in compared.values()):
        found["faster_than_hq_on_every_view_op_p50"] = all(
            c["hq_p50_over_notiflow_p50"] > 1 for k, c in compared.items() if k.startswith("view:")
        )
        found["faster_than_hq_on_every_view_op_p95"] = all(
            c["hq_p95_over_notiflow_p95"] > 1 for k, c in compared.items() if k.startswith("view:")
        )
    return found
