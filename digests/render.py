"""What a digest says. Pure: plain items and context in, a :class:`DigestView` and a channel
:class:`~notifications.channels.base.Message` out; no database, no settings (the HTML email
is a Django template, rendered from the same plain data).

Items are grouped by team, then by what they are about (the resource for activity, the
trigger for alerts, else the category), then by kind — "3 edits to Revenue dashboard".
A group of one shows the notification's own title. Items still unread are marked. Every
digest says when the next one comes and links to the inbox and the preferences page.

Slack and Telegram get the short form: the top :attr:`ShortForm.max_lines` group lines and
"…and N more". Email gets the long form, as its own text and HTML (``Message.text`` and
``Message.html``): every group with its items, each linked and marked if still unread.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from django.template.loader import render_to_string

from digests.windows import Period, Window, zone
from notifications.channels.base import Message
from notifications.events import parse_activity_event_name
from notifications.planning import ACTIVITY_TOPICS
from workspace.resources import resource_label

QUOTED = re.compile(r"“(?P<name>[^”]+)”")
CATEGORY_LABELS = {
    "alert": "Alerts",
    "activity": "Activity",
    "subscription": "Subscriptions",
    "announcement": "Announcements",
}
EMAIL_TEMPLATE = "digests/email.html"
PERIOD_LABELS = {Period.HOURLY: "hourly", Period.DAILY: "daily", Period.WEEKLY: "weekly"}


@dataclass(frozen=True)
class ShortForm:
    """Slack and Telegram: a glance, not a report."""

    max_lines: int = 8


@dataclass(frozen=True)
class LongForm:
    """Email: every group; at most ``max_items_per_group`` items listed under each."""

    max_items_per_group: int = 10


@dataclass(frozen=True)
class Item:
    notification_id: int
    team_id: int
    team_name: str
    category: str
    title: str
    url: str = ""
    event_name: str = ""
    trigger_id: int | None = None
    trigger_name: str = ""
    count: int = 1
    unread: bool = True
    created_at: datetime | None = None


@dataclass(frozen=True)
class Context:
    """Everything around the items: which window, when the next digest is, where links go."""

    window: Window
    base_url: str
    next_digest_at: datetime | None = None
    unsubscribe_url: str = ""
    digest_key: str = ""

    @property
    def inbox_url(self) -> str:
        return f"{self.base_url}/"

    @property
    def preferences_url(self) -> str:
        return f"{self.base_url}/preferences/"

    def next_digest_label(self) -> str:
        if self.next_digest_at is None:
            return ""
        local = self.next_digest_at.astimezone(zone(self.window.tz))
        return f"{local:%a %d %b %Y, %H:%M} ({self.window.tz})"


@dataclass(frozen=True)
class Group:
    team_name: str
    about: str
    kind: str
    headline_text: str
    items: tuple[Item, ...]

    @property
    def unread(self) -> int:
        return sum(1 for item in self.items if item.unread)

    @property
    def weight(self) -> int:
        return sum(max(item.count, 1) for item in self.items)

    def headline(self) -> str:
        if len(self.items) == 1:
            text = self.items[0].title
            if self.items[0].count > 1:
                text = f"{text} (×{self.items[0].count:,})"
            return f"{text} (unread)" if self.items[0].unread else text
        marker = f" ({self.unread} unread)" if self.unread else ""
        return f"{self.headline_text}{marker}"


@dataclass(frozen=True)
class Section:
    team_name: str
    groups: tuple[Group, ...]


@dataclass(frozen=True)
class DigestView:
    context: Context
    sections: tuple[Section, ...] = field(default_factory=tuple)

    @property
    def item_count(self) -> int:
        return sum(len(g.items) for s in self.sections for g in s.groups)

    @property
    def unread_count(self) -> int:
        return sum(g.unread for s in self.sections for g in s.groups)

    @property
    def is_empty(self) -> bool:
        return self.item_count == 0

    def subject(self) -> str:
        period = PERIOD_LABELS[self.context.window.period]
        n, teams = self.item_count, len(self.sections)
        updates = "update" if n == 1 else "updates"
        in_teams = "1 team" if teams == 1 else f"{teams} teams"
        return f"Your {period} digest: {n:,} {updates} in {in_teams}"

    def summary_line(self) -> str:
        unread = self.unread_count
        still = f", {unread:,} still unread" if unread else ""
        return f"{self.context.window.label()} ({self.context.window.tz}){still}."

    def group_lines(self) -> list[str]:
        """One line per group, team first: what the short form shows."""
        return [f"{s.team_name} — {g.headline()}" for s in self.sections for g in s.groups]

    def links_text(self) -> list[str]:
        lines = [f"Open your inbox: {self.context.inbox_url}"]
        if self.context.next_digest_at is not None:
            lines.append(f"Next digest: {self.context.next_digest_label()}")
        lines.append(f"Digest settings: {self.context.preferences_url}")
        return lines

    def long_text(self, form: LongForm = LongForm()) -> str:
        """Every team, every group, up to ``form.max_items_per_group`` items, and the links."""
        out = [self.summary_line()]
        for section in self.sections:
            out.append("")
            out.append(section.team_name)
            for group in section.groups:
                out.append(f"• {group.headline()}")
                if len(group.items) == 1:
                    if group.items[0].url:
                        out.append(f"   {group.items[0].url}")
                    continue
                shown = group.items[: form.max_items_per_group]
                for item in shown:
                    mark = " (unread)" if item.unread else ""
                    link = f" — {item.url}" if item.url else ""
                    out.append(f"   – {item.title}{mark}{link}")
                if len(group.items) > len(shown):
                    out.append(f"   – …and {len(group.items) - len(shown):,} more")
        out.append("")
        out.extend(self.links_text())
        return "\n".join(out)

    def email_text(self, form: LongForm = LongForm()) -> str:
        """The whole plain-text email: the long form, then the unsubscribe link."""
        text = self.long_text(form)
        if self.context.unsubscribe_url:
            text += f"\nUnsubscribe from all digest emails: {self.context.unsubscribe_url}"
        return text + "\n"

    def email_html(self, form: LongForm = LongForm()) -> str:
        """The HTML email (``digests/email.html``; the template escapes every text)."""
        sections = [
            {
                "team_name": section.team_name,
                "groups": [
                    {
                        "headline": group.headline(),
                        "single_url": group.items[0].url if len(group.items) == 1 else "",
                        "items": group.items[: form.max_items_per_group]
                        if len(group.items) > 1
                        else (),
                        "more": max(len(group.items) - form.max_items_per_group, 0),
                    }
                    for group in section.groups
                ],
            }
            for section in self.sections
        ]
        return render_to_string(
            EMAIL_TEMPLATE,
            {
                "subject": self.subject(),
                "summary": self.summary_line(),
                "sections": sections,
                "inbox_url": self.context.inbox_url,
                "preferences_url": self.context.preferences_url,
                "next_digest": self.context.next_digest_label(),
                "unsubscribe_url": self.context.unsubscribe_url,
            },
        )

    def short_lines(self, form: ShortForm = ShortForm()) -> list[str]:
        lines = self.group_lines()
        if len(lines) <= form.max_lines:
            return lines
        kept = lines[: form.max_lines - 1]
        return [*kept, f"…and {len(lines) - len(kept):,} more"]


def _about(item: Item) -> tuple[str, str, str]:
    """(subject key, kind, headline) of the group an item belongs to, within its team."""
    activity = parse_activity_event_name(item.event_name or "")
    if activity:
        resource, action = activity
        label = resource_label(resource)
        quoted = QUOTED.search(item.title)
        name = f"{quoted['name']} {label}" if quoted else f"a {label}"
        _, many, prep = ACTIVITY_TOPICS.get(action, (action, action, "on"))
        key = f"resource:{item.url or item.title}"
        return key, action, f"{{n}} {many} {prep} {name}"
    if item.trigger_id is not None:
        kind = item.event_name or item.category
        name = item.trigger_name or f"trigger {item.trigger_id}"
        return f"trigger:{item.trigger_id}", kind, f"{name}: {{n}} × {kind}"
    label = CATEGORY_LABELS.get(item.category, item.category)
    kind = item.event_name or item.category
    return f"category:{item.category}", kind, f"{label}: {{n}} × {kind}"


def build_view(items: Iterable[Item], context: Context) -> DigestView:
    """Group ``items`` into teams → subjects → kinds. Teams come in name order; inside a team
    the busiest group first."""
    grouped: dict[tuple[str, str, str], list[Item]] = defaultdict(list)
    headlines: dict[tuple[str, str, str], str] = {}
    for item in items:
        subject, kind, headline = _about(item)
        key = (item.team_name, subject, kind)
        grouped[key].append(item)
        headlines[key] = headline
    by_team: dict[str, list[Group]] = defaultdict(list)
    for (team_name, subject, kind), members in grouped.items():
        members.sort(
            key=lambda i: (i.created_at.timestamp() if i.created_at else 0, i.notification_id),
            reverse=True,
        )
        weight = sum(max(i.count, 1) for i in members)
        by_team[team_name].append(
            Group(
                team_name=team_name,
                about=subject,
                kind=kind,
                headline_text=headlines[(team_name, subject, kind)].replace("{n}", f"{weight:,}"),
                items=tuple(members),
            )
        )
    sections = tuple(
        Section(
            team_name=team,
            groups=tuple(sorted(groups, key=lambda g: (-g.weight, g.headline_text))),
        )
        for team, groups in sorted(by_team.items(), key=lambda pair: pair[0].lower())
    )
    return DigestView(context=context, sections=sections)


def to_message(view: DigestView, channel: str, *, short: ShortForm = ShortForm()) -> Message:
    """The channel message for a digest: the long form for email, the short for the rest."""
    ctx = view.context
    headers = {"X-Notiflow-Digest": ctx.digest_key} if ctx.digest_key else {}
    if channel == "email":
        return Message(
            title=view.subject(),
            body=view.long_text(),
            url=ctx.inbox_url,
            count=view.item_count,
            unsubscribe_url=ctx.unsubscribe_url,
            headers=headers,
            text=view.email_text(),
            html=view.email_html(),
        )
    body_parts = [view.summary_line()]
    if ctx.next_digest_at is not None:
        body_parts.append(f"Next digest: {ctx.next_digest_label()}")
    return Message(
        title=view.subject(),
        body="\n".join(body_parts),
        url=ctx.inbox_url,
        lines=tuple(view.short_lines(short)),
        count=view.item_count,
        footer=f"Digest settings: {ctx.preferences_url}",
        unsubscribe_url=ctx.unsubscribe_url,
        headers=headers,
    )


def plain_text(message: Message) -> str:
    """A channel-neutral rendering of a message, for ``--dry-run`` output and previews:
    the email's own text when it has one."""
    if message.text:
        return f"{message.title}\n\n{message.text.rstrip()}"
    parts: list[str] = [message.title]
    if message.body:
        parts.append(message.body)
    if message.lines:
        parts.append("\n".join(f"- {line}" for line in message.lines))
    tail = [text for text in (message.url and f"Inbox: {message.url}", message.footer) if text]
    if tail:
        parts.append("\n".join(tail))
    return "\n\n".join(parts)
