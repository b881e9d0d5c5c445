"""The django-notifications-hq half of ``bench/run inbox``, run in its own process with
``DJANGO_SETTINGS_MODULE=bench.settings_notifications_hq`` (started by ``bench.inbox``).

Same volume and read state as notiflow's half; rows as hq's ``notify.send`` would write
them (actor = a user through the generic foreign key, verb, description), ``target`` left
empty (setting it would cost hq one more query per listed row).

``--serve``: once loaded, print one JSON line (``{"ready": …}``) on stdout, then answer one
JSON command per stdin line with one JSON line: ``{"cmd": "run", "op": "view:list"}`` →
``{"seconds": …}`` (prepare untimed, one timed call), ``{"cmd": "capture", "op": …}`` →
``{"queries": n}``, ``{"cmd": "quit"}``. Progress goes to stderr only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from importlib import metadata
from typing import Any

from bench import common
from bench.inbox import (
    OTHER_ROWS,
    OTHER_USERS,
    PAGE,
    TARGET_ROWS,
    UNREAD_EVERY,
    Op,
    capture,
    spread_times,
)

SCHEMA = "notifications_hq"


def ensure_schema() -> None:
    import psycopg

    url = os.environ["DATABASE_URL"].replace("postgres://", "postgresql://", 1)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")


def load() -> tuple[Any, list[int]]:
    from django.contrib.auth import get_user_model
    from django.contrib.contenttypes.models import ContentType
    from django.db import connection

    from notifications.models import Notification  # django-notifications-hq's

    User = get_user_model()
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {User._meta.db_table} RESTART IDENTITY CASCADE")
    users = User.objects.bulk_create(
        [
            User(username=f"hq-user-{i}", password="!", first_name="Alex", last_name="Example")
            for i in range(OTHER_USERS + 1)
        ]
    )
    target, others = users[0], users[1:]
    user_type = ContentType.objects.get_for_model(User)

    def rows(recipient: Any, count: int) -> list[Any]:
        made = []
        for i, when in enumerate(spread_times(count)):
            actor = others[i % len(others)] if recipient is target else target
            made.append(
                Notification(
                    recipient=recipient,
                    actor_content_type=user_type,
                    actor_object_id=str(actor.pk),
                    verb=f"edited dashboard “Revenue {i % 500}”",
                    description="Changed name: Revenue → Revenue (EU); pinned: False → True",
                    timestamp=when,
                    unread=i % UNREAD_EVERY == 0,
                )
            )
        return made

    Notification.objects.bulk_create(rows(target, TARGET_ROWS), batch_size=5000)
    for other in others:
        Notification.objects.bulk_create(rows(other, OTHER_ROWS), batch_size=5000)
    unread = list(
        Notification.objects.filter(recipient=target, unread=True).values_list("id", flat=True)
    )
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    return target, unread


def hq_ops(user: Any, unread_ids: list[int]) -> list[Op]:
    from django.test import Client

    from notifications.models import Notification  # django-notifications-hq's

    client = Client(SERVER_NAME="127.0.0.1")
    client.force_login(user)

    def restore() -> None:
        Notification.objects.filter(id__in=unread_ids).update(unread=True)

    def get(path: str, status: int = 200) -> Any:
        def call() -> Any:
            response = client.get(path)
            assert response.status_code == status, response.status_code
            return response.content

        return call

    return [
        Op("list", "view", get(f"/inbox/notifications/api/all_list/?max={PAGE}")),
        Op("unread_count", "view", get("/inbox/notifications/api/unread_count/")),
        Op("list", "orm", lambda: list(user.notifications.all()[:PAGE])),
        Op("unread_count", "orm", lambda: user.notifications.unread().count()),
        Op("read_all", "view", get("/inbox/notifications/mark-all-as-read/", 302), restore),
        Op("read_all", "orm", lambda: user.notifications.mark_all_as_read(), restore),
    ]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench inbox-hq")
    parser.add_argument("--serve", action="store_true", required=True)
    parser.parse_args(argv)
    if os.environ.get("DJANGO_SETTINGS_MODULE") != "bench.settings_notifications_hq":
        parser.error("run with DJANGO_SETTINGS_MODULE=bench.settings_notifications_hq")

    common.configure_environment()
    common.ensure_extra("hq")
    common.ensure_database()
    ensure_schema()
    common.setup_django()  # imports bench.settings_notifications_hq: hq first on sys.path
    import notifications  # django-notifications-hq's

    assert "/.deps/hq/" in notifications.__file__, notifications.__file__
    common.log(f"django-notifications-hq: loading {TARGET_ROWS + OTHER_USERS * OTHER_ROWS:,} rows")
    with common.Timer() as timer:
        user, unread = load()
    common.log(f"django-notifications-hq: loaded in {timer.elapsed:.0f}s")
    ops = {op.key: op for op in hq_ops(user, unread)}
    reply(
        {
            "ready": True,
            "package": f"django-notifications-hq {metadata.version('django-notifications-hq')}",
            "schema": SCHEMA,
            "unread_of_target": len(unread),
            "load_seconds": round(timer.elapsed, 1),
        }
    )
    for line in sys.stdin:
        command = json.loads(line)
        if command["cmd"] == "quit":
            reply({"bye": True})
            break
        op = ops[command["op"]]
        if command["cmd"] == "run":
            reply({"seconds": op.once()})
        elif command["cmd"] == "capture":
            reply({"queries": capture(op, "hq")})
    return 0


def reply(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()
