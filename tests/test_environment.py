"""Every setting the docs name is set from the environment, reaches the code that obeys it,
and has a bound: the variable is read in ``config/env.py`` (whose ``ALL`` is the README's
table, row for row), a bad value stops ``manage.py`` with one line naming the variable, and
the code reads ``settings.X`` itself, never ``getattr(settings, "X", default)`` — a default
there is a setting no variable reaches."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from config import env
from tests.servers.http_sink import HttpSink, Reply

ROOT = Path(__file__).resolve().parent.parent
SOURCE_DIRS = ("api", "config", "digests", "frontend", "notifications", "workspace")


def _run(*args: str, **variables: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**os.environ, **variables},
        capture_output=True,
        text=True,
        timeout=120,
    )


SCRIPT = textwrap.dedent(
    """
    from django.utils import timezone
    from notifications.ingestion import BatchTooLarge, ingest_batch
    from notifications.channels.base import Destination, Message
    from notifications.channels.http import saved_url_refusal
    from notifications.channels.telegram import TelegramChannel

    sent = TelegramChannel().send(
        Message(title="hello"), Destination(address="42", settings={"bot_token": "1:AAA"})
    )
    print("telegram", sent.result)
    print("webhook", saved_url_refusal("http://127.0.0.1:9/hook"))
    try:
        ingest_batch(team=None, batch=[{}] * 4, now=timezone.now())
    except BatchTooLarge as exc:
        print("ingest", exc)
    """
)


@pytest.mark.integration
def test_the_environment_reaches_the_behaviour():
    with HttpSink(Reply(200, {"ok": True, "result": {"message_id": 7}})) as telegram:
        result = _run(
            "shell",
            "--no-imports",
            "-c",
            SCRIPT,
            TELEGRAM_API_BASE_URL=telegram.url,
            NOTIFLOW_WEBHOOK_ALLOW_PRIVATE="1",
            NOTIFLOW_INGEST_MAX_EVENTS="3",
        )
        assert result.returncode == 0, result.stderr
        (request,) = telegram.requests
    assert request.path == "/bot1:AAA/sendMessage"
    lines = result.stdout.splitlines()
    assert "telegram sent" in lines
    assert "webhook None" in lines  # loopback allowed, as the variable says
    assert "ingest batch has 4 events; at most 3 are accepted per request" in lines


def test_without_the_variables_the_defaults_hold():
    script = (
        "from django.conf import settings as s; "
        "print(s.TELEGRAM_API_BASE_URL, s.NOTIFLOW_WEBHOOK_ALLOW_PRIVATE, "
        "s.NOTIFLOW_INGEST_MAX_EVENTS)"
    )
    result = _run(
        "shell",
        "--no-imports",
        "-c",
        script,
        TELEGRAM_API_BASE_URL="",
        NOTIFLOW_WEBHOOK_ALLOW_PRIVATE="",
        NOTIFLOW_INGEST_MAX_EVENTS="",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["https://api.telegram.org", "False", "1000"]


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("NOTIFLOW_INGEST_MAX_EVENTS", "0", "a whole number from 1 to 100000"),
        ("NOTIFLOW_INGEST_MAX_EVENTS", "lots", "a whole number from 1 to 100000"),
        ("NOTIFLOW_TOPIC_PARTITIONS", "100000", "a whole number from 1 to 1000"),
        ("NOTIFLOW_HEALTH_MAX_CONSUMER_LAG", "0", "a whole number from 1 to 1000000000"),
        ("NOTIFLOW_HEALTH_MAX_OUTBOX_AGE_SECONDS", "90000", "a whole number from 1 to 86400"),
        ("NOTIFLOW_HEALTH_MAX_DELIVERY_WAIT_SECONDS", "soon", "a whole number from 1 to 86400"),
        ("NOTIFLOW_TRIGGER_REFRESH_SECONDS", "-1", "a number from 0 to 3600"),
        ("NOTIFLOW_TRIGGER_REFRESH_SECONDS", "nan", "a number from 0 to 3600"),
        ("NOTIFLOW_TRIGGER_REFRESH_SECONDS", "7200", "a number from 0 to 3600"),
        ("NOTIFLOW_WEBHOOK_ALLOW_PRIVATE", "maybe", "1 or 0"),
        ("DJANGO_DEBUG", "perhaps", "1 or 0"),
        ("NOTIFLOW_CONSUMER_METRICS_PORT", "9101x", "a whole number from 0 to 65535"),
        ("NOTIFLOW_CONSUMER_METRICS_PORT", "-1", "a whole number from 0 to 65535"),
        ("PROMETHEUS_MULTIPROC_DIR", "/nonexistent/notiflow-metrics", "an existing directory"),
        ("PROMETHEUS_MULTIPROC_DIR", "/etc/passwd", "an existing directory"),
    ],
)
def test_a_bad_value_stops_manage_py_with_one_line_naming_it(name, value, says):
    result = _run("check", **{name: value})
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"{name}={value!r}" in lines[0] and says in lines[0], lines[0]


def test_the_readme_table_is_config_env():
    readme = (ROOT / "README.md").read_text()
    documented = re.findall(r"^\| `([A-Z][A-Z0-9_]+)` \|", readme, re.M)
    assert documented == [variable.name for variable in env.ALL]


def test_no_setting_is_read_with_a_fallback_default():
    pattern = re.compile(r"getattr\(\s*(django_)?settings\s*,")
    found = [
        f"{path.relative_to(ROOT)}:{number}"
        for folder in SOURCE_DIRS
        for path in sorted((ROOT / folder).rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert not found, f"read settings.X (and give X a variable in config/env.py): {found}"
