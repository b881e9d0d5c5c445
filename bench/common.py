"""What every benchmark shares: its own environment, Django set-up, extra tools, figures.

The environment is set *before* Django is imported: a benchmark never touches the
database, Redis db or topics that the local run or the test suite use. Defaults:

- ``DATABASE_URL``  postgres://notiflow:notiflow@127.0.0.1:5432/notiflow_bench (created
  and migrated on first use)
- ``REDIS_URL``     redis://127.0.0.1:6379/10
- ``NOTIFLOW_TOPIC_PREFIX`` bench-<unix time>-<pid>, fresh for every run
- ``DJANGO_DEBUG``  0 (DEBUG=1 keeps every query in memory and slows every request), with
  ``DJANGO_SECRET_KEY`` and ``NOTIFLOW_SECRETS_KEYS`` of the benchmarks' own

Each can be overridden from the environment.
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
OUT_DIR = BENCH_DIR / ".out"
DEPS_DIR = BENCH_DIR / ".deps"

ADMIN_URL = "postgres://notiflow:notiflow@127.0.0.1:5432/notiflow"
BENCH_DB = "notiflow_bench"

# Packages the benchmarks need that are not project dependencies. Each set is installed
# with ``pip install --target`` into its own folder under bench/.deps, never into .venv:
# django-notifications-hq's import name is ``notifications``, the same as ours, so it can
# only be importable in a process that puts its folder first (see settings_notifications_hq).
EXTRA_PACKAGES: dict[str, tuple[str, ...]] = {
    "tools": ("pyinstrument==5.1.3",),
    "hq": (
        "django-notifications-hq==1.8.3",
        "django-model-utils==5.0.0",
        "jsonfield==3.2.0",
        "swapper==1.4.0",
        "pytz",
    ),
}


def configure_environment() -> dict[str, str]:
    """Set the benchmark's own database, Redis db and topic prefix unless given."""
    os.environ.setdefault("DATABASE_URL", f"postgres://notiflow:notiflow@127.0.0.1:5432/{BENCH_DB}")
    os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/10")
    os.environ.setdefault("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    os.environ.setdefault("NOTIFLOW_TOPIC_PREFIX", f"bench-{int(time.time())}-{os.getpid()}")
    os.environ.setdefault("DJANGO_DEBUG", "0")
    # DEBUG off refuses the development keys; these are the benchmarks' own, fixed so the
    # bench database's channel secrets decrypt from run to run.
    os.environ.setdefault("DJANGO_SECRET_KEY", "notiflow-benchmarks-only-secret-key")
    os.environ.setdefault("NOTIFLOW_SECRETS_KEYS", "bm90aWZsb3ctYmVuY2gtb25seS1rZXktMzItYnl0ZXM=")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    OUT_DIR.mkdir(exist_ok=True)
    return {
        k: os.environ[k]
        for k in ("DATABASE_URL", "REDIS_URL", "KAFKA_BOOTSTRAP_SERVERS", "NOTIFLOW_TOPIC_PREFIX")
    }


def crc32c_implementation() -> str:
    from kafka.record import util

    return "native (crc32c package)" if util.crc32c_c is not None else "pure Python"


def ensure_database() -> None:
    """Create ``notiflow_bench`` if it is missing (only when DATABASE_URL points at it)."""
    if not os.environ["DATABASE_URL"].rstrip("/").endswith("/" + BENCH_DB):
        return
    import psycopg

    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [BENCH_DB]).fetchone()
        if not exists:
            conn.execute(f"CREATE DATABASE {BENCH_DB}")
            log(f"created database {BENCH_DB}")


def setup_django(*, migrate: bool = True) -> None:
    import django

    django.setup()
    if migrate:
        from django.core.management import call_command

        call_command("migrate", verbosity=0, interactive=False)


def ensure_extra(name: str) -> Path:
    """Install the named extra package set into bench/.deps/<name> if missing; return it.

    Uses the project's pip with ``--no-deps`` and pinned versions, so nothing in .venv
    (Django above all) is upgraded or downgraded behind the project's back.
    """
    target = DEPS_DIR / name
    stamp = target / ".installed"
    wanted = "\n".join(EXTRA_PACKAGES[name])
    if not (stamp.exists() and stamp.read_text() == wanted):
        log(f"installing {', '.join(EXTRA_PACKAGES[name])} into {target.relative_to(ROOT)}")
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-deps",
                "--upgrade",
                "--target",
                str(target),
                *EXTRA_PACKAGES[name],
            ],
            check=True,
            stdout=sys.stderr,  # stdout may be a protocol pipe (inbox-hq --serve)
        )
        stamp.write_text(wanted)
    return target


