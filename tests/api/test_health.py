"""/api/health/ on the real services: each one ok or the error (503 when one is down), and
whether the pipeline keeps up — consumer lag, the outbox, due deliveries — against the
thresholds (``degraded`` with the reason, still 200). One reading serves every caller for a few
seconds; only staff see why a service is down."""

import socket
import time
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from api.health import CACHE_KEY, CACHE_SECONDS, LEASE_KEY
from notifications import stream
from notifications.models import Delivery, DeliveryStatus, Outbox
from tests.factories import UserFactory

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def queries(captured: CaptureQueriesContext) -> list[str]:
    """Every query but the request's savepoint and its release (ATOMIC_REQUESTS inside the
    test's transaction)."""
    return [q["sql"] for q in captured.captured_queries if "SAVEPOINT" not in q["sql"]]


def health(client):
    response = client.get("/api/health/")
    return response.status_code, response.json()


def later():
    """``CACHE_SECONDS`` pass: the next call takes a new reading."""
    reading = cache.get(CACHE_KEY)
    age = timedelta(seconds=CACHE_SECONDS)
    cache.set(CACHE_KEY, {**reading, "checked_at": reading["checked_at"] - age})


def test_health_reports_each_service_ok_and_the_pipeline_keeping_up(client):
    code, body = health(client)
    assert code == 200
    assert (body["status"], body["reasons"]) == ("ok", [])
    assert (body["database"], body["redis"], body["kafka"]) == ("ok", "ok", "ok")
    assert body["pipeline"] == {
        "consumer_lag": 0,
        "outbox_backlog": 0,
        "outbox_oldest_seconds": 0,
        "delivery_oldest_due_seconds": 0,
    }
    assert body["thresholds"] == {
        "consumer_lag": 10_000,
        "outbox_oldest_seconds": 60,
        "delivery_oldest_due_seconds": 300,
    }


def test_health_names_the_service_that_is_down(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    code, body = health(client)
    assert code == 503
    assert body["status"] == "down"
    assert (body["database"], body["kafka"]) == ("ok", "ok")
    assert body["redis"].startswith("error: ")
    assert body["reasons"] == [f"redis: {body['redis']}"]


def test_kafka_down_is_503_and_its_lag_unknown(client, settings):
    settings.KAFKA_BOOTSTRAP_SERVERS = "127.0.0.1:1"
    code, body = health(client)
    assert (code, body["status"]) == (503, "down")
    assert body["pipeline"]["consumer_lag"] is None
    assert body["pipeline"]["outbox_backlog"] == 0


def test_anyone_learns_which_service_is_down_only_staff_learn_why(
    client, api_client, team, member_of, settings
):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    settings.KAFKA_BOOTSTRAP_SERVERS = "127.0.0.1:1"
    response = client.get("/api/health/")
    assert response.status_code == 503
    body = response.json()
    assert (body["status"], body["database"]) == ("down", "ok")
    assert (body["redis"], body["kafka"]) == ("error: unreachable", "error: unreachable")
    assert body["reasons"] == ["redis: error: unreachable", "kafka: error: unreachable"]
    assert "127.0.0.1" not in response.content.decode()

    api_client.force_authenticate(member_of(team))
    assert api_client.get("/api/health/").json()["reasons"] == body["reasons"]

    api_client.force_authenticate(UserFactory(is_staff=True))
    staff = api_client.get("/api/health/").json()
    assert staff["redis"].startswith("error: ConnectionError: ")
    assert "127.0.0.1:1" in staff["redis"] and "127.0.0.1:1" in staff["kafka"]
    assert staff["reasons"] == [f"redis: {staff['redis']}", f"kafka: {staff['kafka']}"]


def test_a_reading_serves_every_caller_for_a_few_seconds(client, monkeypatch):
    opened = []
    build_admin = stream.build_admin
    monkeypatch.setattr(stream, "build_admin", lambda: opened.append(1) or build_admin())

    first = client.get("/api/health/").json()
    assert (first["status"], len(opened)) == ("ok", 1)  # one admin client for check and lag
    with CaptureQueriesContext(connection) as captured:
        second = client.get("/api/health/").json()
    assert (second, len(opened), queries(captured)) == (first, 1, [])

    later()
    assert client.get("/api/health/").json()["checked_at"] != first["checked_at"]
    assert len(opened) == 2


def test_while_one_process_takes_a_new_reading_the_others_serve_the_last(client):
    first = client.get("/api/health/").json()
    later()
    assert cache.add(LEASE_KEY, "another process", timeout=30)
    with CaptureQueriesContext(connection) as captured:
        served = client.get("/api/health/").json()
    assert queries(captured) == []
    assert {**served, "checked_at": None} == {**first, "checked_at": None}
    assert served["checked_at"] < first["checked_at"]  # the last reading, aged by later()


# As in production: /api/health/ runs outside a request transaction (it must answer while
# the database does not), so DRF's 429 marks the test's own transaction for rollback.
@pytest.mark.django_db(transaction=True)
def test_anonymous_callers_are_rate_limited_staff_are_not(client, api_client, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"health": "2/min"},
    }
    assert [client.get("/api/health/").status_code for _ in range(3)] == [200, 200, 429]
    api_client.force_authenticate(UserFactory(is_staff=True))
    assert [api_client.get("/api/health/").status_code for _ in range(3)] == [200, 200, 200]


def test_with_the_cache_redis_down_it_still_says_so(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": settings.REDIS_URL,
        }
    }
    code, body = health(client)
    assert (code, body["status"], body["reasons"]) == (503, "down", ["redis: error: unreachable"])


