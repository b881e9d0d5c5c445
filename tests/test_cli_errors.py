"""A wrong DATABASE_URL or an unreachable Kafka gives one readable line, not a traceback."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_manage(*args, **env):
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_unreachable_database_names_the_setting_and_address():
    result = run_manage("migrate", DATABASE_URL="postgres://notiflow:secret@127.0.0.1:1/notiflow")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "DATABASE_URL=postgres://notiflow:***@127.0.0.1:1/notiflow" in lines[0]
    assert "secret" not in result.stderr


def test_malformed_database_url_names_the_setting():
    result = run_manage("check", DATABASE_URL="nosuchdb://x")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        line for line in result.stderr.strip().splitlines() if "DATABASE_URL='nosuchdb://x'" in line
    ]


@pytest.mark.integration
def test_unreachable_kafka_names_the_setting_and_address():
    result = run_manage("consume_events", "--until-idle", KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:1" in lines[0]


@pytest.mark.parametrize("size", ["0", "-5", "10001", str(2**70)])
def test_an_unbounded_batch_size_is_refused_in_one_line(size):
    result = run_manage("consume_events", "--until-idle", "--batch-size", size)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"CommandError: --batch-size {size} must be from 1 to 10,000"
    ]
