"""A database that answers but refuses a statement is not a wrong DATABASE_URL: the one
line says what the database refused, and what to do about it."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_manage(*args, database_url):
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=120,
    )


def one_line(result):
    assert result.returncode == 1, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_a_statement_the_database_refuses_is_named_as_such(tmp_path):
    url = f"sqlite:///{tmp_path / 'notiflow.sqlite3'}"
    code = "from django.db import connection; connection.cursor().execute('SELECT 1::bigint')"

    line = one_line(run_manage("shell", "-c", code, database_url=url))

    assert "cannot use the database" not in line
    assert f"the sqlite database at DATABASE_URL={url} refused a statement" in line
    assert 'unrecognized token: ":"' in line
    assert "not a problem with DATABASE_URL" in line


def test_a_database_without_notiflows_tables_says_to_migrate(tmp_path):
    url = f"sqlite:///{tmp_path / 'notiflow.sqlite3'}"

    line = one_line(run_manage("digests", "run", "--period", "daily", database_url=url))

    assert f"the sqlite database at DATABASE_URL={url} has no table" in line
    assert "run `python manage.py migrate`" in line
