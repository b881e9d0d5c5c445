"""Proposed fixes, applied in the benchmark's processes only, to measure them before they
land (``--fast-encode``). Nothing here is imported unless a flag asks for it.

``fast_to_dict`` is the proposed ``Event.to_dict`` (notifications/events.py): the same
dict, key order included, built by hand instead of ``dataclasses.asdict``, which
deep-copies ``properties`` on every call. ``apply()`` checks that it gives byte-identical
``encode()`` output on a sample before it replaces the method.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any


def fast_to_dict(self: Any) -> dict[str, Any]:
    actor, subject = self.actor, self.subject
    return {
        "name": self.name,
        "team_id": self.team_id,
        "org_id": self.org_id,
        "source": str(self.source),
        "occurred_at": self.occurred_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "properties": self.properties,
        "actor": None if actor is None else {"id": actor.id, "name": actor.name},
        "subject": None
        if subject is None
        else {"type": subject.type, "id": subject.id, "name": subject.name, "url": subject.url},
        "id": str(self.id),
        "schema": self.schema,
    }


def apply() -> bool:
    """Replace ``Event.to_dict`` unless it no longer uses ``asdict``; True if replaced."""
    import inspect
    from datetime import datetime

    from notifications.events import Actor, Event, Source, Subject

    if "asdict" not in inspect.getsource(Event.to_dict):
        return False  # the fix has landed: measure the project as it is

    samples = [
        Event(
            name="checkout_error",
            team_id=3,
            org_id=1,
            source=Source.INGEST,
            occurred_at=datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC),
            properties={"amount": 150, "nested": {"a": [1, 2, {"b": None}]}, "ok": True},
        ),
        Event(
            name="activity.updated",
            team_id=3,
            org_id=1,
            source=Source.ACTIVITY,
            occurred_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
            actor=Actor(id=7, name="Alex"),
            subject=Subject(type="dashboard", id="12", name="Revenue", url="/d/12"),
            properties={"action": "updated"},
        ),
    ]
    before = [e.encode() for e in samples]
    original = Event.to_dict
    Event.to_dict = fast_to_dict  # type: ignore[method-assign]
    if [e.encode() for e in samples] != before:
        Event.to_dict = original  # type: ignore[method-assign]
        raise RuntimeError("fast_to_dict does not match Event.to_dict; not applied")
    return True
