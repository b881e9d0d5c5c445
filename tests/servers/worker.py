"""A real ``celery -A config worker`` subprocess for integration tests.

It reads the test's database (so tests using it need ``transaction=True``), the test's Redis
and topic prefix; while it runs, the test process publishes tasks for real (eager off).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.db import connection

from config.celery import app

ROOT = Path(__file__).resolve().parents[2]


def subprocess_database_url() -> str:
    """DATABASE_URL for a subprocess that must open the test's own database."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    return (
        f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST'] or '127.0.0.1'}:"
        f"{db['PORT'] or 5432}/{db['NAME']}"
    )


class Worker:
    def __init__(self, process: subprocess.Popen, log_path: Path) -> None:
        self.process = process
        self.log_path = log_path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def children(self) -> list[int]:
        """Pool processes of the worker (prefork children)."""
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in path.read_text().split()] if path.exists() else []

    def kill_children(self) -> list[int]:
        pids = self.children()
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        return pids


@contextmanager
def celery_worker(
    log_dir: Path,
    *,
    concurrency: int = 1,
    include: tuple[str, ...] = (),
    env: Mapping[str, str] | None = None,
) -> Iterator[Worker]:
    log_path = log_dir / "worker.log"
    app.control.purge()
    command = [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "prefork"]
    command += ["--concurrency", str(concurrency), "--loglevel", "INFO"]
    command += ["--without-heartbeat", "--without-gossip", "--without-mingle"]
    command += ["--hostname", f"test-{uuid.uuid4().hex[:8]}@%h"]
    for module in include:
        command += ["--include", module]
    environment = {
        **os.environ,
        "DATABASE_URL": subprocess_database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "NOTIFLOW_TOPIC_PREFIX": settings.NOTIFLOW_TOPIC_PREFIX,
        **(env or {}),
    }
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    app.conf.task_always_eager = False
    worker = Worker(process, log_path)
    try:
        deadline = time.monotonic() + 60
        while not app.control.ping(timeout=1):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker did not start:\n{worker.log()[-4000:]}")
        yield worker
    finally:
        app.conf.task_always_eager = True
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
