"""/api/health/ on the real services: each one ok or the error (503 when one is down), and
whether the pipeline keeps up — consumer lag, the outbox, due deliveries — against the
thresholds (``degraded`` with the reason, still 200)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from notifications import stream
from notifications.models import Delivery, DeliveryStatus, Outbox

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def health(client):
    response = client.get("/api/health/")
    return response.status_code, response.json()


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
    code, body = health(client)
    assert (code, body["status"]) == (200, "degraded")
    assert 600 <= body["pipeline"]["delivery_oldest_due_seconds"] < 660
    (reason,) = body["reasons"]
    assert reason.startswith("the oldest due delivery has waited 6")
    assert reason.endswith(" s, over NOTIFLOW_HEALTH_MAX_DELIVERY_WAIT_SECONDS=300")

    Delivery.objects.filter(pk=stuck.pk).update(status=DeliveryStatus.SENT)
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
