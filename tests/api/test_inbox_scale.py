"""The inbox at scale, on PostgreSQL: for a user with 100,000 notifications the list (first
page and the next one, by cursor), the unread count and "mark all read" run the same
number of queries as for a user with 10, and the list's and the badge's queries on
``notifications_notification`` are answered through an index (their ``EXPLAIN`` names
``inbox_list`` / ``inbox_unread`` and has no ``Seq Scan`` on the table).

The rows are inserted once for the module, with ``bulk_create`` in batches, inside a
transaction that is rolled back when the module ends; each test runs in a savepoint of
it. ``ANALYZE`` runs after the insert, so the planner sees the table as it is. One row in
ten is unread (10,000), one in a hundred archived, one in a thousand snoozed, and one in
fifty in a team the user is no longer a member of (those must not show); the rest is
spread over the user's two teams.
The plans are checked on the SQL the endpoints ran (captured, with its parameters bound
client-side, as psycopg sends it), not on a re-built queryset.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from notifications.models import Notification
from tests.factories import MembershipFactory, TeamFactory, UserFactory

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

URL = "/api/notifications/"
TABLE = "notifications_notification"
BIG, SMALL = 100_000, 10
BATCH = 5_000


def _fill(*, user, teams, left_team, size: int, now) -> None:
    def row(i: int) -> Notification:
        at = now - timedelta(seconds=i)
        return Notification(
            recipient=user,
            team=left_team if i % 50 == 30 else teams[i % len(teams)],
            category="alert",
            title=f"checkout_error #{i}",
            actor_name="Ada",
            dedup_key=f"scale:{user.pk}:{i}",
            first_seen_at=at,
            last_seen_at=at,
            read_at=None if i % 10 == 0 else at,
            archived_at=at if i % 100 == 10 else None,
            snoozed_until=now + timedelta(days=1) if i % 1000 == 20 else None,
        )

    for start in range(0, size, BATCH):
        Notification.objects.bulk_create(
            [row(i) for i in range(start, min(start + BATCH, size))], batch_size=BATCH
        )


def _inbox(size: int, now):
    user = UserFactory()
    first = MembershipFactory(user=user).team
    second = TeamFactory(organization=first.organization)
    MembershipFactory(user=user, team=second)
    left_team = TeamFactory(organization=first.organization)  # no membership (any more)
    teams = [first, second]
    _fill(user=user, teams=teams, left_team=left_team, size=size, now=now)
    return user


@pytest.fixture(scope="module")
def inboxes(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock(), transaction.atomic():
        now = timezone.now()
        big, small = _inbox(BIG, now), _inbox(SMALL, now)
        # Check the deferred foreign keys now, once: left pending, every test's savepoint
        # rollback would hand them back to the next test's teardown check.
        connection.check_constraints()
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {TABLE}")
        yield {"big": big, "small": small}  # the two users
        transaction.set_rollback(True)


def _client(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@dataclass
class Call:
    queries: int
    sql: list[str]


def _calls(user, *, next_page: str | None = None, read_all: bool = True) -> dict[str, Call]:
    """Run the inbox's calls as ``user`` and return each one's queries: the list, its next
    page (``next_page`` when the first page has none), unread_count, read_all."""
    client = _client(user)
    done: dict[str, Call] = {}

    def run(name: str, method: str, url: str):
        with CaptureQueriesContext(connection) as ctx:
            response = getattr(client, method)(url)
        assert response.status_code == 200, (name, response.status_code, response.content)
        done[name] = Call(len(ctx.captured_queries), [q["sql"] for q in ctx.captured_queries])
        return response

    first = run("list", "get", URL).json()
    run("list page 2", "get", first["next"] or next_page)
    run("unread_count", "get", f"{URL}unread_count/")
    if read_all:
        run("read_all", "post", f"{URL}read_all/")
    done["next"] = first["next"]
    return done


def test_inbox_calls_run_as_many_queries_for_100k_notifications_as_for_10(inboxes):
    big = _calls(inboxes["big"])
    assert big.pop("next"), "the big inbox has a second page"
    # The small inbox has one page; for its "next page" it gets the cursor the big one
    # got: a position in time, which for it is a (short) page like any other.
    small = _calls(inboxes["small"], next_page=_client(inboxes["big"]).get(URL).json()["next"])
    assert small.pop("next") is None
    counts = {name: call.queries for name, call in big.items()}
    assert counts == {name: call.queries for name, call in small.items()}
    # The request's savepoint and its release around one or two queries.
    assert max(counts.values()) <= 4, {name: call.sql for name, call in big.items()}


def _explain(sql: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + sql)
        return "\n".join(line for (line,) in cursor.fetchall())


def test_inbox_queries_use_an_index(inboxes):
    """The one SELECT on the table that the list (both pages) and unread_count each run:
    the list's rows through ``inbox_list``; the badge's newest row (its ETag) through
    ``inbox_list`` and its unread count, in the same statement, through ``inbox_unread``;
    none by a sequential scan."""
    calls = _calls(inboxes["big"], read_all=False)
    expected = {
        "list": ["inbox_list"],
        "list page 2": ["inbox_list"],
        "unread_count": ["inbox_list", "inbox_unread"],
    }
    for name, indexes in expected.items():
        sqls = [s for s in calls[name].sql if s.startswith("SELECT") and f'FROM "{TABLE}"' in s]
        assert len(sqls) == 1, (name, sqls)
        plan = _explain(sqls[0])
        assert f"Seq Scan on {TABLE}" not in plan, f"{name}:\n{sqls[0]}\n{plan}"
        for index in indexes:
            assert re.search(rf"Index (Only )?Scan (using|on) {index}\b", plan), (
                f"{name} does not use {index}:\n{sqls[0]}\n{plan}"
            )


def test_the_big_inbox_shows_what_it_should(inboxes):
    """The data set is what the plans were checked on: 10,000 unread rows, less the
    archived, snoozed and left-team ones among them; newest first."""
    user = inboxes["big"]
    visible_unread = sum(
        1 for i in range(0, BIG, 10) if i % 100 != 10 and i % 1000 != 20 and i % 50 != 30
    )
    response = _client(user).get(f"{URL}unread_count/")
    assert response.json() == {"unread": visible_unread}
    page = _client(user).get(URL).json()["results"]
    assert len(page) == 50
    assert [row["title"] for row in page][:2] == ["checkout_error #0", "checkout_error #1"]
