"""Reachability of the three services notiflow stands on, each ``ok`` or the error."""

from __future__ import annotations

from collections.abc import Callable

import redis
from django.conf import settings
from django.db import connection

from notifications import stream


def check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def check_redis() -> None:
    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    finally:
        client.close()


def check_kafka() -> None:
    stream.require_broker()  # a down broker answers in seconds, not the client's 30 s
    admin = stream.build_admin()
    try:
        admin.list_topics()
    finally:
        admin.close()


CHECKS: dict[str, Callable[[], None]] = {
    "database": check_database,
    "redis": check_redis,
    "kafka": check_kafka,
}


def service_health() -> dict[str, str]:
    results = {}
    for name, check in CHECKS.items():
        try:
            check()
        except Exception as exc:  # the health page reports every failure as text
            results[name] = f"error: {exc.__class__.__name__}: {exc}".strip()
        else:
            results[name] = "ok"
    return results
