"""A little history for the demo organization, so a first login shows the product at work.

Everything goes the real way: colleagues' edits are resource saves (activity log → outbox),
and the analytics events are ingestion envelopes (``ingestion.ingest_batch``) put in the
outbox; the relay publishes both to Kafka and the consumer turns them into notifications
with the stored triggers, as for any traffic. Run it again and it adds nothing: an edit is
made only while the resource still lacks it, and each event has a fixed id (a second outbox
row with that id is refused, and the consumer counts an event once per trigger anyway).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from notifications.ingestion import ingest_batch
from notifications.models import Outbox
from workspace.activity import acting_as
from workspace.models import Dashboard, FeatureFlag, Insight, Team

DEMO_EVENTS = uuid.UUID("0b5c4f8e-3f55-4d7e-9a56-2d1f3e4c5b6a")

# (resource, its creator in seed_demo, the colleague who edits it, what they change)
EDITS = (
    (Dashboard, "Revenue", "carol", {"description": "Q3 targets on top; EUR only."}),
    (Insight, "Checkout conversion", "bob", {"description": "Excludes test orders."}),
    (FeatureFlag, "New checkout", "alice", {"rollout_percentage": 50}),
    (Dashboard, "App health", "carol", {"pinned": True}),
)


def seed_history(*, teams: dict[str, Team], users: dict, now: datetime) -> tuple[int, int]:
    """Make the colleagues' edits and queue the events; returns (edits made, events queued)
    by this run."""
    edits = sum(_edit(model, name, users[editor], change) for model, name, editor, change in EDITS)
    web, mobile = teams["Web app"], teams["Mobile app"]
    events = [
        *_events(
            web,
            "checkout_error",  # a burst: "Expensive checkout errors" rolls it up into one
            40,
            now - timedelta(minutes=12),
            lambda i: {"amount": 120 + i, "currency": "EUR"},
        ),
        *_events(
            web,
            "user_signed_up",  # more than 50 in 10 minutes: "Signup spike"
            55,
            now - timedelta(minutes=8),
            lambda i: {"plan": "free"},
        ),
        *_events(
            mobile,
            "app_crash",  # "App crash", one notification
            1,
            now - timedelta(minutes=3),
            lambda i: {"os": "ios", "version": "4.2.0"},
        ),
    ]
    queued = sum(
        Outbox.objects.get_or_create(
            event_id=event.id, defaults={"team_id": event.team_id, "payload": event.to_dict()}
        )[1]
        for event in events
    )
    return edits, queued


def _edit(model, name: str, editor, change: dict) -> bool:
    resource = model.objects.filter(name=name).order_by("pk").first()
    if resource is None or all(getattr(resource, k) == v for k, v in change.items()):
        return False
    for field, value in change.items():
        setattr(resource, field, value)
    with acting_as(editor):
        resource.save()
    return True


def _events(team: Team, name: str, count: int, start: datetime, properties) -> list:
    """``count`` ingestion envelopes a few seconds apart from ``start``, with fixed ids."""
    batch = [
        {
            "uuid": str(
                uuid.uuid5(DEMO_EVENTS, f"{team.organization.slug}/{team.name}/{name}/{i}")
            ),
            "event": name,
            "distinct_id": f"demo-user-{i % 7}",
            "timestamp": (start + timedelta(seconds=5 * i)).isoformat(),
            "properties": properties(i),
        }
        for i in range(count)
    ]
    return ingest_batch(team=team, batch=batch, now=start + timedelta(seconds=5 * count))
