"""POST /api/ingest/: validation and ids (unit), and the round trip through real Kafka."""

from __future__ import annotations

import io
import json
import logging
import time
import uuid
from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from api import ingest
from notifications import events, ingestion, stream
from notifications.events import Source
from notifications.stream import TopicName
from tests.factories import TeamFactory

URL = "/api/ingest/"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def item(**overrides):
    data = {
        "event": "checkout_error",
        "distinct_id": "user-1",
        "properties": {"amount": 150, "currency": "EUR"},
        "timestamp": "2026-03-01T13:00:00+01:00",
    }
    data.update(overrides)
    return data


def post(client, body):
    return client.post(URL, body, content_type="application/json")


@pytest.fixture
def no_publish(monkeypatch):
    """Unit tests of rejected requests: reaching Kafka at all is a failure."""

    def refuse(*args, **kwargs):
        pytest.fail("a rejected request must publish nothing")

    monkeypatch.setattr(ingest, "publish_events", refuse)


# --- the service: envelopes and ids -------------------------------------------------------


@pytest.mark.django_db
def test_ingest_batch_builds_ingest_envelopes(team):
    [event] = ingestion.ingest_batch(team=team, batch=[item()], now=NOW)
    assert event.source is Source.INGEST
    assert event.name == "checkout_error"
    assert (event.team_id, event.org_id) == (team.id, team.organization_id)
    assert event.properties == {"amount": 150, "currency": "EUR", "distinct_id": "user-1"}
    assert event.occurred_at == datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    assert event.occurred_at.tzinfo is UTC
    assert event.actor is None and event.subject is None
    assert events.decode(event.encode()) == event


@pytest.mark.django_db
def test_missing_timestamp_and_properties_default_to_now_and_empty(team):
    [event] = ingestion.ingest_batch(
        team=team, batch=[{"event": "signup", "distinct_id": "u"}], now=NOW
    )
    assert event.occurred_at == NOW
    assert event.properties == {"distinct_id": "u"}


@pytest.mark.django_db
def test_ids_are_deterministic_so_retries_deduplicate(team):
    batch = [item(), item(distinct_id="user-2")]
    first = [e.id for e in ingestion.ingest_batch(team=team, batch=batch, now=NOW)]
    retry = [e.id for e in ingestion.ingest_batch(team=team, batch=batch, now=datetime.now(UTC))]
    assert first == retry
    assert first[0] != first[1]
    assert all(i.version == 5 for i in first)


@pytest.mark.django_db
def test_property_order_does_not_change_the_id_but_values_and_team_do(team):
    def one_id(t, **overrides):
        return ingestion.ingest_batch(team=t, batch=[item(**overrides)], now=NOW)[0].id

    base = one_id(team)
    assert one_id(team, properties={"currency": "EUR", "amount": 150}) == base
    assert one_id(team, properties={"amount": 151, "currency": "EUR"}) != base
    assert one_id(team, timestamp="2026-03-01T13:00:01+01:00") != base
    assert one_id(team, event="checkout_ok") != base
    assert one_id(TeamFactory()) != base


@pytest.mark.django_db
def test_client_uuid_is_the_event_id(team):
    client_id = uuid.uuid4()
    [event] = ingestion.ingest_batch(team=team, batch=[item(uuid=str(client_id))], now=NOW)
    assert event.id == client_id


@pytest.mark.django_db
def test_every_bad_field_of_every_bad_event_is_named(team):
    batch = [
        item(),
        item(event="", distinct_id=7),
        item(properties=["not", "a", "dict"]),
        item(timestamp="2026-03-01T12:00:00"),
        item(timestamp="yesterday", uuid="not-a-uuid"),
        item(event="x" * (events.MAX_NAME_LENGTH + 1)),
        "just a string",
    ]
    with pytest.raises(ingestion.BatchRejected) as caught:
        ingestion.ingest_batch(team=team, batch=batch, now=NOW)
    found = [(e.index, e.field) for e in caught.value.errors]
    assert found == [
        (1, "event"),
        (1, "distinct_id"),
        (2, "properties"),
        (3, "timestamp"),
        (4, "timestamp"),
        (4, "uuid"),
        (5, "event"),
        (6, "batch"),
    ]
    messages = {(e.index, e.field): e.message for e in caught.value.errors}
    assert "offset" in messages[(3, "timestamp")]
    assert "200 characters" in messages[(5, "event")]


