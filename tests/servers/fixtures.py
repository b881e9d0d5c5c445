"""pytest fixtures for the local protocol servers (registered in ``tests/conftest.py``).

Each fixture starts a fresh server for the test, points the matching Django settings at it
(through pytest-django's ``settings``, so they revert afterwards) and stops it at the end.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers.http_sink import HttpSink, Reply
from tests.servers.slack import SlackServer
from tests.servers.smtp import SMTPServer


@pytest.fixture
def slack_server(settings) -> Iterator[SlackServer]:
    """A Slack Web API on loopback; ``SLACK_API_BASE_URL`` points at it."""
    with SlackServer() as server:
        settings.SLACK_API_BASE_URL = server.api_url
        yield server


@pytest.fixture
def smtp_server(settings) -> Iterator[SMTPServer]:
    """An SMTP server on loopback; Django's SMTP backend points at it (1 s timeout)."""
    with SMTPServer() as server:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST = server.host
        settings.EMAIL_PORT = server.port
        settings.EMAIL_HOST_USER = ""
        settings.EMAIL_HOST_PASSWORD = ""
        settings.EMAIL_USE_TLS = False
        settings.EMAIL_USE_SSL = False
        settings.EMAIL_TIMEOUT = 1
        yield server


@pytest.fixture
def http_sink() -> Iterator[HttpSink]:
    """Records any POST and answers 200 unless told otherwise (webhooks)."""
    with HttpSink() as sink:
        yield sink


@pytest.fixture
def telegram_server(settings) -> Iterator[HttpSink]:
    """An HTTP sink answering like the Telegram Bot API's ``sendMessage``;
    ``TELEGRAM_API_BASE_URL`` points at it."""
    with HttpSink(Reply(200, {"ok": True, "result": {"message_id": 4242}})) as sink:
        settings.TELEGRAM_API_BASE_URL = sink.url
        yield sink
