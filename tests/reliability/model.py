"""A pure reference model of what each person gets from the pipeline, written from the
promises in DESIGN.md (not from the code), for the model-based test in ``test_model.py``.

It knows nothing of Django, Kafka or the notification code: people, teams, triggers as a
user configures them, events as a client sends them, and a clock. Feed it the same steps
as the real system and it says what each person must have:

- **in-app rows**: one per event × trigger × recipient for ``instant``; ONE row per roll-up
  window and recipient whose ``count`` is the matches in that window; one per activity on
  a resource for its owner and the people who worked on it before, never the actor;
- **messages per destination**: ``instant``, one per match per channel (a Slack channel
  per trigger, an email per recipient); ``rollup``, exactly one summary per window and
  destination, carrying the window's count;
- nothing twice, whatever is replayed or resent; nobody hears about a team they are not
  in when the message is made;
- an event is evaluated against the triggers as they were when the API accepted the
  event (every trigger change the API answered before it);
- **digest items** (a ``digest`` trigger sends no message of its own: one in-app row per
  match and recipient, whatever its channels, and the person's next digest): a run of the
  daily or weekly digest at ``now`` builds, for each person on that cadence with an email
  and the email digest on, the latest window now due — daily ``[00:00, 24:00)``, weekly
  Monday to Monday, in the person's zone, due at the digest hour on the day the window
  ends — once (a window built before is left alone, sent or empty); it holds the person's
  rows made in that window or the one before it that no email digest holds yet, of teams
  the person is in at build time, and not already emailed to them; one mail when it holds
  anything, none when empty; nothing twice, whatever is re-run.

Rules the model takes where DESIGN.md is silent, as a user of Sentry, Alertmanager or Knock
would expect them:

- ``event_count`` "N within M minutes" fires on the event that makes N matching events in
  the trailing M minutes (by event time), at most once per M minutes; events seen while the
  trigger was disabled or snoozed do not count.
- A roll-up window opens at the first match's processing time, closes ``window_seconds``
  later (the delivery setting when it opened), and at its end sends one summary per
  destination even if the trigger changed meanwhile: those matches happened.
- Who is a member is read when the notification is made (the event is processed, or the
  window's summary is sent).
- A row's digest window goes by when the row was made (the consume that wrote it; a
  roll-up row when its window opened), and the digest counts a roll-up row as its count
  at the run.
- "Already emailed" is an instant email of the same match to the same person; a roll-up
  summary is a count, so the in-app row of its window still goes in the digest (DESIGN.md
  does not say either way).
- A row made in a window whose digest was already built waits for the next window's
  digest; a row two windows back from the one a run builds is not taken by it (the
  README's backfill recipe: run once per missed window).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time, timedelta, timezone
from typing import Any

AMOUNT_OVER_100 = "amount>100"
PLAN_IS_PRO = "plan=pro"
FILTERS: dict[str | None, list[dict[str, Any]]] = {
    None: [],
    AMOUNT_OVER_100: [{"property": "amount", "operator": "gt", "value": 100}],
    PLAN_IS_PRO: [{"property": "plan", "operator": "exact", "value": "pro"}],
}
"""The filters the model understands, as the API takes them."""


def as_number(value: Any) -> int | float | None:
    """A JSON number (never a boolean; integers exactly, however large), or a string that
    reads as a finite number; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def passes(filter_name: str | None, properties: dict[str, Any]) -> bool:
    """``amount gt 100``: a number above 100. ``plan exact "pro"``: the text "pro" in any
    case (no other value equals a word)."""
    if filter_name is None:
        return True
    if filter_name == AMOUNT_OVER_100:
        number = as_number(properties.get("amount"))
        return number is not None and number > 100
    if filter_name == PLAN_IS_PRO:
        plan = properties.get("plan")
        return isinstance(plan, str) and plan.lower() == "pro"
    raise AssertionError(f"no reference for filter {filter_name}")


@dataclass(frozen=True)
class TriggerConfig:
    """A trigger as its owner set it through the API."""

    kind: str  # "event" | "event_count"
    event: str
    filter: str | None = None
    count: int = 1
    window_minutes: int = 1
    channels: frozenset[str] = frozenset({"in_app"})
    mode: str = "instant"  # "instant" | "rollup" | "digest"
    window_seconds: int = 60
    subscribers: frozenset[str] = frozenset()  # empty: the owner alone
    enabled: bool = True
    snoozed: bool = False

    @property
    def active(self) -> bool:
        return self.enabled and not self.snoozed