@pytest.mark.django_db
def test_an_event_kafka_could_never_take_is_rejected_not_retried(team):
    huge = item(properties={"blob": "x" * ingestion.MAX_EVENT_BYTES})
    with pytest.raises(ingestion.BatchRejected) as caught:
        ingestion.ingest_batch(team=team, batch=[item(), huge], now=NOW)
    [error] = caught.value.errors
    assert (error.index, error.field) == (1, "properties")
    assert "bytes encoded" in error.message


def test_the_parser_stops_reading_past_the_body_limit():
    body = io.BytesIO(b" " * (ingest.MAX_BODY_BYTES + 1))
    with pytest.raises(ingest.BodyTooLarge):
        ingest.BoundedJSONParser().parse(body, "application/json", {})
    assert body.tell() == ingest.MAX_BODY_BYTES + 1


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["activity.dashboard.deleted", "check.insight_threshold"])
def test_names_under_activity_and_check_belong_to_the_system(client, team, no_publish, name):
    """A client cannot forge what the product itself says ("someone deleted …")."""
    response = post(client, {"api_key": team.api_token, "batch": [item(), item(event=name)]})
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert (error["index"], error["field"]) == (1, "event")
    assert "activity." in error["message"] and "check." in error["message"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("overrides", "field", "where"),
    [
        ({"event": "check\u0000out"}, "event", "event"),
        ({"distinct_id": "user\u0000"}, "distinct_id", "distinct_id"),
        ({"properties": {"no\u0000te": 1}}, "properties", "a key"),
        ({"properties": {"note": ["fine", {"deep": "x\u0000"}]}}, "properties", "note[1].deep"),
    ],
)
def test_a_nul_character_anywhere_is_400_naming_the_field(
    client, team, no_publish, overrides, field, where
):
    """PostgreSQL stores no NUL in text or jsonb: such an event could only be dead-lettered."""
    response = post(client, {"api_key": team.api_token, "batch": [item(**overrides)]})
    assert response.status_code == 400, response.content
    [error] = response.json()["errors"]
    assert (error["index"], error["field"]) == (0, field)
    assert "NUL" in error["message"] and where in error["message"]


@pytest.mark.django_db
def test_a_timestamp_beyond_the_clock_skew_is_400_naming_it(client, team, no_publish):
    """One client clock set to tomorrow must not reorder everyone's event_count windows."""
    tomorrow = (datetime.now(UTC) + ingestion.MAX_CLOCK_SKEW * 24).isoformat()
    response = post(
        client, {"api_key": team.api_token, "batch": [item(), item(timestamp=tomorrow)]}
    )
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert (error["index"], error["field"]) == (1, "timestamp")
    assert "1 hour" in error["message"]


@pytest.mark.django_db
def test_a_timestamp_within_the_clock_skew_is_kept(team):
    ahead = NOW + ingestion.MAX_CLOCK_SKEW
    [event] = ingestion.ingest_batch(team=team, batch=[item(timestamp=ahead.isoformat())], now=NOW)
    assert event.occurred_at == ahead


# --- the endpoint, without Kafka ----------------------------------------------------------


@pytest.mark.django_db
def test_bad_events_answer_400_listing_each_and_publish_nothing(client, team, no_publish):
    response = post(
        client,
        {"api_key": team.api_token, "batch": [item(), item(distinct_id=""), item(uuid=12)]},
    )
    assert response.status_code == 400
    assert response.json() == {
        "errors": [
            {"index": 1, "field": "distinct_id", "message": "must be a non-empty string, got ''"},
            {"index": 2, "field": "uuid", "message": "must be a UUID string, got 12"},
        ]
    }


