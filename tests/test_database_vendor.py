"""The tests run on the database DATABASE_URL names: `scripts/test`'s SQLite pass really
runs on SQLite (a file, in WAL mode, as in the README's local run), not on PostgreSQL or
Django's in-memory stand-in."""

from pathlib import Path

import pytest
from django.db import connection

from config import env

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]


def test_the_tests_use_the_database_database_url_names():
    url = env.DATABASE_URL.get()
    assert connection.vendor == ("sqlite" if url.startswith("sqlite:") else "postgresql")
    if connection.vendor == "sqlite":
        name = connection.settings_dict["NAME"]
        assert Path(name).is_file(), name
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA journal_mode")
            assert cursor.fetchone()[0] == "wal"
