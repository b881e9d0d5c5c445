"""Every environment variable notiflow reads, with its local default, in one place.

Settings modules and the readable-error layer import from here; nothing else calls
``os.environ`` directly, so the README's table of variables is this file (``ALL``, in its
order; ``tests/test_environment.py`` holds them equal). A number or a switch is parsed here
with its bound: a value outside it raises ``ImproperlyConfigured`` naming the variable, which
``manage.py`` prints as one line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Variable:
    name: str
    default: str
    help: str

    def get(self) -> str:
        return os.environ.get(self.name, "").strip() or self.default

    def integer(self, *, low: int, high: int) -> int:
        """The value as a whole number in ``[low, high]``."""
        text = self.get()
        if text.isascii() and text.isdigit() and low <= int(text) <= high:
            return int(text)
        raise ImproperlyConfigured(
            f"{self.name}={text!r} must be a whole number from {low} to {high}"
        )

    def seconds(self, *, low: float, high: float) -> float:
        """The value as a number of seconds in ``[low, high]`` (a decimal point allowed)."""
        text = self.get()
        digits = text.replace(".", "", 1)
        if text.isascii() and digits.isdigit() and low <= float(text) <= high:
            return float(text)
        raise ImproperlyConfigured(
            f"{self.name}={text!r} must be a number from {low:g} to {high:g}"
        )

    def directory(self) -> str:
        """The value as a directory this process can write in ("" when unset)."""
        text = self.get()
        if not text or (os.path.isdir(text) and os.access(text, os.W_OK | os.X_OK)):
            return text
        raise ImproperlyConfigured(
            f"{self.name}={text!r} must be an existing directory this process can write to "
            "(create it before the processes start), or unset"
        )

    def flag(self) -> bool:
        """The value as a switch: 1/true/yes/on or 0/false/no/off, any case."""
        text = self.get().lower()
        if text in _ON or text in _OFF:
            return text in _ON
        raise ImproperlyConfigured(
            f"{self.name}={self.get()!r} must be 1 or 0 (or true/false, yes/no, on/off)"
        )


_ON = frozenset({"1", "true", "yes", "on"})
_OFF = frozenset({"0", "false", "no", "off"})


DATABASE_URL = Variable(
    "DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}", "database (SQLite file or PostgreSQL)"
)
REDIS_URL = Variable(
    "REDIS_URL", "redis://127.0.0.1:6379/0", "Celery broker, roll-up and digest state"
)
KAFKA_BOOTSTRAP_SERVERS = Variable(
    "KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092", "comma-separated Kafka brokers"
)
NOTIFLOW_TOPIC_PREFIX = Variable("NOTIFLOW_TOPIC_PREFIX", "notiflow", "prefix of every Kafka topic")
NOTIFLOW_TOPIC_PARTITIONS = Variable(
    "NOTIFLOW_TOPIC_PARTITIONS", "4", "partitions of topics notiflow creates"
)
NOTIFLOW_TRIGGER_REFRESH_SECONDS = Variable(
    "NOTIFLOW_TRIGGER_REFRESH_SECONDS",
    "2",
    "how often the consumer asks whether a trigger changed, for events without a revision stamp",
)
EMAIL_URL = Variable("EMAIL_URL", "", "smtp://host:port for outgoing mail; console when unset")
SLACK_API_BASE_URL = Variable(
    "SLACK_API_BASE_URL", "", "Slack Web API base URL; slack-sdk's when unset"
)
TELEGRAM_API_BASE_URL = Variable(
    "TELEGRAM_API_BASE_URL", "https://api.telegram.org", "Telegram Bot API base URL"
)
# Read by scripts/dev (which checks them and hands them to honcho) and the Procfile's web
# line, not by Python: under honcho every process gets a PORT of its own.
HOST = Variable("HOST", "127.0.0.1", "address scripts/dev serves the web process on")
PORT = Variable("PORT", "8000", "port scripts/dev serves the web process on, 1 to 65535")
NOTIFLOW_BASE_URL = Variable("NOTIFLOW_BASE_URL", "http://127.0.0.1:8000", "links in messages")
NOTIFLOW_WEBHOOK_ALLOW_PRIVATE = Variable(
    "NOTIFLOW_WEBHOOK_ALLOW_PRIVATE",
    "0",
    "1 lets webhooks reach private, loopback and link-local addresses",
)
NOTIFLOW_INGEST_MAX_EVENTS = Variable(
    "NOTIFLOW_INGEST_MAX_EVENTS", "1000", "events accepted per POST /api/ingest/ request"
)
NOTIFLOW_HEALTH_MAX_CONSUMER_LAG = Variable(
    "NOTIFLOW_HEALTH_MAX_CONSUMER_LAG",
    "10000",
    "/api/health/ says degraded when the consumer is more events behind than this",
)
NOTIFLOW_HEALTH_MAX_OUTBOX_AGE_SECONDS = Variable(
    "NOTIFLOW_HEALTH_MAX_OUTBOX_AGE_SECONDS",
    "60",
    "/api/health/ says degraded when an unpublished outbox row is older than this",
)
NOTIFLOW_HEALTH_MAX_DELIVERY_WAIT_SECONDS = Variable(
    "NOTIFLOW_HEALTH_MAX_DELIVERY_WAIT_SECONDS",
    "300",
    "/api/health/ says degraded when a due delivery has waited longer than this",
)
NOTIFLOW_CONSUMER_METRICS_PORT = Variable(
    "NOTIFLOW_CONSUMER_METRICS_PORT",
    "0",
    "port of consume_events' own Prometheus /metrics on 127.0.0.1 (0: not served)",
)
PROMETHEUS_MULTIPROC_DIR = Variable(
    "PROMETHEUS_MULTIPROC_DIR",
    "",
    "a directory every web and worker process writes its counters to (prometheus-client's "
    "multi-process mode), so /metrics adds them up; unset: each process counts alone",
)
SECRET_KEY = Variable(
    "DJANGO_SECRET_KEY",
    "notiflow-local-development-key-change-me",
    "Django's signing key; must be set when DJANGO_DEBUG=0",
)
NOTIFLOW_SECRETS_KEYS = Variable(
    "NOTIFLOW_SECRETS_KEYS",
    "",
    "comma-separated Fernet keys for channel secrets (first encrypts, all decrypt); "
    "must be set when DJANGO_DEBUG=0",
)
DEBUG = Variable("DJANGO_DEBUG", "1", "1 for local development, 0 in production")
ALLOWED_HOSTS = Variable("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]", "comma-separated")

ALL: tuple[Variable, ...] = (
    DATABASE_URL,
    REDIS_URL,
    KAFKA_BOOTSTRAP_SERVERS,
    NOTIFLOW_TOPIC_PREFIX,
    NOTIFLOW_TOPIC_PARTITIONS,
    NOTIFLOW_TRIGGER_REFRESH_SECONDS,
    EMAIL_URL,
    SLACK_API_BASE_URL,
    TELEGRAM_API_BASE_URL,
    HOST,
    PORT,
    NOTIFLOW_BASE_URL,
    NOTIFLOW_WEBHOOK_ALLOW_PRIVATE,
    NOTIFLOW_INGEST_MAX_EVENTS,
    NOTIFLOW_HEALTH_MAX_CONSUMER_LAG,
    NOTIFLOW_HEALTH_MAX_OUTBOX_AGE_SECONDS,
    NOTIFLOW_HEALTH_MAX_DELIVERY_WAIT_SECONDS,
    NOTIFLOW_CONSUMER_METRICS_PORT,
    PROMETHEUS_MULTIPROC_DIR,
    SECRET_KEY,
    NOTIFLOW_SECRETS_KEYS,
    DEBUG,
    ALLOWED_HOSTS,
)


def redact_url(url: str) -> str:
    """The URL with any password replaced by ``***``, safe for error lines and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))
