"""Turn a misconfigured or unreachable service into one readable line instead of a traceback.

Management commands run through :func:`run_cli`; the line names the setting and the
address so the fix is obvious ("cannot use the database at DATABASE_URL=…"). A database
error is blamed on ``DATABASE_URL`` only when the database does not answer: one that
answers but has no tables is told to migrate, and a statement it refuses is named as what
it is (SQLite reports SQL it cannot parse as an ``OperationalError``, like an unreachable
file).
"""

from __future__ import annotations

import re
import sys
import traceback
from collections.abc import Callable, Sequence

from config import env

_MISSING_TABLE = re.compile(r'no such table: (\S+)|relation "([^"]+)" does not exist')


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or exc.__class__.__name__
    return text.splitlines()[0]


def _answering_vendor() -> str | None:
    """The vendor of the configured database if it answers ``SELECT 1`` on a fresh
    connection now, else None."""
    from django.db import connection

    try:
        connection.close()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:
        return None
    return connection.vendor


def _origin(exc: BaseException) -> str:
    """`` from path:line`` of the innermost frame of notiflow's own code, or ''."""
    root = str(env.BASE_DIR) + "/"
    ours = [
        frame
        for frame in traceback.extract_tb(exc.__traceback__)
        if frame.filename.startswith(root)
        and "/.venv/" not in frame.filename
        and frame.filename not in (__file__, str(env.BASE_DIR / "manage.py"))
    ]
    if not ours:
        return ""
    return f" from {ours[-1].filename.removeprefix(root)}:{ours[-1].lineno}"


def _database_line(exc: BaseException) -> str:
    url = env.redact_url(env.DATABASE_URL.get())
    vendor = _answering_vendor()
    if vendor is None:
        return f"cannot use the database at DATABASE_URL={url}: {_first_line(exc)}"
    missing = _MISSING_TABLE.search(str(exc))
    if missing:
        table = missing.group(1) or missing.group(2)
        return (
            f"the {vendor} database at DATABASE_URL={url} has no table {table}: "
            "run `python manage.py migrate`"
        )
    return (
        f"the {vendor} database at DATABASE_URL={url} refused a statement{_origin(exc)}: "
        f"{_first_line(exc)} (it answers, so this is not a problem with DATABASE_URL but a "
        "bug in notiflow: please report it with the command you ran)"
    )


def describe(exc: BaseException) -> str | None:
    """One line for a failure we know how to explain, or None to let it propagate."""
    from django.core.exceptions import ImproperlyConfigured
    from django.db.utils import OperationalError, ProgrammingError
    from kafka.errors import KafkaError
    from redis.exceptions import ConnectionError as RedisConnectionError

    if isinstance(exc, ImproperlyConfigured):
        return _first_line(exc)
    if isinstance(exc, OperationalError):
        return _database_line(exc)
    if isinstance(exc, ProgrammingError) and _MISSING_TABLE.search(str(exc)):
        return _database_line(exc)
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
