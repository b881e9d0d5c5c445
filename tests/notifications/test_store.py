"""The store is the one writer of notification rows: every row comes from a planning
``Draft`` through ``store.write`` or ``store.grow``, once per dedup key."""

from __future__ import annotations

import ast
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from notifications import store
from notifications.events import Event, Source
from notifications.models import Notification
from notifications.planning import (
    Audience,
    Match,
    RollupHit,
    announcement_draft,
    channel_off_drafts,
    plan,
    render,
    rollup_draft,
    subscriber_reason,
)
from notifications.triggers import compile_trigger
from tests.factories import TriggerFactory

ROOT = Path(__file__).resolve().parents[2]
WRITES = {"create", "bulk_create", "get_or_create", "update_or_create"}
T0 = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)


def _writes_a_notification(func: ast.expr) -> bool:
    """``Notification(…)`` or ``Notification.objects.<create>(…)``."""
    if isinstance(func, ast.Name):
        return func.id == "Notification"
    manager = func.value if isinstance(func, ast.Attribute) and func.attr in WRITES else None
    return (
        isinstance(manager, ast.Attribute)
        and manager.attr == "objects"
        and isinstance(manager.value, ast.Name)
        and manager.value.id == "Notification"
    )


def notification_writes(path: Path) -> list[int]:
    """Lines of ``path`` that build a ``Notification`` or create rows through its manager."""
    return [
        node.lineno
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call) and _writes_a_notification(node.func)
    ]


def test_no_module_but_the_store_writes_notification_rows():
    sources = [
        p
        for package in ("notifications", "digests", "api", "frontend", "workspace")
        for p in (ROOT / package).rglob("*.py")
        if "migrations" not in p.parts
    ]
    writers = {
        str(p.relative_to(ROOT)): lines for p in sources if (lines := notification_writes(p))
    }
    assert writers == {}
    assert "INSERT INTO" in (ROOT / "notifications" / "store.py").read_text()


def trigger(**fields):
    return compile_trigger(
        **{
            "id": 3,
            "team_id": 7,
            "kind": "event",
            "name": "Big errors",
            "config": {"event": "checkout_error"},
            "channels": [{"type": "in_app"}],
            "delivery": {"mode": "rollup", "window_seconds": 60},
            **fields,
        }
    )


def event(**fields):
    return Event(
        **{
            "name": "checkout_error",
            "team_id": 7,
            "org_id": 1,
            "source": Source.INGEST,
            "occurred_at": T0,
            "properties": {"amount": 120},
            **fields,
        }
    )


def test_a_rolled_up_row_reads_like_the_instant_one():
    t, e = trigger(), event()
    hit = RollupHit(t, "in_app", "5", 5, e, "sample")
    draft = rollup_draft(hit, window_id=11, count=3, first_seen_at=T0, last_seen_at=T0)
    instant = trigger(delivery={"mode": "instant"})
    [planned] = plan(
        [Match(e, instant, frozenset({5}), subscriber_reason(instant.name))],
        Audience(members={7: frozenset({5})}, muted={}, off={}),
    ).notifications
    assert draft.title == planned.title == render(e, instant)[1]
    assert draft.reason == planned.reason
    assert (draft.dedup_key, draft.group_key, draft.count) == ("rollup:11:5", "rollup:3:5", 3)


def test_each_admin_hears_once_per_moment_a_channel_went_off():
    drafts = channel_off_drafts(
        channel="Slack “ops”", why="3 failures", channel_id=4, team_id=7, admins={2, 1}, now=T0
    )
    assert [d.recipient_id for d in drafts] == [1, 2]
    assert len({d.dedup_key for d in drafts}) == 2
    assert drafts[0].title == "Slack “ops” was turned off" and drafts[0].body == "3 failures"


@pytest.mark.django_db
def test_a_draft_is_written_once(team, member_of):
    user = member_of(team)
    drafts = [
        announcement_draft(
            announcement_id=1,
            organization_wide=True,
            recipient_id=user.pk,
            team_id=team.pk,
            title="x" * 500,
            body="Maintenance tonight",
            actor_id=user.pk,
            actor_name="Ann",
            now=T0,
        ),
        *channel_off_drafts(
            channel="Slack", why="gone", channel_id=9, team_id=team.pk, admins=[user.pk], now=T0
        ),
    ]
    written = store.write(drafts)
    assert set(written) == {d.dedup_key for d in drafts}
    assert store.write(drafts) == {}
    rows = {n.dedup_key: n for n in Notification.objects.all()}
    for draft in drafts:
        row = rows[draft.dedup_key]
        assert row.pk == written[draft.dedup_key]
        assert (row.title, row.body, row.reason, row.category, row.group_key) == (
            draft.title,
            draft.body,
            draft.reason,
            draft.category,
            draft.group_key,
        )
        assert len(row.title) <= 400 and row.first_seen_at == T0


@pytest.mark.django_db
def test_growing_adds_to_the_one_row(team, member_of):
    user = member_of(team)
    t = trigger(team_id=team.pk, id=TriggerFactory(team=team).pk)
    hit = RollupHit(t, "in_app", str(user.pk), user.pk, event(team_id=team.pk), "")
    later = T0 + timedelta(minutes=1)
    store.grow(rollup_draft(hit, window_id=1, count=2, first_seen_at=T0, last_seen_at=T0))
    store.grow(rollup_draft(hit, window_id=1, count=3, first_seen_at=T0, last_seen_at=later))
    row = Notification.objects.get()
    assert (row.count, row.first_seen_at, row.last_seen_at) == (5, T0, later)
