"""Every Redis key the per-user digest schedules use, built here and nowhere else.

Keys live under ``<NOTIFLOW_TOPIC_PREFIX>:digest:`` (the deployment's name, read at call
time), so two deployments sharing a Redis never read each other's history. Every key gets
a TTL when it is written; the TTLs are :data:`TTL`. The weekly org digest keeps its own
keys in ``digests/weekly/keys.py``.

=============================================  ===========  ============================
key                                            type         holds
=============================================  ===========  ============================
``…:digest:last_run:{profile_id}``             hash         schedule type → ISO time
``…:digest:execution:{execution_id}``          string       one execution record (JSON)
``…:digest:executions:{profile_id}``           sorted set   execution ids by start time
``…:digest:executions:all``                    sorted set   every execution id (staff)
=============================================  ===========  ============================
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from django.conf import settings


class DigestKey(StrEnum):
    LAST_RUN = "last_run"
    EXECUTION = "execution"
    EXECUTIONS = "executions"


@dataclass(frozen=True)
class KeyTTLs:
    """How long each kind of key lives after its last write. ``last_run`` outlives the
    longest schedule (weekly) several times over; history is kept ``executions``."""

    last_run: timedelta = timedelta(days=35)
    executions: timedelta = timedelta(days=7)


TTL = KeyTTLs()
ALL_PROFILES = "all"


def _namespace() -> str:
    return f"{settings.NOTIFLOW_TOPIC_PREFIX}:digest"


def last_run_key(profile_id: int) -> str:
    return f"{_namespace()}:{DigestKey.LAST_RUN}:{int(profile_id)}"


def execution_key(execution_id: str) -> str:
    return f"{_namespace()}:{DigestKey.EXECUTION}:{execution_id}"


def executions_key(profile_id: int | None) -> str:
    """The index of one profile's executions, or of everyone's with ``None``."""
    owner = ALL_PROFILES if profile_id is None else str(int(profile_id))
    return f"{_namespace()}:{DigestKey.EXECUTIONS}:{owner}"
