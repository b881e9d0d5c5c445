"""Bad input at the edges: a request that is malformed, oversized, nested 10,000 deep or full
of huge strings gets a clear 4xx (never a 500) and nothing is published or stored; and
names full of HTML, Slack mrkdwn, ``&``, emoji and right-to-left text reach Slack, email and
the notification center escaped for each of them, never interpreted.

The rendering tests run the real path below the stream: an activity event about a resource
with a hostile name goes through ``planning.plan``, the store and ``delivery_send``, out to
the local Slack and SMTP servers, and onto the page through the Django test client.
"""

from __future__ import annotations

import html
import json
import re
import threading
import uuid
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from api import ingest
from notifications import store, stream
from notifications.consumers import BatchPolicy, ConsumerLoop
from notifications.delivery import delivery_send
from notifications.events import Actor, Event, Source, Subject, decode
from notifications.models import ChannelConfig, Delivery, Notification, Trigger
from notifications.planning import Audience, Match, plan
from notifications.processing import BatchResult, EventProcessor, queue_deliveries
from notifications.secrets import encrypt
from notifications.stream import TopicName
from notifications.triggers import compile_trigger
from tests.factories import MembershipFactory, TeamFactory, TriggerFactory, UserFactory

pytestmark = pytest.mark.django_db

INGEST = "/api/ingest/"
TRIGGERS = "/api/triggers/"
DEEP = 10_000


def event_item(**overrides):
    data = {
        "event": "checkout_error",
        "distinct_id": "user-1",
        "properties": {"amount": 150},
        "timestamp": "2026-03-01T13:00:00+01:00",
    }
    data.update(overrides)
    return data


@pytest.fixture
def published(monkeypatch):
    """What ingest handed to Kafka; a rejected request must leave this empty."""
    calls: list = []

    def record(events):
        calls.append(list(events))
        return len(calls[-1])

    monkeypatch.setattr(ingest, "publish_events", record)
    return calls


def raw_post(client: Client, url: str, raw: bytes | str, content_type="application/json"):
    return client.post(url, raw, content_type=content_type)


def assert_clear_4xx(response, *expected: int, json_body: bool = True):
    assert response.status_code in expected, (response.status_code, response.content[:300])
    if not json_body:
        return
    assert response["Content-Type"].startswith("application/json")
    assert response.json()  # a reason the client can read


# --- POST /api/ingest/ ------------------------------------------------------------------