@pytest.mark.django_db
@pytest.mark.parametrize("batch", [None, [], {"event": "x"}, "events"])
def test_batch_must_be_a_non_empty_list(client, team, no_publish, batch):
    body = {"api_key": team.api_token}
    if batch is not None:
        body["batch"] = batch
    response = post(client, body)
    assert response.status_code == 400
    assert [e["field"] for e in response.json()["errors"]] == ["batch"]


@pytest.mark.django_db
def test_body_must_be_an_object(client, no_publish):
    response = post(client, [item()])
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "body"


@pytest.mark.django_db
@pytest.mark.parametrize("api_key", [None, "", "phc_not-a-real-token", 12345])
def test_missing_or_unknown_api_key_is_401(client, team, no_publish, api_key):
    body = {"batch": [item()]}
    if api_key is not None:
        body["api_key"] = api_key
    response = post(client, body)
    assert response.status_code == 401
    assert "api_key" in response.json()["detail"]


@pytest.mark.django_db
def test_auth_is_checked_before_the_batch(client, no_publish):
    response = post(client, {"api_key": "phc_unknown", "batch": "garbage"})
    assert response.status_code == 401


@pytest.mark.django_db
def test_more_events_than_the_limit_is_413_naming_it(client, team, settings, no_publish):
    settings.NOTIFLOW_INGEST_MAX_EVENTS = 3
    response = post(client, {"api_key": team.api_token, "batch": [item()] * 4})
    assert response.status_code == 413
    assert "at most 3" in response.json()["detail"]


@pytest.mark.django_db
def test_the_limit_defaults_to_1000(client, team, no_publish):
    response = post(client, {"api_key": team.api_token, "batch": [item()] * 1001})
    assert response.status_code == 413
    assert "at most 1000" in response.json()["detail"]


@pytest.mark.django_db
def test_a_body_over_5_mb_is_413(client, team, no_publish):
    big = {"api_key": team.api_token, "batch": [item(properties={"blob": "x" * (6 << 20)})]}
    response = post(client, big)
    assert response.status_code == 413
    assert "5 MB" in response.json()["detail"]


@pytest.mark.django_db
@pytest.mark.parametrize("raw", ["{not json", '{"api_key": NaN}'])
def test_a_body_that_is_not_strict_json_is_400(client, no_publish, raw):
    response = client.post(URL, raw, content_type="application/json")
    assert response.status_code == 400
    assert "JSON parse error" in response.json()["detail"]


@pytest.fixture
def published(monkeypatch):
    """Unit tests of accepted requests: what would have gone to Kafka, batch by batch."""
    batches = []

    def publish(events):
        batches.append(list(events))
        return len(batches[-1])

    monkeypatch.setattr(ingest, "publish_events", publish)
    return batches


@pytest.mark.django_db
def test_a_key_seen_moments_ago_costs_no_query(client, team, published):
    assert post(client, {"api_key": team.api_token, "batch": [item()]}).status_code == 202
    with CaptureQueriesContext(connection) as second:
        assert post(client, {"api_key": team.api_token, "batch": [item()]}).status_code == 202
    # Only the request's savepoint and its release (ATOMIC_REQUESTS inside the test's
    # transaction) are left: no SELECT, the team comes from the process's cache.
    assert not [q["sql"] for q in second.captured_queries if "SELECT" in q["sql"]]
    assert [e.team_id for batch in published for e in batch] == [team.id, team.id]


@pytest.mark.django_db
def test_a_rotated_key_is_refused_at_once_and_the_new_one_accepted(client, team, published):
    old = team.api_token
    assert post(client, {"api_key": old, "batch": [item()]}).status_code == 202
    team.api_token = "phc_rotated-" + uuid.uuid4().hex
    team.save()
    assert post(client, {"api_key": old, "batch": [item()]}).status_code == 401
    assert post(client, {"api_key": team.api_token, "batch": [item()]}).status_code == 202
    assert len(published) == 2