@dataclass(frozen=True)
class Trigger:
    key: int
    team: str
    owner: str
    config: TriggerConfig

    @property
    def name(self) -> str:
        return f"mbt{self.key}"

    @property
    def slack_target(self) -> str:
        return f"#mbt-{self.key}"

    def audience(self) -> frozenset[str]:
        return self.config.subscribers or frozenset({self.owner})


@dataclass(frozen=True)
class Event:
    """What reached the stream: an ingested event, or activity on a resource."""

    id: str
    team: str
    name: str
    at: datetime
    properties: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    actor: str | None = None
    resource: str | None = None  # activity only
    action: str | None = None  # activity only


@dataclass(frozen=True)
class Row:
    """One in-app row as the person sees it; ``event`` is None for a roll-up row."""

    user: str
    team: str
    trigger: int | None  # None: built-in activity
    event: str | None
    count: int = 1


@dataclass(frozen=True)
class Message:
    """One message that reached a destination: ``count`` is None for an instant one."""

    destination: str  # a Slack channel or an email address
    trigger: int
    count: int | None = None


@dataclass(frozen=True)
class DigestMail:
    """One digest email as its reader sees it: how many items, in how many teams, and per
    team and subject (``mbt<key>`` for a trigger, ``activity`` for activity on insights)
    the number of items and what they add up to (a roll-up row weighs its count)."""

    address: str
    period: str
    items: int
    teams: int
    groups: tuple[tuple[str, str, int, int], ...]  # (team, subject, items, weight), sorted


@dataclass
class Reader:
    """A person's digest settings: cadence ``off`` | ``daily`` | ``weekly``, the digest
    email switch, their zone (a fixed UTC offset in hours) and digest hour."""

    cadence: str
    email_on: bool
    utc_offset: int
    hour: int = 9

    @property
    def zone(self) -> timezone:
        return timezone(timedelta(hours=self.utc_offset))


def digest_window(period: str, at: datetime, zone: timezone) -> tuple[datetime, datetime]:
    """The daily ``[00:00, 24:00)`` or weekly Monday-to-Monday window holding ``at``, in
    ``zone``."""
    local = at.astimezone(zone)
    start = datetime.combine(local.date(), time(), tzinfo=zone)
    if period == "weekly":
        start -= timedelta(days=local.weekday())
        return start, start + timedelta(days=7)
    return start, start + timedelta(days=1)


def due_digest_window(reader: Reader, at: datetime) -> tuple[datetime, datetime]:
    """The latest window whose digest is due at ``at``: one that has ended, at the digest
    hour of the day it ends."""
    start, _ = digest_window(reader.cadence, at, reader.zone)
    ended = digest_window(reader.cadence, start - timedelta(seconds=1), reader.zone)
    due = max(ended[1], datetime.combine(ended[1].date(), time(reader.hour), tzinfo=reader.zone))
    if due <= at:
        return ended
    return digest_window(reader.cadence, ended[0] - timedelta(seconds=1), reader.zone)


@dataclass
class Window:
    trigger: Trigger
    channel: str
    destination: str  # Slack channel, or the recipient's name for in_app and email
    closes_at: datetime
    count: int = 0
    row: int | None = None  # index into Model.rows of the in-app row


@dataclass
class Pending:
    event: Event
    triggers: dict[int, Trigger]  # as they were when the API accepted the event


@dataclass
class Counting:
    """An ``event_count`` trigger's memory: the times of the events it counted."""

    times: list[datetime] = field(default_factory=list)
    last_fired: datetime | None = None


