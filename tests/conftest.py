"""Shared fixtures. Integration tests use the real services that scripts/test starts."""

from __future__ import annotations

import os
import uuid

import pytest
from hypothesis import settings as hypothesis_settings

from tests.factories import MembershipFactory, TeamFactory, UserFactory

pytest_plugins = ["tests.servers.fixtures"]

# `scripts/test` (so CI) runs the same examples every time: a property that fails there
# failed for everyone, not for one seed. Run `HYPOTHESIS_PROFILE=explore scripts/test` to
# draw new ones; a failure found that way becomes an `@example` or a strategy fix.
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
hypothesis_settings.register_profile("explore", print_blob=True)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "explore"))


# Every per-test prefix this run gave out: the run deletes their topics when it ends.
_RUN_PREFIXES: set[str] = set()


@pytest.fixture(autouse=True)
def _topic_prefix(settings):
    """Every test gets its own topics, so no test reads another's events."""
    settings.NOTIFLOW_TOPIC_PREFIX = f"{settings.NOTIFLOW_TOPIC_PREFIX}-{uuid.uuid4().hex[:8]}"
    _RUN_PREFIXES.add(settings.NOTIFLOW_TOPIC_PREFIX)


@pytest.fixture(autouse=True, scope="session")
def _drop_the_runs_topics():
    """At the end of the run, delete the topics its tests created (``<test's prefix>.*``):
    a broker that keeps every run's topics grows until it stops answering. Only those: the
    run's own prefix (``notiflow`` when unset) begins other runs' prefixes too."""
    yield
    if not _RUN_PREFIXES:
        return
    from kafka.errors import KafkaError

    from notifications import stream

    mine = tuple(f"{prefix}." for prefix in _RUN_PREFIXES)
    try:
        stream.require_broker()
        admin = stream.build_admin()
    except KafkaError:
        return  # no broker, so no topic of this run's
    try:
        created = sorted(name for name in admin.list_topics() if name.startswith(mine))
        for start in range(0, len(created), 500):
            admin.delete_topics(created[start : start + 500], timeout_ms=30_000)
    finally:
        admin.close()


@pytest.fixture
def team(db):
    return TeamFactory()


@pytest.fixture
def member_of():
    def make(team, role="member", **user_fields):
        return MembershipFactory(team=team, role=role, user=UserFactory(**user_fields)).user

    return make


@pytest.fixture(autouse=True, scope="session")
def _celery_runs_inline():
    """Tasks enqueued after a commit (the outbox relay) run in the test's own process."""
    from config.celery import app

    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = False


@pytest.fixture
def drain():
    """Run the real consumer loop over the test's topic until ``expected`` events were
    processed (or ``timeout`` seconds pass); returns the totals."""
    import threading
    import time

    from notifications import stream
    from notifications.consumers import ConsumerLoop
    from notifications.processing import BatchResult, EventProcessor

    def run(expected: int, timeout: float = 60.0, processor=None) -> BatchResult:
        stream.ensure_topics()
        consumer = stream.build_consumer()
        producer = stream.build_producer()
        loop = ConsumerLoop(consumer, producer, processor or EventProcessor())
        total = BatchResult()
        deadline = time.monotonic() + timeout
        try:
            while total.events + total.dead_lettered < expected and time.monotonic() < deadline:
                result = loop.run(threading.Event(), until_idle=True)
                time.sleep(0.2)
                for name in ("events", "dead_lettered", "matches", "stored"):
                    setattr(total, name, getattr(total, name) + getattr(result, name))
        finally:
            producer.close(timeout=5)
            consumer.close()
        return total

    return run


@pytest.fixture
def api_client():
    from rest_framework.test import APIClient

    return APIClient()


def pytest_configure(config):
    """Hash test passwords with a fast hasher: factories create many users."""
    from django.conf import settings

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Throttle counters live in the (Redis) cache; no test inherits another's."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    """On SQLite the test database is a file beside DATABASE_URL's (``<name>-test``), not
    Django's shared in-memory one: WAL, ``IMMEDIATE`` transactions and the busy timeout
    then behave as in the README's local run, and subprocesses (``manage.py``, a Celery
    worker) open the same database as the test."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    if db["ENGINE"] == "django.db.backends.sqlite3":
        db.setdefault("TEST", {})["NAME"] = f"{db['NAME']}-test"
