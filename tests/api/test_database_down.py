"""While the database does not answer, ``/api/health/`` still says so (503, ``database:
error``) and ``/metrics`` still answers (``notiflow_up{service="database"} 0``): neither may
need the database before its view runs (``ATOMIC_REQUESTS`` opens a transaction around
every other view). A separate process is pointed at a port nothing listens on; Redis and
Kafka are the real ones."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.integration]


def get_without_database(path: str, settings) -> tuple[int, str]:
    script = textwrap.dedent(
        f"""
        import django, json, os
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
        django.setup()
        from django.test import Client
        response = Client(raise_request_exception=False).get({path!r})
        print(json.dumps([response.status_code, response.content.decode()]))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={
            **os.environ,
            "DATABASE_URL": "postgres://notiflow:notiflow@127.0.0.1:1/notiflow",
            "DJANGO_ALLOWED_HOSTS": "testserver",
            "NOTIFLOW_TOPIC_PREFIX": settings.NOTIFLOW_TOPIC_PREFIX,
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    code, body = json.loads(done.stdout.strip().splitlines()[-1])
    return code, body


def test_health_says_the_database_is_down(settings):
    code, body = get_without_database("/api/health/", settings)
    assert code == 503, body
    report = json.loads(body)
    assert report["status"] == "down"
    assert report["database"].startswith("error: ")
    assert (report["redis"], report["kafka"]) == ("ok", "ok")
    assert report["pipeline"]["outbox_backlog"] is None


def test_metrics_answer_with_the_database_down_and_say_so(settings):
    code, body = get_without_database("/metrics", settings)
    assert code == 200, body
    assert 'notiflow_up{service="database"} 0.0' in body
    assert 'notiflow_up{service="kafka"} 1.0' in body
    assert "\nnotiflow_outbox_backlog_rows " not in body
