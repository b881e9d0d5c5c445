"""Turn a misconfigured or unreachable service into one readable line instead of a traceback.

Management commands run through :func:`run_cli`; the line names the setting and the
address so the fix is obvious ("cannot connect to the database at DATABASE_URL=…").
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from config import env


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or exc.__class__.__name__
    return text.splitlines()[0]


def describe(exc: BaseException) -> str | None:
    """One line for a failure we know how to explain, or None to let it propagate."""
    from django.core.exceptions import ImproperlyConfigured
    from django.db.utils import OperationalError
    from kafka.errors import KafkaError
    from redis.exceptions import ConnectionError as RedisConnectionError

    if isinstance(exc, ImproperlyConfigured):
        return _first_line(exc)
    if isinstance(exc, OperationalError):
        return (
            f"cannot use the database at DATABASE_URL={env.redact_url(env.DATABASE_URL.get())}: "
            f"{_first_line(exc)}"
        )
    if isinstance(exc, KafkaError):
        return (
            f"cannot reach Kafka at KAFKA_BOOTSTRAP_SERVERS={env.KAFKA_BOOTSTRAP_SERVERS.get()}: "
            f"{_first_line(exc)}"
        )
    if isinstance(exc, RedisConnectionError):
        address = env.redact_url(env.REDIS_URL.get())
        return f"cannot reach Redis at REDIS_URL={address}: {_first_line(exc)}"
    return None


def run_cli(main: Callable[[Sequence[str]], None], argv: Sequence[str]) -> None:
    try:
        main(argv)
    except Exception as exc:
        line = describe(exc)
        if line is None:
            raise
        print(f"notiflow: {line}", file=sys.stderr)
        sys.exit(1)