def ingest_bodies(api_key: str) -> list[tuple[str, bytes | str, tuple[int, ...]]]:
    """(case, raw body, acceptable statuses): every one a client mistake."""

    def body(**fields) -> str:
        return json.dumps({"api_key": api_key, **fields})

    nested_array = "[" * DEEP + "]" * DEEP
    nested_object = '{"a":' * DEEP + "1" + "}" * DEEP
    return [
        ("not json", "{not json", (400,)),
        ("truncated", body(batch=[event_item()])[:-3], (400,)),
        ("single quotes", "{'api_key': 'x'}", (400,)),
        ("NaN", body(batch=[event_item()]).replace("150", "NaN"), (400,)),
        ("invalid utf-8", b'{"api_key": "\xff\xfe"}', (400,)),
        ("top-level array", json.dumps([event_item()]), (400,)),
        ("top-level string", '"batch"', (400,)),
        ("empty body", b"", (400, 401)),
        ("nested 10,000 deep as the body", nested_array, (400,)),
        (
            "nested 10,000 deep in a batch",
            f'{{"api_key":"{api_key}","batch":{nested_array}}}',
            (400,),
        ),
        (
            "nested 10,000 deep in properties",
            body(batch=[event_item(properties={})]).replace(
                '"properties": {}', f'"properties": {nested_object}'
            ),
            (400,),
        ),
        (
            "nested 900 deep in properties (parses, too deep to use)",
            body(batch=[event_item(properties={"p": "DEEP"})]).replace(
                '"DEEP"', "[" * 900 + "]" * 900
            ),
            (400,),
        ),
        ("integer of 5,000 digits", body(batch=[event_item()]).replace("150", "1" * 5000), (400,)),
        ("batch not a list", body(batch={"event": "x"}), (400,)),
        ("item not an object", body(batch=["x", 1, None]), (400,)),
        ("event name of 100,000 characters", body(batch=[event_item(event="e" * 100_000)]), (400,)),
        ("distinct_id of 1.2 MB", body(batch=[event_item(distinct_id="d" * 1_200_000)]), (400,)),
        ("property of 1.2 MB", body(batch=[event_item(properties={"p": "x" * 1_200_000})]), (400,)),
        ("key of 1.2 MB", body(batch=[event_item(properties={"k" * 1_200_000: 1})]), (400,)),
        ("body over 5 MB", body(batch=[event_item(properties={"p": "x" * (6 << 20)})]), (413,)),
        ("1,001 events", body(batch=[event_item()] * 1001), (413,)),
        (
            "timestamp before year 1 in UTC",
            body(batch=[event_item(timestamp="0001-01-01T00:00:00+01:00")]),
            (400,),
        ),
        (
            "timestamp after year 9999 in UTC",
            body(batch=[event_item(timestamp="9999-12-31T23:59:59-01:00")]),
            (400,),
        ),
        (
            "timestamp of 100,000 characters",
            body(batch=[event_item(timestamp="2" * 100_000)]),
            (400,),
        ),
        ("uuid not a string", body(batch=[event_item(uuid={"a": 1})]), (400,)),
        (
            "an activity name (the system's)",
            body(batch=[event_item(event="activity.dashboard.deleted")]),
            (400,),
        ),
        ("a check name (the system's)", body(batch=[event_item(event="check.x")]), (400,)),
        ("a NUL in the name", body(batch=[event_item(event="a\u0000b")]), (400,)),
        ("a NUL in a property", body(batch=[event_item(properties={"p": ["\u0000"]})]), (400,)),
        (
            "a timestamp a year ahead",
            body(batch=[event_item(timestamp=(timezone.now() + timedelta(days=365)).isoformat())]),
            (400,),
        ),
        (
            "api_key of 4 MB",
            json.dumps({"api_key": "k" * (4 << 20), "batch": [event_item()]}),
            (401,),
        ),
        (
            "api_key an object",
            json.dumps({"api_key": {"$ne": ""}, "batch": [event_item()]}),
            (401,),
        ),
    ]


CASES = [case for case, _, _ in ingest_bodies("x")]


@pytest.mark.parametrize("case", CASES)
def test_ingest_answers_bad_bodies_with_a_clear_4xx_and_publishes_nothing(
    client, team, published, case
):
    [(_, raw, expected)] = [c for c in ingest_bodies(team.api_token) if c[0] == case]
    response = raw_post(client, INGEST, raw)
    assert_clear_4xx(response, *expected)
    assert published == []


