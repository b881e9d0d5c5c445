import json
import uuid
from datetime import UTC, datetime

import pytest

from notifications import events
from notifications.events import Actor, Event, InvalidEvent, Source, Subject


def make_event(**changes) -> Event:
    fields = dict(
        name="checkout_error",
        team_id=3,
        org_id=1,
        source=Source.INGEST,
        occurred_at=datetime(2026, 11, 23, 14, 2, tzinfo=UTC),
        properties={"amount": 120},
        actor=Actor(id=7, name="Alice"),
        subject=Subject(type="insight", id="9", name="Revenue", url="/insights/9"),
    )
    fields.update(changes)
    return Event(**fields)


def test_round_trip_keeps_every_field():
    event = make_event()
    assert events.decode(event.encode()) == event


def test_timestamps_are_normalised_to_utc():
    data = make_event().to_dict()
    data["occurred_at"] = "2026-11-23T15:02:00+01:00"
    assert events.from_dict(data).occurred_at == datetime(2026, 11, 23, 14, 2, tzinfo=UTC)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"schema": 2}, "schema"),
        ({"id": "not-a-uuid"}, "id"),
        ({"source": "webhook"}, "source"),
        ({"team_id": "3"}, "team_id"),
        ({"team_id": True}, "team_id"),
        ({"name": ""}, "name"),
        ({"occurred_at": "yesterday"}, "occurred_at"),
        ({"occurred_at": "2026-11-23T14:02:00"}, "occurred_at"),
        ({"properties": [1, 2]}, "properties"),
        ({"actor": {"id": "x", "name": "A"}}, "actor.id"),
        ({"subject": {"type": "insight", "name": "R"}}, "subject.id"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_invalid_envelopes_name_the_field(change, field):
    data = {**make_event().to_dict(), **change}
    with pytest.raises(InvalidEvent) as info:
        events.from_dict(data)
    assert info.value.field == field


@pytest.mark.parametrize("missing", ["id", "schema", "source", "name", "team_id", "org_id"])
def test_missing_fields_are_rejected(missing):
    data = make_event().to_dict()
    del data[missing]
    with pytest.raises(InvalidEvent, match=f"{missing}: "):
        events.from_dict(data)


@pytest.mark.parametrize("raw", [b"\xff\xfe", b"{not json", b"[1,2]", None])
def test_garbage_bytes_are_rejected_with_a_reason(raw):
    with pytest.raises(InvalidEvent) as info:
        events.decode(raw)
    assert info.value.field == "envelope"


def test_optional_fields_default():
    data = make_event().to_dict()
    for key in ("actor", "subject", "properties"):
        del data[key]
    event = events.from_dict(data)
    assert (event.actor, event.subject, event.properties) == (None, None, {})
    assert isinstance(event.id, uuid.UUID)
    assert json.loads(event.encode())["schema"] == 1
