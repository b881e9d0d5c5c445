"""Every environment variable notiflow reads, with its local default, in one place.

Settings modules and the readable-error layer import from here; nothing else calls
``os.environ`` directly, so the README's table of variables is this file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

BASE_DIR = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Variable:
    name: str
    default: str
    help: str

    def get(self) -> str:
        return os.environ.get(self.name, "").strip() or self.default


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
    "how often the consumer asks the database whether a trigger changed",
)
EMAIL_URL = Variable("EMAIL_URL", "", "smtp://host:port for outgoing mail; console when unset")
SLACK_API_BASE_URL = Variable(
    "SLACK_API_BASE_URL", "", "Slack Web API base URL; slack-sdk's when unset"
)
NOTIFLOW_BASE_URL = Variable("NOTIFLOW_BASE_URL", "http://127.0.0.1:8000", "links in messages")
SECRET_KEY = Variable(
    "DJANGO_SECRET_KEY", "notiflow-local-development-key-change-me", "Django secret"
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
    NOTIFLOW_BASE_URL,
    SECRET_KEY,
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


def as_bool(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}
