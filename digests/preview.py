"""Render digests that are not (or not yet) rows: a dry run's plan, a user's next digest.
Reads only; sends and writes nothing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from digests import queries, render
from digests.builder import PlannedDigest, eligible_items, recipient_for
from digests.models import digest_key
from digests.sender import render_context
from digests.windows import Window, due_at, upcoming_window
from notifications.channels.base import Message


@dataclass(frozen=True)
class Rendered:
    key: str
    user_id: int
    username: str
    channel: str
    window: Window
    due_at: datetime
    view: render.DigestView
    message: Message | None


def render_plans(plans: list[PlannedDigest]) -> list[Rendered]:
    """Each planned digest with something in it, rendered for its channel."""
    wanted = [p for p in plans if not p.is_empty]
    items = queries.items_for_notifications({nid for p in wanted for nid in p.notification_ids})
    rendered = []
    for p in wanted:
        recipient = p.recipient
        context = render_context(
            window=p.window,
            user_id=recipient.user_id,
            channel=p.channel,
            digest_hour=recipient.digest_hour,
            key=p.key,
        )
        view = render.build_view([items[n] for n in p.notification_ids if n in items], context)
        rendered.append(
            Rendered(
                key=p.key,
                user_id=recipient.user_id,
                username=recipient.username,
                channel=p.channel,
                window=p.window,
                due_at=due_at(p.window, recipient.digest_hour),
                view=view,
                message=None if view.is_empty else render.to_message(view, p.channel),
            )
        )
    return rendered


def digest_preview(*, user_id: int, now: datetime, channel: str | None = None) -> list[Rendered]:
    """The user's next digest on each of their channels (or on ``channel``) as it stands
    at ``now``: the window that goes out next and what is in it so far. Empty when the
    user's digests are off or they have no channel to receive one on."""
    found = recipient_for(user_id)
    if found is None:
        return []
    window = upcoming_window(found.period, now, found.timezone, found.digest_hour)
    wanted = [
        (
            found,
            window,
            ch,
            digest_key(user_id=user_id, channel=ch, period=found.period, window_start=window.start),
        )
        for ch in found.digest_channels()
        if channel is None or ch == channel
    ]
    items = eligible_items(wanted, now=now)
    plans = [
        PlannedDigest(key=key, recipient=r, channel=ch, window=w, notification_ids=items[key])
        for r, w, ch, key in wanted
    ]
    rendered = render_plans(plans)
    by_key = {r.key: r for r in rendered}
    out = []
    for p in plans:
        if p.key in by_key:
            out.append(by_key[p.key])
            continue
        context = render_context(
            window=p.window,
            user_id=user_id,
            channel=p.channel,
            digest_hour=found.digest_hour,
            key=p.key,
        )
        out.append(
            Rendered(
                key=p.key,
                user_id=user_id,
                username=found.username,
                channel=p.channel,
                window=p.window,
                due_at=due_at(p.window, found.digest_hour),
                view=render.build_view([], context),
                message=None,
            )
        )
    return out