class Model:
    def __init__(
        self,
        members: dict[str, set[str]],
        emails: dict[str, str],
        readers: dict[str, Reader] | None = None,
    ) -> None:
        self.members = {team: set(users) for team, users in members.items()}
        self.emails = dict(emails)
        self.readers = dict(readers or {})
        self.made_at: list[datetime] = []  # when each row of ``rows`` was made
        self.emailed: set[int] = set()  # rows whose match was emailed to their person
        self.built: set[tuple[str, str, datetime]] = set()  # (person, period, window start)
        self.in_digest: set[int] = set()  # rows an email digest holds
        self.digest_mails: list[DigestMail] = []
        self._made = datetime.min.replace(tzinfo=UTC)
        self.triggers: dict[int, Trigger] = {}
        self.pending: list[Pending] = []
        self.seen: set[str] = set()
        self.rows: list[Row] = []
        self.messages: list[Message] = []
        self.windows: dict[tuple[int, str, str], Window] = {}
        self.counting: dict[int, Counting] = {}
        self.owners: dict[str, str] = {}  # resource → owner
        self.participants: dict[str, set[str]] = {}  # resource → who acted on it so far
        self.resource_team: dict[str, str] = {}
        self.deleted: set[str] = set()

    # --- what people do ------------------------------------------------------------------

    def add_trigger(self, trigger: Trigger) -> None:
        self.triggers[trigger.key] = trigger

    def change_trigger(self, key: int, **changes: Any) -> None:
        trigger = self.triggers[key]
        self.triggers[key] = replace(trigger, config=replace(trigger.config, **changes))

    def ingest(self, events: list[Event]) -> None:
        snapshot = dict(self.triggers)
        self.pending.extend(Pending(event, snapshot) for event in events)

    def resource_created(self, resource: str, team: str, owner: str, event: Event) -> None:
        self.owners[resource] = owner
        self.resource_team[resource] = team
        self.participants[resource] = set()
        self.pending.append(Pending(event, dict(self.triggers)))

    def resource_changed(self, event: Event) -> None:
        if event.action == "deleted":
            self.deleted.add(event.resource or "")
        self.pending.append(Pending(event, dict(self.triggers)))

    def live_resources(self, team: str) -> list[str]:
        return sorted(
            r for r, t in self.resource_team.items() if t == team and r not in self.deleted
        )

    def join(self, team: str, user: str) -> None:
        self.members[team].add(user)

    def leave(self, team: str, user: str) -> None:
        self.members[team].discard(user)

    def pending_names(self) -> set[tuple[str, str]]:
        return {(p.event.team, p.event.name) for p in self.pending}

    # --- what the pipeline must do -------------------------------------------------------

    def consume(self, now: datetime, made: datetime | None = None) -> None:
        """Everything pending is processed at ``now``; rows are made at ``made`` (the wall
        clock of the consume; ``now`` when not given)."""
        self._made = made or now
        pending, self.pending = self.pending, []
        for item in pending:
            event = item.event
            if event.id in self.seen:
                continue  # a resent batch: nothing twice
            self.seen.add(event.id)
            if event.resource is not None:
                self._activity(event)
                continue
            for trigger in item.triggers.values():
                config = trigger.config
                if trigger.team != event.team or config.event != event.name or not config.active:
                    continue
                if not passes(config.filter, event.properties):
                    continue
                if config.kind == "event_count" and not self._fires(trigger, event):
                    continue
                self._matched(trigger, event, now)

    def flush(self, now: datetime) -> None:
        """Every window whose time is up sends its summary."""
        for key, window in list(self.windows.items()):
            if window.closes_at <= now:
                self._close(key, window)

    def _fires(self, trigger: Trigger, event: Event) -> bool:
        state = self.counting.setdefault(trigger.key, Counting())
        state.times.append(event.at)
        window = timedelta(minutes=trigger.config.window_minutes)
        if state.last_fired is not None and event.at - state.last_fired < window:
            return False
        recent = sum(1 for t in state.times if event.at - window < t <= event.at)
        if recent < trigger.config.count:
            return False
        state.last_fired = event.at
        return True

    def _recipients(self, team: str, candidates: set[str] | frozenset[str], actor: str | None):
        return sorted(u for u in candidates if u in self.members[team] and u != actor)

    def _matched(self, trigger: Trigger, event: Event, now: datetime) -> None:
        config = trigger.config
        recipients = self._recipients(event.team, trigger.audience(), event.actor)
        if config.mode == "digest":  # no message of its own: the center, then the digest
            for user in recipients:
                self._add_row(Row(user, event.team, trigger.key, event.id))
            return
        for channel in sorted(config.channels):
            targets = [trigger.slack_target] if channel == "slack" else recipients
            for target in targets:
                if config.mode == "rollup":
                    self._hit(trigger, channel, target, now)
                elif channel == "in_app":
                    self._add_row(Row(target, event.team, trigger.key, event.id))
                    if "email" in config.channels:
                        self.emailed.add(len(self.rows) - 1)
                elif channel == "email":
                    self.messages.append(Message(self.emails[target], trigger.key))
                else:
                    self.messages.append(Message(target, trigger.key))

    def _add_row(self, row: Row) -> None:
        self.rows.append(row)
        self.made_at.append(self._made)

    def _hit(self, trigger: Trigger, channel: str, destination: str, now: datetime) -> None:
        key = (trigger.key, channel, destination)
        window = self.windows.get(key)
        if window is not None and window.closes_at <= now:
            self._close(key, window)
            window = None
        if window is None:
            closes_at = now + timedelta(seconds=trigger.config.window_seconds)
            window = self.windows[key] = Window(trigger, channel, destination, closes_at)
            if channel == "in_app":
                window.row = len(self.rows)
                self._add_row(Row(destination, trigger.team, trigger.key, None, 0))
        window.count += 1
        if window.row is not None:
            self.rows[window.row] = replace(self.rows[window.row], count=window.count)

    def _close(self, key: tuple[int, str, str], window: Window) -> None:
        del self.windows[key]
        if window.channel == "slack":
            self.messages.append(Message(window.destination, window.trigger.key, window.count))
        elif window.channel == "email" and window.destination in self.members[window.trigger.team]:
            self.messages.append(
                Message(self.emails[window.destination], window.trigger.key, window.count)
            )

    def _activity(self, event: Event) -> None:
        """The owner and the people who worked on the resource before hear about an edit or
        a deletion by someone else; creation is news to nobody (the owner made it)."""
        resource = event.resource
        assert resource is not None
        before = self.participants[resource]
        if event.action != "created":
            audience = before | {self.owners[resource]}
            for user in self._recipients(event.team, audience, event.actor):
                self._add_row(Row(user, event.team, None, event.id))
        if event.actor is not None:
            before.add(event.actor)

    def set_reader(self, user: str, **changes: Any) -> None:
        self.readers[user] = replace(self.readers[user], **changes)

    def run_digests(self, periods: list[str], at: datetime) -> None:
        """One run of the daily and/or weekly digest at ``at`` (build, then send)."""
        for user, reader in sorted(self.readers.items()):
            if reader.cadence not in periods or not reader.email_on or not self.emails[user]:
                continue
            start, end = due_digest_window(reader, at)
            key = (user, reader.cadence, start)
            if key in self.built:
                continue
            self.built.add(key)
            since, _ = digest_window(reader.cadence, start - timedelta(seconds=1), reader.zone)
            items = [
                i
                for i, row in enumerate(self.rows)
                if row.user == user
                and since <= self.made_at[i] < end
                and i not in self.in_digest
                and i not in self.emailed
                and user in self.members[row.team]
            ]
            self.in_digest.update(items)
            if items:
                self.digest_mails.append(self._digest_mail(user, reader.cadence, items))

    def _digest_mail(self, user: str, period: str, items: list[int]) -> DigestMail:
        groups: dict[tuple[str, str], list[int]] = {}
        for i in items:
            row = self.rows[i]
            subject = f"mbt{row.trigger}" if row.trigger is not None else "activity"
            group = groups.setdefault((row.team, subject), [0, 0])
            group[0] += 1
            group[1] += max(row.count, 1)
        return DigestMail(
            address=self.emails[user],
            period=period,
            items=len(items),
            teams=len({team for team, _ in groups}),
            groups=tuple(sorted((t, s, n, w) for (t, s), (n, w) in groups.items())),
        )

    # --- what each person can see -----------------------------------------------------------

    def rows_of(self, user: str) -> Counter[Row]:
        return Counter(r for r in self.rows if r.user == user)

    def unread(self, user: str) -> int:
        """The badge: rows of the teams the person is in now (nothing is read here)."""
        return sum(1 for r in self.rows if r.user == user and user in self.members[r.team])

    def deliveries(self) -> Counter[Message]:
        return Counter(self.messages)

    def digests(self) -> Counter[DigestMail]:
        return Counter(self.digest_mails)