@pytest.mark.django_db(transaction=True)
def test_events_nobody_consumes_are_lag_until_the_consumer_catches_up(
    client, team, settings, drain
):
    settings.NOTIFLOW_HEALTH_MAX_CONSUMER_LAG = 5
    now = timezone.now().isoformat()
    batch = [
        {"event": "checkout_error", "distinct_id": f"u{i}", "timestamp": now} for i in range(8)
    ]
    response = client.post(
        "/api/ingest/", {"api_key": team.api_token, "batch": batch}, content_type="application/json"
    )
    assert response.status_code == 202, response.content

    code, body = health(client)
    assert (code, body["status"]) == (200, "degraded")
    assert body["pipeline"]["consumer_lag"] == 8
    assert body["reasons"] == [
        "the consumer is 8 events behind, over NOTIFLOW_HEALTH_MAX_CONSUMER_LAG=5"
    ]

    drain(expected=8)
    later()
    code, body = health(client)
    assert (code, body["status"], body["pipeline"]["consumer_lag"]) == (200, "ok", 0)


def test_an_old_unpublished_outbox_row_is_degraded_until_the_relay_publishes_it(
    api_client, client, team, member_of
):
    """An insight edit writes its activity to the outbox; the relay (enqueued on commit,
    which this test's transaction never reaches) has not published it for two minutes."""
    ada = member_of(team)
    api_client.force_authenticate(ada)
    created = api_client.post("/api/insights/", {"team": team.pk, "name": "Revenue"})
    assert created.status_code == 201, created.content
    Outbox.objects.update(created_at=timezone.now() - timedelta(minutes=2))
    api_client.patch(f"/api/insights/{created.json()['id']}/", {"name": "Revenue (EUR)"})

    code, body = health(client)
    assert (code, body["status"]) == (200, "degraded")
    assert body["pipeline"]["outbox_backlog"] == 2
    assert 120 <= body["pipeline"]["outbox_oldest_seconds"] < 180
    (reason,) = body["reasons"]
    assert reason.startswith("the oldest unpublished outbox row is 1")
    assert reason.endswith(" s old, over NOTIFLOW_HEALTH_MAX_OUTBOX_AGE_SECONDS=60")

    assert stream.relay_outbox() == 2
    later()
    code, body = health(client)
    assert (body["status"], body["pipeline"]["outbox_backlog"]) == ("ok", 0)
    assert body["pipeline"]["consumer_lag"] == 2  # published, not yet consumed


def test_a_due_delivery_no_worker_took_is_degraded_one_waiting_for_its_retry_is_not(client, team):
    def queued(key, *, age, retry_in=None):
        row = Delivery.objects.create(
            idempotency_key=key, channel="slack", destination="#alerts", team=team
        )
        when = timezone.now()
        Delivery.objects.filter(pk=row.pk).update(
            created_at=when - age,
            next_retry_at=when + retry_in if retry_in is not None else None,
        )
        return row

    queued("backing-off", age=timedelta(hours=1), retry_in=timedelta(minutes=20))
    code, body = health(client)
    assert (body["status"], body["pipeline"]["delivery_oldest_due_seconds"]) == ("ok", 0)

    stuck = queued("nobody-took-it", age=timedelta(minutes=10))
    later()
    code, body = health(client)
    assert (code, body["status"]) == (200, "degraded")
    assert 600 <= body["pipeline"]["delivery_oldest_due_seconds"] < 660
    (reason,) = body["reasons"]
    assert reason.startswith("the oldest due delivery has waited 6")
    assert reason.endswith(" s, over NOTIFLOW_HEALTH_MAX_DELIVERY_WAIT_SECONDS=300")

    Delivery.objects.filter(pk=stuck.pk).update(status=DeliveryStatus.SENT)
    later()
    assert health(client)[1]["status"] == "ok"


def test_a_figure_far_over_says_it_in_plain_numbers(client, team, settings):
    settings.NOTIFLOW_HEALTH_MAX_DELIVERY_WAIT_SECONDS = 86_400
    row = Delivery.objects.create(
        idempotency_key="weeks-old", channel="slack", destination="#alerts", team=team
    )
    Delivery.objects.filter(pk=row.pk).update(created_at=timezone.now() - timedelta(days=15))
    (reason,) = health(client)[1]["reasons"]
    assert reason.startswith("the oldest due delivery has waited 1,296,0")
    assert reason.endswith(" s, over NOTIFLOW_HEALTH_MAX_DELIVERY_WAIT_SECONDS=86400")


def test_schema_and_docs_are_served(client):
    assert client.get("/api/schema/").status_code == 200
    assert client.get("/api/docs/").status_code == 200


def test_a_broker_that_accepts_connections_and_never_answers_is_down_in_seconds(client, settings):
    """A broker that is hung (its port still accepts): the admin client's bootstrap waits as
    long as one admin request (10 s), not kafka-python's 30 s, so the reading still ends
    inside the lease and sooner than a load balancer gives up on the health check."""
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(16)  # the kernel completes the handshake; nobody ever reads
        settings.KAFKA_BOOTSTRAP_SERVERS = f"127.0.0.1:{hung.getsockname()[1]}"
        started = time.monotonic()
        code, body = health(client)
        took = time.monotonic() - started
    assert (code, body["status"]) == (503, "down")
    assert body["kafka"].startswith("error: ")
    assert took < 15
