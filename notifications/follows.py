"""Who follows a resource: the people who worked on it (``Follow``), and who hears about
activity on it — its owner and those who took part before, never the actor. Called inside
the consumer's transaction, once per batch.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta

from notifications.events import Event
from notifications.models import Follow

FOLLOW_DECAY = timedelta(days=90)
"""How long taking part in a resource keeps a person hearing about it."""

Subject = tuple[int, str, str]
"""(team id, resource type, resource id)."""
Participants = Mapping[Subject, list[tuple[int, datetime]]]


def participants(activity: Sequence[Event]) -> dict[Subject, list[tuple[int, datetime]]]:
    """Who took part in each resource of the batch and when: the stored follows, read
    before this batch records its own, and every actor in the batch at their event's
    time. An edit is news to those who worked on the resource *before* it, so two edits
    in one batch tell the first editor of the second, and a replay, which finds later
    follows already stored, tells nobody of an edit made before they took part."""
    subjects = {
        (e.team_id, e.subject.type, e.subject.id) for e in activity if e.subject is not None
    }
    if not subjects:
        return {}
    by_subject: dict[Subject, list[tuple[int, datetime]]] = defaultdict(list)
    earliest = min(e.occurred_at for e in activity) - FOLLOW_DECAY
    stored = Follow.objects.filter(
        team_id__in={team for team, _, _ in subjects},
        resource_type__in={rtype for _, rtype, _ in subjects},
        resource_id__in={rid for _, _, rid in subjects},
        last_participated_at__gte=earliest,
    ).values_list("team_id", "resource_type", "resource_id", "user_id", "last_participated_at")
    for team, rtype, rid, user_id, when in stored:
        if (team, rtype, rid) in subjects:
            by_subject[(team, rtype, rid)].append((user_id, when))
    for e in activity:
        if e.subject is not None and e.actor is not None and e.actor.id is not None:
            key = (e.team_id, e.subject.type, e.subject.id)
            by_subject[key].append((e.actor.id, e.occurred_at))
    return by_subject


def audience(event: Event, participants: Participants) -> frozenset[int]:
    """Who hears about an activity event: the resource's owner and the people who worked
    on it before this event (within :data:`FOLLOW_DECAY`)."""
    candidates: set[int] = set()
    owner_id = event.properties.get("owner_id")
    if isinstance(owner_id, int):
        candidates.add(owner_id)
    subject = event.subject
    if subject is not None:
        since = event.occurred_at - FOLLOW_DECAY
        candidates.update(
            user_id
            for user_id, when in participants.get((event.team_id, subject.type, subject.id), ())
            if since <= when < event.occurred_at
        )
    return frozenset(candidates)


def follow(activity: Iterable[Event]) -> None:
    """The actor of an activity now follows the resource (upsert, newest time wins)."""
    latest: dict[tuple[int, str, str], tuple[int, datetime]] = {}
    for event in activity:
        if event.actor is None or event.actor.id is None or event.subject is None:
            continue
        key = (event.actor.id, event.subject.type, event.subject.id)
        if key not in latest or latest[key][1] < event.occurred_at:
            latest[key] = (event.team_id, event.occurred_at)
    if latest:
        Follow.objects.bulk_create(
            [
                Follow(
                    user_id=user_id,
                    resource_type=rtype,
                    resource_id=rid,
                    team_id=team_id,
                    last_participated_at=when,
                )
                for (user_id, rtype, rid), (team_id, when) in latest.items()
            ],
            update_conflicts=True,
            unique_fields=["user", "resource_type", "resource_id"],
            update_fields=["last_participated_at"],
        )