def test_ingest_refuses_what_is_not_json(client, team, published):
    response = raw_post(
        client, INGEST, "api_key=x", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 415
    assert published == []


@pytest.mark.parametrize(
    "text",
    [
        '{"api_key": "KEY", "batch": [{"event": "checkout_error", "distinct_id": "u", '
        '"properties": {"note": "\\ud800"}}]}',
        '{"api_key": "KEY", "batch": [{"event": "checkout_\\udfff", "distinct_id": "u"}]}',
        '{"api_key": "KEY", "batch": [{"event": "e", "distinct_id": "u", '
        '"properties": {"\\udbff": 1}}]}',
    ],
    ids=["in a property", "in the event name", "in a property key"],
)
def test_ingest_refuses_lone_surrogates_that_postgres_cannot_store(client, team, published, text):
    """JSON may spell a lone UTF-16 surrogate (``"\\ud800"``); Python accepts it, but it is
    not valid Unicode and PostgreSQL refuses it, so a consumer batch holding one would fail
    and be retried forever."""
    response = raw_post(client, INGEST, text.replace("KEY", team.api_token))
    assert_clear_4xx(response, 400)
    assert published == []


@pytest.mark.parametrize(
    "body",
    [
        {"name": "\ud800"},
        {"config": {"event": "checkout_\udfff"}},
        {"config": {"event": "x", "filters": [{"property": "\udbff", "operator": "is_set"}]}},
    ],
    ids=["in the name", "in the event", "in a filter"],
)
def test_trigger_api_refuses_lone_surrogates(member_client, team, body):
    data = {"team": team.pk, "name": "t", "kind": "event", "config": {"event": "x"}, **body}
    response = raw_post(member_client, TRIGGERS, json.dumps(data))  # ensure_ascii: \ud800
    assert_clear_4xx(response, 400)
    assert not Trigger.objects.filter(team=team).exists()


def run_consumer(seconds: float) -> BatchResult:
    """The real consumer loop over this test's topic for ``seconds``, then stopped (a
    batch that keeps failing is rewound and retried, so it would never go idle)."""
    stop = threading.Event()
    consumer = stream.build_consumer()
    producer = stream.build_producer()
    loop = ConsumerLoop(
        consumer, producer, EventProcessor(), BatchPolicy(retry_backoff_seconds=0.5)
    )
    timer = threading.Timer(seconds, stop.set)
    timer.start()
    try:
        return loop.run(stop)
    finally:
        timer.cancel()
        producer.close(timeout=5)
        consumer.close()


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_an_event_postgres_cannot_store_does_not_stall_the_consumer(team, member_of):
    """Another producer (not ingest) publishes an event whose property is a lone surrogate,
    one whose properties nest 200 deep, then a good one: the consumer dead-letters the
    first two and stores the third, instead of retrying their batch forever."""
    reader = member_of(team)
    TriggerFactory(team=team, owner=reader, subscribers=[reader])  # on checkout_error
    stream.ensure_topics()

    def event(**properties):
        return Event(
            name="checkout_error",
            team_id=team.pk,
            org_id=team.organization_id,
            source=Source.INGEST,
            occurred_at=timezone.now(),
            properties=properties,
        )

    deep: list = []
    for _ in range(200):
        deep = [deep]
    bad, nested, good = event(note="\ud800"), event(note=deep), event(note="fine")
    assert b"\\ud800" in bad.encode()
    stream.publish_events([bad, nested, good])
    result = run_consumer(8)
    assert (result.events, result.dead_lettered) == (1, 2)
    assert list(Notification.objects.values_list("event_id", flat=True)) == [good.id]


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_odd_types_and_stored_out_of_bound_triggers_do_not_fail_the_batch(team, member_of, drain):
    """Evaluation is total: an activity event whose ``action`` is a list and whose
    ``resource_type`` is an object, beside an event_count trigger saved with a window that
    overflows ``timedelta``, are evaluated like any other events (no match, no retry, no
    dead letter), and the good event in the same batch notifies."""
    reader = member_of(team)
    TriggerFactory(team=team, owner=reader, subscribers=[reader])  # on checkout_error
    TriggerFactory(team=team, owner=reader, kind="activity", config={"actions": ["deleted"]})
    TriggerFactory(
        team=team,
        owner=reader,
        kind="event_count",
        config={"event": "checkout_error", "count": 2, "window_minutes": 10**12},
    )
    stream.ensure_topics()

    def event(name, source, **properties):
        return Event(
            name=name,
            team_id=team.pk,
            org_id=team.organization_id,
            source=source,
            occurred_at=timezone.now(),
            properties=properties,
            subject=Subject("dashboard", "1", "Revenue", "/dashboards/1"),
        )

    odd = event(
        "activity.dashboard.deleted",
        Source.ACTIVITY,
        action=["deleted"],
        resource_type={"a": 1},
        changes=["not", "a", "mapping"],
        owner_id=[reader.pk],
    )
    good = event("checkout_error", Source.INGEST, note="fine")
    stream.publish_events([odd, good])
    result = drain(expected=2, timeout=30)
    assert (result.events, result.dead_lettered) == (2, 0)
    assert Notification.objects.filter(event_id=good.id, recipient=reader).exists()


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_check_event_whose_trigger_id_is_not_a_number_matches_nothing(team, member_of, drain):
    """Another producer's check events carry a list, an object, text and a float where the
    trigger's id goes: they match no trigger (no retry, no dead letter), and the real check
    event in the same batch notifies the trigger's subscriber."""
    reader = member_of(team)
    trigger = TriggerFactory(
        team=team, owner=reader, kind="insight_threshold", config={"insight_id": 999, "upper": 1}
    )
    stream.ensure_topics()

    def check(trigger_id):
        return Event(
            name="check.insight_threshold",
            team_id=team.pk,
            org_id=team.organization_id,
            source=Source.CHECK,
            occurred_at=timezone.now(),
            properties={"trigger_id": trigger_id, "summary": "above 1"},
        )

    odd = [check([trigger.pk]), check({"id": trigger.pk}), check(str(trigger.pk))]
    odd.append(check(float(trigger.pk)))
    real = check(trigger.pk)
    stream.publish_events([*odd, real])
    result = drain(expected=5, timeout=30)
    assert (result.events, result.dead_lettered) == (5, 0)
    assert list(Notification.objects.values_list("event_id", "recipient")) == [(real.id, reader.pk)]


@pytest.mark.integration
def test_after_every_bad_request_only_the_good_event_is_on_the_topic(client, team):
    """The same bad bodies against the real broker: the topic holds the one good event."""
    stream.ensure_topics()
    for case, raw, expected in ingest_bodies(team.api_token):
        assert raw_post(client, INGEST, raw).status_code in expected, case
    sentinel = str(uuid.uuid4())
    good = raw_post(
        client,
        INGEST,
        json.dumps({"api_key": team.api_token, "batch": [event_item(uuid=sentinel)]}),
    )
    assert good.status_code == 202

    consumer = stream.build_consumer(
        stream.topic(TopicName.EVENTS), group_id=f"test-bad-input-{uuid.uuid4()}"
    )
    records = []
    try:
        for _ in range(20):
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
            if records and consumer.position(next(iter(consumer.assignment()))) >= max(
                consumer.end_offsets(list(consumer.assignment())).values()
            ):
                break
    finally:
        consumer.close()
    assert [str(decode(r.value).id) for r in records] == [sentinel]


# --- POST /api/triggers/ -----------------------------------------------------------------


def trigger_bodies(team_id: int) -> list[tuple[str, bytes | str, tuple[int, ...]]]:
    def body(**fields) -> str:
        data = {"team": team_id, "name": "t", "kind": "event", "config": {"event": "x"}}
        data.update(fields)
        return json.dumps(data)

    nested = "[" * DEEP + "]" * DEEP
    return [
        ("not json", "{not json", (400,)),
        (
            "NaN",
            body(
                config={"event": "x", "filters": [{"property": "p", "operator": "gt", "value": 1}]}
            ).replace(": 1}", ": NaN}"),
            (400,),
        ),
        ("invalid utf-8", b'{"name": "\xff"}', (400,)),
        ("nested 10,000 deep as the body", nested, (400,)),
        ("nested 10,000 deep in config", body().replace('{"event": "x"}', nested), (400,)),
        ("config not an object", body(config=[1, 2]), (400,)),
        ("name of 1 MB", body(name="n" * (1 << 20)), (400,)),
        ("event of 1 MB", body(config={"event": "e" * (1 << 20)}), (400,)),
        (
            "regex of 1 MB",
            body(
                config={
                    "event": "x",
                    "filters": [{"property": "p", "operator": "regex", "value": "a" * (1 << 20)}],
                }
            ),
            (400,),
        ),
        (
            "catastrophic regex (linear on RE2)",
            body(
                config={
                    "event": "x",
                    "filters": [{"property": "p", "operator": "regex", "value": "(a|a)*c"}],
                }
            ),
            (201,),
        ),
        (
            "regex with a backreference",
            body(
                config={
                    "event": "x",
                    "filters": [{"property": "p", "operator": "regex", "value": r"(a+)\1"}],
                }
            ),
            (400,),
        ),
        (
            "regex repeat too large",
            body(
                config={
                    "event": "x",
                    "filters": [{"property": "p", "operator": "regex", "value": "(a{999}){999}"}],
                }
            ),
            (400,),
        ),
        (
            "1,000 filters",
            body(
                config={"event": "x", "filters": [{"property": "p", "operator": "is_set"}] * 1000}
            ),
            (400,),
        ),
        (
            "gt a 400-digit number",
            body(
                config={
                    "event": "x",
                    "filters": [{"property": "p", "operator": "gt", "value": "BIG"}],
                }
            ).replace('"BIG"', "1" + "0" * 400),
            (201, 400),
        ),
        ("count on an event trigger", body(config={"event": "x", "count": "lots"}), (400, 201)),
        ("unhashable actions", body(kind="activity", config={"actions": [{"a": 1}]}), (400,)),
        (
            "body of 3 MB",
            body(
                config={
                    "event": "x",
                    "filters": [{"property": "p", "operator": "exact", "value": "v" * (3 << 20)}],
                }
            ),
            (413,),
        ),
        (
            "channels of 1 MB",
            body(channels=[{"type": "slack", "target": "#" + "a" * (1 << 20)}]),
            (400,),
        ),
        ("10,000 channels", body(channels=[{"type": "in_app"}] * 10_000), (400,)),
    ]


TRIGGER_CASES = [case for case, _, _ in trigger_bodies(0)]


@pytest.fixture
def member_client(team, member_of):
    client = Client()
    client.force_login(member_of(team))
    return client


@pytest.mark.parametrize("case", TRIGGER_CASES)
def test_trigger_api_answers_bad_bodies_with_a_clear_4xx_and_stores_nothing(
    member_client, team, case
):
    [(_, raw, expected)] = [c for c in trigger_bodies(team.pk) if c[0] == case]
    before = Trigger.objects.count()
    response = raw_post(member_client, TRIGGERS, raw)
    assert response.status_code in expected, (response.status_code, response.content[:300])
    if response.status_code >= 400:
        assert_clear_4xx(response, *expected)
        assert Trigger.objects.count() == before
    else:
        # Accepted: then the consumer must be able to compile it (one trigger that cannot
        # compile stops the trigger reload for every team).
        trigger = Trigger.objects.get(pk=response.json()["id"])
        compile_trigger(
            id=trigger.pk,
            team_id=trigger.team_id,
            kind=trigger.kind,
            name=trigger.name,
            config=trigger.config,
            channels=trigger.channels,
            delivery=trigger.delivery,
        ).matches_properties({"p": 10**400})


# --- bodies over Django's upload limit ----------------------------------------------------

THREE_MB = 3 << 20
"""Over Django's ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (2.5 MB), under ingestion's own 5 MB."""


@pytest.fixture
def owner_client(team, member_of):
    client = Client()
    client.force_login(member_of(team, role="owner"))
    return client


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/api/triggers/"),
        ("put", "/api/triggers/{trigger}/"),
        ("patch", "/api/triggers/{trigger}/"),
        ("post", "/api/triggers/{trigger}/test/"),
        ("post", "/api/channels/"),
        ("put", "/api/preferences/"),
        ("post", "/api/announcements/"),
        ("post", "/api/insights/"),
    ],
)
def test_a_body_over_the_upload_limit_gets_the_api_json_413_everywhere(
    owner_client, team, method, path
):
    trigger = TriggerFactory(team=team)
    url = path.format(trigger=trigger.pk)
    body = json.dumps({"name": "n" * THREE_MB, "team": team.pk})
    response = getattr(owner_client, method)(url, body, content_type="application/json")
    assert response.status_code == 413, (response.status_code, response.content[:300])
    assert response["Content-Type"].startswith("application/json")
    assert response.json() == {"detail": "request body is larger than 2.5 MB"}
    trigger.refresh_from_db()
    assert Trigger.objects.count() == 1 and trigger.name != "n" * THREE_MB


