"""The inbox's change signal, so a page learns of a new notification within a second
instead of at its next poll.

Whatever changes what a person's badge would show — a row written or grown for them
(``store``), one read, seen, archived or snoozed (``services``) — calls :func:`inbox_changed`
inside its transaction; once it commits, one Redis ``PUBLISH`` per person goes out on
``notiflow:inbox:<user id>``. :func:`wait_for_change` is the other end: the unread-count
long-poll subscribes, checks, and sleeps until a message or its deadline.

The signal is a hint, never the truth: the waiter re-reads the database on every message
and at least every :data:`RECHECK_SECONDS`, so a lost message (Redis restarting, a writer
that commits outside this module's reach) costs at most that long. While Redis does not
answer, publishing logs and carries on (the database commit stands) and waiting returns at
once (the page falls back to its poll).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from functools import lru_cache

import redis
from django.conf import settings
from django.db import transaction

log = logging.getLogger(__name__)

RECHECK_SECONDS = 5.0
MAX_WAIT_SECONDS = 25
"""The longest a long-poll waits: under gunicorn's and most proxies' 30 s timeouts."""


def channel(user_id: int) -> str:
    return f"notiflow:inbox:{user_id}"


@lru_cache(maxsize=4)
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)


def inbox_changed(user_ids: Iterable[int | None]) -> None:
    """Tell the waiting pages of these people, once the current transaction commits."""
    people = sorted({pk for pk in user_ids if pk is not None})
    if people:
        transaction.on_commit(lambda: publish(people))


def publish(user_ids: list[int]) -> None:
    try:
        with _client(settings.REDIS_URL).pipeline(transaction=False) as pipe:
            for pk in user_ids:
                pipe.publish(channel(pk), b"1")
            pipe.execute()
    except redis.RedisError as exc:
        log.warning("inbox change of %d people not signalled: %s", len(user_ids), exc)


def wait_for_change(user_id: int, *, seconds: float, changed: Callable[[], bool]) -> bool:
    """Wait up to ``seconds`` until ``changed()`` is true, asking it again on each signal
    for ``user_id`` and at least every :data:`RECHECK_SECONDS`. Subscribes before the
    first ask, so a change that commits in between is not missed. Returns ``changed()``'s
    last answer; at once (False) when Redis does not answer."""
    deadline = time.monotonic() + seconds
    try:
        pubsub = _client(settings.REDIS_URL).pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(channel(user_id))
    except redis.RedisError as exc:
        log.warning("cannot wait for inbox changes: %s", exc)
        return changed()
    try:
        while not changed():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                pubsub.get_message(timeout=min(remaining, RECHECK_SECONDS))
            except redis.RedisError as exc:
                log.warning("stopped waiting for inbox changes: %s", exc)
                return changed()
        return True
    finally:
        pubsub.close()
