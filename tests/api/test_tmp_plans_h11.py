import pytest
from django.db import connection
from tests.api.test_inbox_scale import inboxes, _calls, TABLE  # noqa

pytestmark = [pytest.mark.django_db]

def test_plans(inboxes):
    calls = _calls(inboxes["big"].user, read_all=False)
    for name in ("list", "list page 2", "unread_count"):
        print(f"\n===== {name}: {calls[name].queries} queries")
        for sql in calls[name].sql:
            print("SQL:", sql)
            if sql.startswith("SELECT") and TABLE in sql:
                with connection.cursor() as c:
                    c.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
                    print("\n".join(r[0] for r in c.fetchall()))
    small = _calls(inboxes["small"].user, next_page=calls["next"], read_all=True)
    big = _calls(inboxes["big"].user, read_all=True)
    print({k: v.queries for k, v in big.items() if k != "next"}, {k: v.queries for k, v in small.items() if k != "next"})
    for sql in big["read_all"].sql: print("READ_ALL SQL:", sql)