@pytest.mark.parametrize(
    "content_type", ["application/x-www-form-urlencoded", "multipart/form-data"]
)
def test_a_form_body_over_the_upload_limit_gets_the_json_413_too(member_client, team, content_type):
    if content_type == "multipart/form-data":
        response = member_client.post(TRIGGERS, {"team": team.pk, "name": "n" * THREE_MB})
    else:
        body = f"team={team.pk}&name={'n' * THREE_MB}"
        response = member_client.post(TRIGGERS, body, content_type=content_type)
    assert response.status_code == 413
    assert response.json() == {"detail": "request body is larger than 2.5 MB"}
    assert not Trigger.objects.exists()


def test_a_form_body_of_more_fields_than_django_reads_gets_a_json_400(member_client, team):
    """1,000 subscribers are allowed, but a form body stops at 1,000 fields."""
    body = f"team={team.pk}&name=n&kind=event&" + "&".join(["subscribers=1"] * 1000)
    response = member_client.post(TRIGGERS, body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400
    assert "more than 1000 fields" in response.json()["detail"]
    assert not Trigger.objects.exists()


def test_ingest_takes_a_3_mb_body_under_its_own_5_mb_limit(client, team, published):
    """Ingestion reads its body itself, so Django's 2.5 MB does not apply; its own limit
    answers 413 in the same shape (``body over 5 MB`` above)."""
    batch = [event_item(properties={"blob": "x" * 800_000}) for _ in range(4)]
    raw = json.dumps({"api_key": team.api_token, "batch": batch})
    assert len(raw) > THREE_MB
    response = raw_post(client, INGEST, raw)
    assert response.status_code == 202, response.content[:300]
    assert response.json() == {"accepted": 4}
    assert [len(call) for call in published] == [4]


# --- hostile names, escaped per medium ---------------------------------------------------

HOSTILE = {
    "html": "<script>alert(1)</script>",
    "mrkdwn": "*bold* _it_ ~gone~ `code`",
    "mentions": "<!channel> <@U024BE7LH> <#C024BE7LR|ops>",
    "link": "<https://evil.example|click me>",
    "ampersand": "Tom & Jerry &amp; &lt;co&gt;",
    "emoji": "🚀 Launch ✓ ÆØÅ",
    "rtl": "שלום \u202eexe.txt\u202c عربي",
    "quotes": "\"double\" 'single' `back`",
}
SLACK_ENTITY = re.compile(r"&(amp|lt|gt);")


def slack_unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def assert_safe_mrkdwn(text: str) -> None:
    """Slack mrkdwn gives ``<``, ``>`` and ``&`` meaning (links, mentions, entities): in
    user text each must arrive as &lt; &gt; &amp;."""
    assert "<" not in text and ">" not in text, text
    assert "&" not in SLACK_ENTITY.sub("", text), text


@pytest.fixture
def hostile_setup(team, member_of):
    """A team named ``name`` whose member is told — in-app, by email and on Slack — that
    someone with a hostile name edited an insight with a hostile name."""

    def build(name: str, slack_token: str):
        team.name = f"Team {name}"
        team.save()
        reader = member_of(team)
        reader.email = "reader@example.com"
        reader.save()
        actor = UserFactory()
        MembershipFactory(team=team, user=actor)
        ChannelConfig.objects.create(
            organization=team.organization,
            type="slack",
            name="Slack",
            config={},
            secret_encrypted=encrypt(slack_token),
        )
        channels = [{"type": "in_app"}, {"type": "email"}, {"type": "slack", "target": "#alerts"}]
        row = TriggerFactory(
            team=team,
            owner=reader,
            kind="activity",
            config={"actions": ["updated"]},
            channels=channels,
        )
        trigger = compile_trigger(
            id=row.pk,
            team_id=team.pk,
            kind=row.kind,
            name=row.name,
            config=row.config,
            channels=channels,
            delivery={"mode": "instant"},
        )
        event = Event(
            name="activity.updated",
            team_id=team.pk,
            org_id=team.organization_id,
            source=Source.ACTIVITY,
            occurred_at=timezone.now(),
            properties={
                "action": "updated",
                "resource_type": "insight",
                "changes": {"description": {"before": "old", "after": name}},
            },
            actor=Actor(id=actor.pk, name=f"Eve {name}"),
            subject=Subject(type="insight", id="9", name=name, url="/insights/9"),
        )
        audience = Audience(
            members={team.pk: frozenset({reader.pk, actor.pk})},
            muted={},
            off={},
            addresses={"email": {reader.pk: reader.email}},
        )
        planned = plan([Match(event, trigger, frozenset({reader.pk}), "You follow it.")], audience)
        stored = store.write(planned.notifications)
        assert len(stored) == 1
        delivery_ids = queue_deliveries(planned.deliveries, stored)
        assert len(delivery_ids) == 2  # email and Slack
        return reader, planned, delivery_ids

    return build


@pytest.mark.integration
@pytest.mark.parametrize("name", list(HOSTILE.values()), ids=list(HOSTILE))
def test_hostile_names_are_escaped_in_slack_email_and_on_the_page(
    hostile_setup, slack_server, smtp_server, name
):
    reader, planned, delivery_ids = hostile_setup(name, slack_server.token)
    [draft] = planned.notifications
    title = draft.title
    assert name in title and f"Eve {name}" in title

    for delivery_id in delivery_ids:
        result = delivery_send(delivery_id=delivery_id)
        assert result is not None and result.status == "sent", Delivery.objects.get(
            pk=delivery_id
        ).last_error

    # Slack: the header is plain_text (shown verbatim, never parsed); every mrkdwn text is
    # escaped, and unescaping it gives back exactly what was written.
    [post] = slack_server.posts
    header = post.blocks[0]
    assert header["type"] == "header" and header["text"]["type"] == "plain_text"
    assert header["text"]["text"] == title
    mrkdwn = [post.text] + [
        element["text"]
        for block in post.blocks[1:]
        for element in ([block["text"]] if "text" in block else block.get("elements", []))
        if element.get("type") == "mrkdwn"
    ]
    for text in mrkdwn:
        assert_safe_mrkdwn(text)
    assert slack_unescape(post.text).startswith(title)
    assert f"Changed description: old → {name}" in [slack_unescape(t) for t in mrkdwn]
    assert any(slack_unescape(t) == f"Team {name}" for t in mrkdwn)

    # Email: one-line subject as written; plain text verbatim; HTML escaped.
    [mail] = smtp_server.messages
    # (the stdlib folds an encoded subject onto a continuation line: strip that space)
    assert mail.message["Subject"].strip() == f"[Team {name}] {title}"
    text_part, html_part = mail.part("text/plain"), mail.part("text/html")
    assert title in text_part and name in text_part
    assert html.escape(title) in html_part
    assert html.escape(f"Team {name}") in html_part
    if any(c in name for c in "<>&\"'"):
        assert name not in html_part
    assert "<script>alert" not in html_part

    # The page: escaped by the template, never raw.
    client = Client()
    client.force_login(reader)
    page = client.get("/")
    assert page.status_code == 200
    content = page.content.decode()
    assert html.escape(title) in content
    assert html.escape(f"Team {name}") in content
    assert html.escape(f"Eve {name}") in content
    if any(c in name for c in "<>&\"'"):
        assert name not in content
    assert "<script>alert" not in content
    stored = Notification.objects.get(recipient=reader)
    assert stored.title == title  # stored as written: escaping is each medium's job


def test_a_slack_link_or_mention_in_a_name_reaches_slack_as_text(slack_server, team):
    """The same through the channel alone, for every hostile name at once."""
    from notifications.channels.base import Destination, Message
    from notifications.channels.slack import SlackChannel

    names = list(HOSTILE.values())
    message = Message(
        title=" ".join(names)[:140],
        body="\n".join(names),
        lines=names,
        team_name=names[2],
        footer=names[3],
    )
    outcome = SlackChannel(timeout=2).send(
        message, Destination("#alerts", {"bot_token": slack_server.token})
    )
    assert outcome.result == "sent", outcome.detail
    [post] = slack_server.posts
    texts = (
        [post.text]
        + [b["text"]["text"] for b in post.blocks if b["type"] == "section"]
        + [e["text"] for b in post.blocks if b["type"] == "context" for e in b["elements"]]
    )
    for text in texts:
        assert_safe_mrkdwn(text)
    joined = slack_unescape("\n".join(texts))
    for name in names:
        assert name in joined
    # Emphasis characters cannot be escaped in mrkdwn; they arrive unchanged (see the
    # module docstring of docs/reliability.md: Slack renders *bold* as bold).
    assert HOSTILE["mrkdwn"] in joined


def test_unicode_survives_the_page_untouched():
    """Emoji, combining marks and right-to-left text need no escaping in HTML: they must
    come out byte for byte (UTF-8), not as entities or question marks."""
    team = TeamFactory(name=HOSTILE["emoji"])
    user = UserFactory()
    MembershipFactory(team=team, user=user)
    now = timezone.now()
    Notification.objects.create(
        recipient=user,
        team=team,
        category="activity",
        title=HOSTILE["rtl"],
        body=HOSTILE["emoji"] + " e\u0301",
        dedup_key=f"unicode:{uuid.uuid4()}",
        first_seen_at=now,
        last_seen_at=now,
    )
    client = Client()
    client.force_login(user)
    page = client.get("/")
    assert page["Content-Type"] == "text/html; charset=utf-8"
    content = page.content.decode("utf-8")
    assert HOSTILE["rtl"] in content
    assert HOSTILE["emoji"] + " e\u0301" in content