def use_tools() -> None:
    """Make bench-only tools (pyinstrument) importable in this process."""
    path = str(ensure_extra("tools"))
    if path not in sys.path:
        sys.path.append(path)


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


# --- figures ---------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of ``values``; NaN for none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b else None


@dataclass
class Timer:
    started: float = 0.0
    elapsed: float = 0.0

    def __enter__(self) -> Timer:
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.elapsed = time.perf_counter() - self.started


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A plain fixed-width table; numbers right-aligned."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for row in cells:
        lines.append(
            "  ".join(
                v.rjust(w) if _looks_numeric(v) else v.ljust(w)
                for v, w in zip(row, widths, strict=True)
            )
        )
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.3g}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _looks_numeric(text: str) -> bool:
    return bool(_NUMERIC.match(text))


_NUMERIC = re.compile(r"^-?[\d,]+(\.\d+)?(e[+-]?\d+)?[x%]?$")


def latency(values: Sequence[float]) -> dict[str, Any]:
    """``n``, p50, p95 and max of durations in seconds, in milliseconds."""
    return {
        "n": len(values),
        "p50_ms": ms(percentile(values, 50)),
        "p95_ms": ms(percentile(values, 95)),
        "max_ms": ms(max(values)) if values else None,
    }


def latency_row(figures: dict[str, Any]) -> tuple[Any, ...]:
    """A :func:`latency` dict as table cells: n, p50, p95, max."""
    return figures["n"], figures["p50_ms"], figures["p95_ms"], figures["max_ms"]


def targets_line(found: dict[str, Any]) -> str:
    return "targets: " + ", ".join(f"{k}={'yes' if v else 'NO'}" for k, v in found.items())


def emit(result: dict[str, Any], rendered_table: str) -> None:
    """The one JSON line (stdout), then the table; also kept in bench/.out/<name>.json."""
    line = json.dumps(result, separators=(",", ":"), default=str)
    print(line, flush=True)
    print(rendered_table, flush=True)
    (OUT_DIR / f"{result['bench']}.json").write_text(line + "\n")


def now_iso() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def versions() -> dict[str, str]:
    """Python, Django, kafka-python, the broker, PostgreSQL, Redis; and the git commit."""
    import django
    import kafka
    from django.db import connection

    found = {
        "python": platform.python_version(),
        "django": django.get_version(),
        "kafka_python": kafka.__version__,
        "kafka_broker": _broker_version(),
        "kafka_python_crc32c": crc32c_implementation(),
        "machine": f"{os.cpu_count()} cores, {platform.machine()}",
    }
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        found["postgresql"] = cursor.fetchone()[0].split()[0]
    try:
        import redis
        from django.conf import settings

        found["redis"] = redis.Redis.from_url(settings.REDIS_URL).info("server")["redis_version"]
    except Exception as exc:  # a version we cannot read is reported as such, not fatal
        found["redis"] = f"unknown ({exc.__class__.__name__})"
    try:
        found["commit"] = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        if dirty:
            found["commit"] += "+dirty"
    except (OSError, subprocess.CalledProcessError):
        found["commit"] = "unknown"
    return found


def _broker_version() -> str:
    """The broker's version from the jar scripts/services runs, else the API version."""
    libs = ROOT / ".cache" / "kafka" / "libs"
    for jar in sorted(libs.glob("kafka-server-*.jar")) if libs.is_dir() else []:
        if match := re.fullmatch(r"kafka-server-(\d[\w.-]*)\.jar", jar.name):
            return match.group(1)
    try:
        from django.conf import settings
        from kafka import KafkaAdminClient

        admin = KafkaAdminClient(bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS.split(","))
        try:
            return "api " + ".".join(map(str, admin._client.check_version()))
        finally:
            admin.close()
    except Exception as exc:  # reported, not fatal
        return f"unknown ({exc.__class__.__name__})"


@contextmanager
def background(
    argv: Sequence[str],
    *,
    log_name: str,
    ready: Callable[[], bool] | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 60,
) -> Iterator[subprocess.Popen[bytes]]:
    """A project process (``manage.py consume_events``, ``celery … beat``) on the
    benchmark's environment, its output in ``bench/.out/<log_name>``; it is waited for
    until ``ready()`` is true, and ended by its own pid (SIGTERM, then SIGKILL)."""
    log_path = OUT_DIR / log_name
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            list(argv), cwd=ROOT, env={**os.environ, **(env or {})}, stdout=out, stderr=out
        )
    try:
        deadline = time.monotonic() + timeout
        while ready is not None and not ready():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{argv[0]} did not get ready; see {log_path}")
            time.sleep(0.2)
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
