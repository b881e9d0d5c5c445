"""A test run deletes, when it ends, the topics its own tests created — and no other's: a
run without ``NOTIFLOW_TOPIC_PREFIX`` has the prefix ``notiflow``, which begins every other
run's (``notiflow-test-…``, ``notiflow-<name>-…``) while they are still using them. A real
pytest run on the real broker, beside a topic of "another run" whose prefix begins with
this run's."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from contextlib import suppress
from pathlib import Path

import pytest
from kafka.admin import NewTopic
from kafka.errors import UnknownTopicOrPartitionError

from notifications import stream

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.integration]


def topics() -> set[str]:
    admin = stream.build_admin()
    try:
        return set(admin.list_topics())
    finally:
        admin.close()


def test_a_run_deletes_its_own_topics_and_not_a_concurrent_runs(settings):
    prefix = settings.NOTIFLOW_TOPIC_PREFIX
    other = f"{prefix}-concurrent-run.events"  # another run's, its prefix begins with ours
    stream.require_broker()
    admin = stream.build_admin()
    try:
        admin.create_topics([NewTopic(other, 1, 1)])
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:randomly",
                "-p",
                "no:cacheprovider",
                "tests/notifications/test_stream.py::test_ensure_topics_creates_missing_topics_once",
            ],
            cwd=ROOT,
            env={**os.environ, "NOTIFLOW_TOPIC_PREFIX": prefix},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        left = topics()
        assert other in left
        inner_run = re.compile(rf"^{re.escape(prefix)}-[0-9a-f]{{8}}\.")
        assert [name for name in left if inner_run.match(name)] == []
    finally:
        with suppress(UnknownTopicOrPartitionError):  # the bug this test is for deleted it
            admin.delete_topics([other], timeout_ms=30_000)
        admin.close()
