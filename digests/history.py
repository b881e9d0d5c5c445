"""Schedules' ``last_run`` and the execution history, both in Redis (keys from ``keys.py``).

A *profile* is one user's digest settings; ``profile_id`` is the user's id. Each run of a
schedule (hourly, daily, weekly) writes one :class:`ExecutionRecord` per profile it worked
on — ``RUNNING`` from the moment the run has found the profile's digests and starts
sending, then ``SUCCESS``, ``FAILED`` or ``CANCELLED`` — and stamps the profile's ``last_run``
for that schedule when it finishes. Records expire after ``TTL.executions`` (7 days).

Redis is the history, not the source of truth: the digests themselves are rows in the
database, so a Redis outage costs observability and never a digest. Writers log the error
and carry on; readers raise.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any

import redis
from django.conf import settings

from digests import keys

log = logging.getLogger(__name__)


class ExecutionStatus(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


FINISHED = frozenset({ExecutionStatus.SUCCESS, ExecutionStatus.FAILED, ExecutionStatus.CANCELLED})


@dataclass(frozen=True)
class ExecutionRecord:
    """One schedule run for one profile. ``started_at`` is the wall clock; ``as_of`` is the
    ``now`` the run computed windows for (they differ in a ``--now`` backfill)."""

    execution_id: str
    run_id: str
    profile_id: int
    schedule_type: str
    status: ExecutionStatus
    started_at: datetime
    as_of: datetime
    finished_at: datetime | None = None
    message_count: int = 0
    digest_count: int = 0
    duration_seconds: float | None = None
    error: str = ""

    @classmethod
    def pending(
        cls, *, run_id: str, profile_id: int, schedule_type: str, started_at: datetime, as_of
    ) -> ExecutionRecord:
        return cls(
            execution_id=uuid.uuid4().hex,
            run_id=run_id,
            profile_id=profile_id,
            schedule_type=schedule_type,
            status=ExecutionStatus.PENDING,
            started_at=started_at,
            as_of=as_of,
        )

    def running(self) -> ExecutionRecord:
        return replace(self, status=ExecutionStatus.RUNNING)

    def finished(
        self,
        status: ExecutionStatus,
        *,
        at: datetime,
        message_count: int = 0,
        digest_count: int = 0,
        error: str = "",
    ) -> ExecutionRecord:
        return replace(
            self,
            status=status,
            finished_at=at,
            message_count=message_count,
            digest_count=digest_count,
            duration_seconds=round((at - self.started_at).total_seconds(), 3),
            error=error,
        )

    def to_dict(self) -> dict[str, Any]:
        """Field by field (``dataclasses.asdict`` deep-copies every value: a run writes
        thousands of these)."""
        return {
            "execution_id": self.execution_id,
            "run_id": self.run_id,
            "profile_id": self.profile_id,
            "schedule_type": self.schedule_type,
            "status": str(self.status),
            "started_at": _iso(self.started_at),
            "as_of": _iso(self.as_of),
            "finished_at": _iso(self.finished_at),
            "message_count": self.message_count,
            "digest_count": self.digest_count,
            "duration_seconds": self.duration_seconds,
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExecutionRecord:
        return cls(
            execution_id=str(data["execution_id"]),
            run_id=str(data.get("run_id", "")),
            profile_id=int(data["profile_id"]),
            schedule_type=str(data["schedule_type"]),
            status=ExecutionStatus(data["status"]),
            started_at=datetime.fromisoformat(data["started_at"]),
            as_of=datetime.fromisoformat(data.get("as_of") or data["started_at"]),
            finished_at=(
                datetime.fromisoformat(data["finished_at"]) if data.get("finished_at") else None
            ),
            message_count=int(data.get("message_count", 0)),
            digest_count=int(data.get("digest_count", 0)),
            duration_seconds=data.get("duration_seconds"),
            error=str(data.get("error", "")),
        )


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value else None


def redis_client() -> redis.Redis:
    """The client for ``settings.REDIS_URL``, read at call time."""
    return client_for(settings.REDIS_URL)


@lru_cache(maxsize=8)
def client_for(url: str) -> redis.Redis:
    """One client (and connection pool) per URL."""
    return redis.Redis.from_url(
        url, decode_responses=True, socket_connect_timeout=2, socket_timeout=5
    )


def executions_save(
    records: Sequence[ExecutionRecord], *, client: redis.Redis | None = None
) -> bool:
    """Write (or overwrite) records and index them; trims entries older than the TTL.
    Returns False, after logging why, when Redis cannot be written."""
    if not records:
        return True
    client = client or redis_client()
    ttl = keys.TTL.executions
    seconds = int(ttl.total_seconds())
    oldest = (datetime.now(UTC) - ttl).timestamp()
    try:
        pipe = client.pipeline(transaction=False)
        indexes: dict[str, dict[str, float]] = defaultdict(dict)
        for record in records:
            score = record.started_at.timestamp()
            pipe.set(
                keys.execution_key(record.execution_id), json.dumps(record.to_dict()), ex=seconds
            )
            indexes[keys.executions_key(record.profile_id)][record.execution_id] = score
            indexes[keys.executions_key(None)][record.execution_id] = score
        for index, members in indexes.items():
            pipe.zadd(index, members)
            pipe.zremrangebyscore(index, "-inf", oldest)
            pipe.expire(index, seconds)
        pipe.execute()
    except redis.RedisError as exc:
        log.warning("could not write %d digest execution record(s): %s", len(records), exc)
        return False
    return True


def executions_list(
    *,
    profile_id: int | None,
    limit: int = 50,
    schedule_type: str | None = None,
    client: redis.Redis | None = None,
) -> list[ExecutionRecord]:
    """The newest records first, of one profile or (``None``) of everyone."""
    client = client or redis_client()
    index = keys.executions_key(profile_id)
    found: list[ExecutionRecord] = []
    start, page = 0, max(limit, 50)
    while len(found) < limit:
        ids = client.zrevrange(index, start, start + page - 1)
        if not ids:
            break
        start += page
        raw = client.mget([keys.execution_key(str(i)) for i in ids])
        for value in raw:
            if value is None:  # expired before its index entry was trimmed
                continue
            record = ExecutionRecord.from_dict(json.loads(value))
            if schedule_type and record.schedule_type != schedule_type:
                continue
            found.append(record)
            if len(found) == limit:
                break
    return found


def last_run_mark(
    profile_ids: Iterable[int], schedule_type: str, at: datetime, *, client=None
) -> bool:
    ids = list(profile_ids)
    if not ids:
        return True
    client = client or redis_client()
    seconds = int(keys.TTL.last_run.total_seconds())
    try:
        pipe = client.pipeline(transaction=False)
        for profile_id in ids:
            key = keys.last_run_key(profile_id)
            pipe.hset(key, schedule_type, at.astimezone(UTC).isoformat())
            pipe.expire(key, seconds)
        pipe.execute()
    except redis.RedisError as exc:
        log.warning("could not record last_run of %d profile(s): %s", len(ids), exc)
        return False
    return True


def last_runs(profile_id: int, *, client: redis.Redis | None = None) -> dict[str, datetime]:
    client = client or redis_client()
    stored = client.hgetall(keys.last_run_key(profile_id))
    return {str(name): datetime.fromisoformat(str(value)) for name, value in stored.items()}