@pytest.mark.django_db
def test_the_key_of_a_deleted_team_is_refused_at_once(client, team, published):
    key = team.api_token
    assert post(client, {"api_key": key, "batch": [item()]}).status_code == 202
    team.delete()
    assert post(client, {"api_key": key, "batch": [item()]}).status_code == 401


def test_the_schema_documents_the_endpoint(client, db):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    operation = schema["paths"]["/api/ingest/"]["post"]
    assert set(operation["responses"]) == {"202", "400", "401", "413", "503"}
    request_ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert request_ref.endswith("/IngestRequest")


# --- the endpoint against the real Kafka broker -------------------------------------------


def read_events(topic_name, expected, *, deadline_s=20.0):
    consumer = stream.build_consumer(topic_name, group_id=f"test-ingest-{uuid.uuid4()}")
    received = []
    try:
        deadline = time.monotonic() + deadline_s
        while len(received) < expected and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                received.extend(records)
    finally:
        consumer.close()
    return received


@pytest.mark.integration
@pytest.mark.django_db
def test_a_batch_of_100_is_on_the_events_topic_when_accepted(client, team):
    stream.ensure_topics()
    batch = [
        item(
            event=f"event_{i % 5}",
            distinct_id=f"user-{i}",
            properties={"n": i},
            timestamp=f"2026-03-01T12:{i // 60:02d}:{i % 60:02d}Z",
        )
        for i in range(100)
    ]
    response = post(client, {"api_key": team.api_token, "batch": batch})
    assert response.status_code == 202
    assert response.json() == {"accepted": 100}

    records = read_events(stream.topic(TopicName.EVENTS), 100)
    assert len(records) == 100
    assert {r.key for r in records} == {str(team.id).encode()}
    received = sorted((events.decode(r.value) for r in records), key=lambda e: e.properties["n"])
    assert [e.name for e in received] == [f"event_{i % 5}" for i in range(100)]
    assert [e.properties for e in received] == [
        {"n": i, "distinct_id": f"user-{i}"} for i in range(100)
    ]
    assert {(e.team_id, e.org_id, e.source) for e in received} == {
        (team.id, team.organization_id, Source.INGEST)
    }
    expected_ids = [e.id for e in ingestion.ingest_batch(team=team, batch=batch, now=NOW)]
    assert [e.id for e in received] == expected_ids


@pytest.mark.integration
@pytest.mark.django_db
def test_a_body_over_djangos_upload_cap_but_under_5_mb_is_accepted(client, team):
    """Django caps request.body at 2.5 MB; ingest's own limit is 5 MB."""
    stream.ensure_topics()
    blob = "x" * 750_000
    batch = [item(distinct_id=f"user-{i}", properties={"blob": blob}) for i in range(4)]
    raw = json.dumps({"api_key": team.api_token, "batch": batch})
    assert 3_000_000 < len(raw) < ingest.MAX_BODY_BYTES
    response = client.post(URL, raw, content_type="application/json")
    assert response.status_code == 202
    assert response.json() == {"accepted": 4}
    records = read_events(stream.topic(TopicName.EVENTS), 4)
    assert sorted(events.decode(r.value).properties["distinct_id"] for r in records) == [
        f"user-{i}" for i in range(4)
    ]


@pytest.fixture
def fresh_producer():
    stream.reset_shared_producer()
    yield
    stream.reset_shared_producer()


@pytest.mark.integration
@pytest.mark.django_db
def test_kafka_unreachable_is_503_and_logged(client, team, settings, caplog, fresh_producer):
    settings.KAFKA_BOOTSTRAP_SERVERS = "127.0.0.1:1"
    with caplog.at_level(logging.WARNING, logger="api.ingest"):
        response = post(client, {"api_key": team.api_token, "batch": [item()]})
    assert response.status_code == 503
    assert response.json() == {"detail": "event stream unavailable, retry"}
    assert any(
        r.levelno == logging.WARNING and "not published" in r.getMessage() for r in caplog.records
    )
