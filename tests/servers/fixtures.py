"""pytest fixtures for the local protocol servers (registered in ``tests/conftest.py``).

Each fixture starts a fresh server for the test, points the matching Django settings at it
(through pytest-django's ``settings``, so they revert afterwards) and stops it at the end.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from config.celery import app as celery_app
from notifications import stream
from tests.servers.brokers import PrivateKafka, PrivateRedis
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


@pytest.fixture(scope="session")
def _private_kafka_broker(tmp_path_factory) -> Iterator[PrivateKafka]:
    broker = PrivateKafka(tmp_path_factory.mktemp("private-kafka"))
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def private_kafka(_private_kafka_broker, settings) -> Iterator[PrivateKafka]:
    """A Kafka broker of this test session's own, running, that the test may ``stop()`` and
    ``start()``; ``KAFKA_BOOTSTRAP_SERVERS`` points at it."""
    broker = _private_kafka_broker
    broker.start()
    settings.KAFKA_BOOTSTRAP_SERVERS = broker.bootstrap
    try:
        yield broker
    finally:
        stream.reset_shared_producer()


@pytest.fixture
def private_redis(settings, tmp_path) -> Iterator[PrivateRedis]:
    """A Redis of this test's own that it may ``stop()`` and ``start()`` (losing its data,
    as the shared one without persistence would); ``REDIS_URL`` and Celery's broker point
    at it."""
    server = PrivateRedis(tmp_path / "private-redis")
    server.start()
    previous = celery_app.conf.broker_url, celery_app.conf.result_backend
    settings.REDIS_URL = server.url()
    use_celery_broker(server.url(), server.url())
    try:
        yield server
    finally:
        use_celery_broker(*previous)
        server.stop()


def use_celery_broker(broker_url: str, result_backend: str) -> None:
    """Point this process's Celery app elsewhere and drop its pooled connections."""
    celery_app.conf.broker_url = broker_url
    celery_app.conf.result_backend = result_backend
    celery_app._after_fork()
