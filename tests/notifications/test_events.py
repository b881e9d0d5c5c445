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


@pytest.mark.parametrize("name", ["activity.dashboard.deleted", "check.cohort_membership"])
def test_an_ingest_event_under_a_system_name_is_refused(name):
    with pytest.raises(InvalidEvent) as info:
        events.decode(make_event(name=name).encode())
    assert info.value.field == "name"
    assert events.decode(make_event(name=name, source=Source.ACTIVITY).encode()).name == name


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": "a\x00b"}, "name"),
        ({"properties": {"note": ["ok", {"x": "\x00"}]}}, "properties.note[1].x"),
        ({"properties": {"k\x00": 1}}, "a key of properties"),
        ({"actor": Actor(id=1, name="\x00")}, "actor.name"),
    ],
)
def test_a_nul_character_anywhere_is_refused_naming_where(change, field):
    """PostgreSQL stores no NUL: such an event goes to the dead-letter topic at once, with
    the reason, rather than failing its batch in store()."""
    with pytest.raises(InvalidEvent) as info:
        events.decode(make_event(**change).encode())
    assert info.value.field == field
    assert "NUL" in info.value.reason


def test_a_backslash_before_u0000_is_text_not_nul():
    event = make_event(properties={"path": "C:\\u0000"})
    assert events.decode(event.encode()) == event
