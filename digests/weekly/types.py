"""The weekly digest's data, from one staged item up to one member's rendered email.

Plain frozen dataclasses with behaviour and no I/O: they come from JSON staged in Redis
(``from_dict``/``from_json``) and go back to it (``to_dict``/``to_json``), and rendering is
a pure function of them, so every test of this module runs without a database.

* :class:`Digest` — which week: the key and the ``[period_start, period_end)`` window.
* ``Digest*`` items — one new dashboard, launched experiment, … (:data:`TEAM_SECTIONS`
  says which :class:`~digests.weekly.keys.TeamDataKey` stages which item type).
* :class:`TeamDigest` → :class:`OrganizationDigest` (stored in Redis, one per org) →
  :meth:`OrganizationDigest.for_user` → :class:`UserSpecificDigest` (never stored) →
  :meth:`UserSpecificDigest.render_payload` → :class:`DigestPayload`.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, Self

from django.template import Context, Engine

from digests.weekly.keys import TeamDataKey, digest_key

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
MAX_ITEMS_PER_SECTION = 10
"""An email lists at most this many items of one section per team, then "and N more"."""


def _iso(value: datetime | str | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return value.isoformat()


def _day(value: str | None) -> str:
    """``Mar 3`` for an ISO timestamp; empty when there is none."""
    if not value:
        return ""
    moment = datetime.fromisoformat(value)
    return f"{moment:%b} {moment.day}"


def _plural(count: int, one: str, many: str) -> str:
    return f"{count:,} {one if count == 1 else many}"


def _monday(moment: datetime) -> datetime:
    """00:00 of the Monday that starts ``moment``'s ISO week (in ``moment``'s zone)."""
    return (moment - timedelta(days=moment.weekday())).replace(
        hour=0, minute=0, second=0, microsecond=0
    )


@dataclass(frozen=True)
class WeeklySchedule:
    """When the scheduled run may start: from ``weekday`` (0 = Monday) at ``hour`` UTC of
    each ISO week; beat ticks hourly and the first due tick of the week claims the run."""

    weekday: int = 0
    hour: int = 9

    def is_due(self, now: datetime) -> bool:
        moment = now.astimezone(UTC)
        return moment >= _monday(moment) + timedelta(days=self.weekday, hours=self.hour)


SCHEDULE = WeeklySchedule()
"""When the weekly run starts (``tasks.weekly_digest_tick`` asks it)."""


@dataclass(frozen=True)
class Digest:
    """One week's digest: its Redis key prefix and the window its content comes from.

    The key names the ISO week the digest is *sent* in; the window is the whole ISO week
    before it, Monday 00:00 UTC to Monday 00:00 UTC, so every run in the same week (a
    re-run, a retry) reports the same window.
    """

    key: str
    period_start: datetime
    period_end: datetime

    @classmethod
    def for_week(cls, now: datetime) -> Digest:
        moment = now.astimezone(UTC)
        monday = _monday(moment)
        return cls(
            key=digest_key(moment), period_start=monday - timedelta(days=7), period_end=monday
        )

    @property
    def label(self) -> str:
        """``Feb 24 – Mar 2``: the window's first and last day."""
        last = self.period_end - timedelta(days=1)
        return f"{self.period_start:%b} {self.period_start.day} – {last:%b} {last.day}"

    def to_dict(self) -> dict[str, str]:
        return {
            "key": self.key,
            "period_start": self.period_start.isoformat(),
            "period_end": self.period_end.isoformat(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, str]) -> Digest:
        return cls(
            key=data["key"],
            period_start=datetime.fromisoformat(data["period_start"]),
            period_end=datetime.fromisoformat(data["period_end"]),
        )


@dataclass(frozen=True)
class DigestItem:
    """One resource in a section. ``url`` is filled in when the item is staged."""

    resource_type: ClassVar[str] = ""

    id: int
    name: str
    url: str = ""

    def line(self) -> str:
        return self.name

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Build from a staged dict or a ``.values()`` row; unknown keys are ignored and
        datetimes become ISO strings, so rows and JSON load the same way."""
        names = {f.name for f in fields(cls)}
        values: dict[str, Any] = {
            name: _iso(value) if isinstance(value, datetime) else value
            for name, value in data.items()
            if name in names
        }
        return cls(**values)


@dataclass(frozen=True)
class DigestDashboard(DigestItem):
    resource_type: ClassVar[str] = "dashboard"

    creator: str = ""

    def line(self) -> str:
        return f"{self.name} (by {self.creator})" if self.creator else self.name


@dataclass(frozen=True)
class DigestEventDefinition(DigestItem):
    resource_type: ClassVar[str] = "eventdefinition"


@dataclass(frozen=True)
class DigestExperiment(DigestItem):
    resource_type: ClassVar[str] = "experiment"

    start_date: str | None = None
    end_date: str | None = None

    def line(self) -> str:
        if self.end_date:
            return f"{self.name} (ended {_day(self.end_date)})"
        if self.start_date:
            return f"{self.name} (started {_day(self.start_date)})"
        return self.name


@dataclass(frozen=True)
class DigestFeatureFlag(DigestItem):
    resource_type: ClassVar[str] = "featureflag"

    key: str = ""

    def line(self) -> str:
        return f"{self.name} ({self.key})" if self.key and self.key != self.name else self.name


@dataclass(frozen=True)
class DigestSurvey(DigestItem):
    resource_type: ClassVar[str] = "survey"

    launched_at: str | None = None


@dataclass(frozen=True)
class DigestCohort(DigestItem):
    resource_type: ClassVar[str] = "cohort"

    count: int = 0

    def line(self) -> str:
        return f"{self.name} ({_plural(self.count, 'person', 'people')})"


@dataclass(frozen=True)
class TeamSection:
    """How one team-level kind is staged, stored on :class:`TeamDigest` and shown."""

    kind: TeamDataKey
    attribute: str
    title: str
    one: str
    many: str
    item_type: type[DigestItem]

    def count_phrase(self, count: int) -> str:
        return _plural(count, self.one, self.many)


TEAM_SECTIONS: tuple[TeamSection, ...] = (
    TeamSection(
        TeamDataKey.DASHBOARDS,
        "dashboards",
        "New dashboards",
        "new dashboard",
        "new dashboards",
        DigestDashboard,
    ),
    TeamSection(
        TeamDataKey.EVENT_DEFINITIONS,
        "event_definitions",
        "New events",
        "new event",
        "new events",
        DigestEventDefinition,
    ),
    TeamSection(
        TeamDataKey.EXPERIMENTS_LAUNCHED,
        "experiments_launched",
        "Experiments launched",
        "experiment launched",
        "experiments launched",
        DigestExperiment,
    ),
    TeamSection(
        TeamDataKey.EXPERIMENTS_COMPLETED,
        "experiments_completed",
        "Experiments completed",
        "experiment completed",
        "experiments completed",
        DigestExperiment,
    ),
    TeamSection(
        TeamDataKey.FEATURE_FLAGS,
        "feature_flags",
        "New feature flags",
        "new feature flag",
        "new feature flags",
        DigestFeatureFlag,
    ),
    TeamSection(
        TeamDataKey.SURVEYS_LAUNCHED,
        "surveys_launched",
        "Surveys launched",
        "survey launched",
        "surveys launched",
        DigestSurvey,
    ),
    TeamSection(
        TeamDataKey.COHORTS, "cohorts", "New cohorts", "new cohort", "new cohorts", DigestCohort
    ),
)
SECTION_BY_KIND: dict[TeamDataKey, TeamSection] = {s.kind: s for s in TEAM_SECTIONS}


@dataclass(frozen=True)
class TeamDigest:
    """What happened in one team (project) during the window. Attribute names and order
    follow :data:`TEAM_SECTIONS`."""

    id: int
    name: str
    dashboards: tuple[DigestDashboard, ...] = ()
    event_definitions: tuple[DigestEventDefinition, ...] = ()
    experiments_launched: tuple[DigestExperiment, ...] = ()
    experiments_completed: tuple[DigestExperiment, ...] = ()
    feature_flags: tuple[DigestFeatureFlag, ...] = ()
    surveys_launched: tuple[DigestSurvey, ...] = ()
    cohorts: tuple[DigestCohort, ...] = ()

    @classmethod
    def from_staged(
        cls, *, id: int, name: str, staged: Mapping[TeamDataKey, Iterable[Mapping[str, Any]]]
    ) -> TeamDigest:
        """Assemble from each kind's staged item dicts; a kind with nothing staged is empty."""
        values: dict[str, Any] = {
            section.attribute: tuple(
                section.item_type.from_dict(item) for item in staged.get(section.kind, ())
            )
            for section in TEAM_SECTIONS
        }
        return cls(id=id, name=name, **values)

    def sections(self) -> list[tuple[TeamSection, tuple[DigestItem, ...]]]:
        """The non-empty sections, in :data:`TEAM_SECTIONS` order."""
        found = [(s, getattr(self, s.attribute)) for s in TEAM_SECTIONS]
        return [(section, items) for section, items in found if items]

    @property
    def is_empty(self) -> bool:
        return not self.sections()

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "name": self.name}
        for section in TEAM_SECTIONS:
            data[section.attribute] = [item.to_dict() for item in getattr(self, section.attribute)]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TeamDigest:
        staged = {s.kind: data.get(s.attribute, ()) for s in TEAM_SECTIONS}
        return cls.from_staged(id=int(data["id"]), name=str(data["name"]), staged=staged)


class SuggestionReason(StrEnum):
    NO_TRIGGERS = "no-triggers"
    NO_EVENTS = "no-events"


@dataclass(frozen=True)
class DigestProductSuggestion:
    """One thing worth trying next, for one member, about one of their teams."""

    team_id: int
    team_name: str
    reason: SuggestionReason
    reason_text: str
    url: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "reason": str(self.reason)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DigestProductSuggestion:
        return cls(
            team_id=int(data["team_id"]),
            team_name=str(data["team_name"]),
            reason=SuggestionReason(data["reason"]),
            reason_text=str(data["reason_text"]),
            url=str(data.get("url", "")),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, raw: str | bytes) -> DigestProductSuggestion:
        return cls.from_dict(json.loads(raw))


@dataclass(frozen=True)
class MemberTeamFacts:
    """What the suggestion rule needs to know about one of a member's teams."""

    team_id: int
    team_name: str
    own_triggers: int
    top_event: str | None


def suggest_product(
    teams: Iterable[MemberTeamFacts], *, base_url: str
) -> DigestProductSuggestion | None:
    """The first rule that fits, over the member's teams in id order:

    1. a team with events but no trigger of the member's → suggest a trigger on the team's
       busiest event;
    2. a team that has never seen an event → suggest sending one.

    ``None`` when the member already does both everywhere.
    """
    ordered = sorted(teams, key=lambda t: t.team_id)
    for team in ordered:
        if team.top_event and team.own_triggers == 0:
            return DigestProductSuggestion(
                team_id=team.team_id,
                team_name=team.team_name,
                reason=SuggestionReason.NO_TRIGGERS,
                reason_text=(
                    f"You have no triggers in {team.team_name} yet — create one for "
                    f"{team.top_event} to hear when it spikes."
                ),
                url=f"{base_url}/triggers/?team={team.team_id}",
            )
    for team in ordered:
        if team.top_event is None:
            return DigestProductSuggestion(
                team_id=team.team_id,
                team_name=team.team_name,
                reason=SuggestionReason.NO_EVENTS,
                reason_text=(
                    f"{team.team_name} has not received an event yet — send your first one "
                    "to start seeing data."
                ),
                url=f"{base_url}/teams/",
            )
    return None


def teams_to_notify(
    member_of: Collection[int], muted: Collection[int], *, opted_in: bool
) -> frozenset[int]:
    """The teams a member has the weekly digest's notifications on for — the value staged
    under ``UserDataKey.NOTIFY_TEAMS`` and passed to :meth:`OrganizationDigest.for_user`
    as ``user_teams``.

    A team is in it when the member (an active user) belongs to the team and has not muted
    it (``Preference.muted_teams``). When the member is not ``opted_in`` — digest cadence
    ``off``, or the digest category switched off for email — the set is empty: no team's
    news reaches them. Computed over all of the member's teams, in every org, so whichever
    batch stages it stages the same value; :meth:`OrganizationDigest.for_user` narrows it
    to one org and to the teams with something new.

    Receiving a notification in the window is deliberately *not* required: the digest is
    for people who keep pings down ("people who don't want pings still want to know what
    happened"), and DESIGN.md's rule is "users only ever hear about teams they belong to
    and have not muted".
    """
    if not opted_in:
        return frozenset()
    return frozenset(int(t) for t in member_of) - {int(t) for t in muted}


@dataclass(frozen=True)
class UserDigestContext:
    """Everything about the recipient that the email needs. New user-level data (loaded
    from a :class:`~digests.weekly.keys.UserDataKey`) becomes a field here, so
    :meth:`OrganizationDigest.for_user`'s signature never changes."""

    recipient_name: str = ""
    product_suggestion: DigestProductSuggestion | None = None
    home_url: str = ""
    preferences_url: str = ""
    unsubscribe_url: str = ""


@dataclass(frozen=True)
class DigestPayload:
    """One member's email: ``subject``, ``text`` and ``html``, plus the short form
    (``intro`` and one line per team × section) for channels that render their own layout.

    ``text`` and ``html`` are rendered on first access and then kept: a send path that only
    needs the short form does not pay for two template renders per member.
    """

    subject: str
    intro: str
    lines: tuple[str, ...]
    template_context: Mapping[str, Any] = field(repr=False, compare=False)

    @functools.cached_property
    def text(self) -> str:
        return _engine().get_template("weekly_digest.txt").render(Context(self.template_context))

    @functools.cached_property
    def html(self) -> str:
        return _engine().get_template("weekly_digest.html").render(Context(self.template_context))


@functools.cache
def _engine() -> Engine:
    # A private engine: the templates live beside this module and rendering needs no
    # settings, so render tests run without Django's template configuration.
    return Engine(dirs=[str(TEMPLATES_DIR)], autoescape=True, debug=False)


@dataclass(frozen=True)
class UserSpecificDigest:
    """One member's view of an org digest: only the teams they have notifications on and
    that have something new (the rule is on :meth:`OrganizationDigest.for_user`).

    Computed at send time, never stored.
    """

    org_id: int
    org_name: str
    period_start: datetime
    period_end: datetime
    teams: tuple[TeamDigest, ...]
    context: UserDigestContext = field(default_factory=UserDigestContext)

    @property
    def is_empty(self) -> bool:
        """Nothing new in any of the member's teams. A product suggestion alone is not
        worth an email."""
        return all(team.is_empty for team in self.teams)

    @property
    def period_label(self) -> str:
        return Digest(key="", period_start=self.period_start, period_end=self.period_end).label

    def totals(self) -> list[tuple[TeamSection, int]]:
        """Item counts per section over all the member's teams, in section order."""
        counts = {section.kind: 0 for section in TEAM_SECTIONS}
        for team in self.teams:
            for section, items in team.sections():
                counts[section.kind] += len(items)
        return [(s, counts[s.kind]) for s in TEAM_SECTIONS if counts[s.kind]]

    def subject(self) -> str:
        totals = self.totals()
        phrases = [section.count_phrase(count) for section, count in totals[:2]]
        summary = " and ".join(phrases) if len(totals) <= 2 else ", ".join(phrases) + " and more"
        return f"{self.org_name} this week: {summary}"

    def lines(self) -> tuple[str, ...]:
        out: list[str] = []
        for team in self.teams:
            for section, items in team.sections():
                names = ", ".join(item.line() for item in items[:MAX_ITEMS_PER_SECTION])
                more = len(items) - MAX_ITEMS_PER_SECTION
                tail = f" and {more:,} more" if more > 0 else ""
                out.append(f"{team.name} · {section.count_phrase(len(items))}: {names}{tail}")
        return tuple(out)

    def render_payload(self) -> DigestPayload:
        """Subject, plain text and HTML of this member's email. Pure: same input, same
        output; user-provided names are escaped in the HTML."""
        greeting = f"Hi {self.context.recipient_name}," if self.context.recipient_name else "Hi,"
        intro = f"Here is what happened in {self.org_name} from {self.period_label}."
        teams = [
            {
                "name": team.name,
                "sections": [
                    {
                        "title": section.title,
                        "items": items[:MAX_ITEMS_PER_SECTION],
                        "more": max(0, len(items) - MAX_ITEMS_PER_SECTION),
                    }
                    for section, items in team.sections()
                ],
            }
            for team in self.teams
            if not team.is_empty
        ]
        subject = self.subject()
        context = {
            "subject": subject,
            "greeting": greeting,
            "intro": intro,
            "org_name": self.org_name,
            "period_label": self.period_label,
            "teams": teams,
            "suggestion": self.context.product_suggestion,
            "home_url": self.context.home_url,
            "preferences_url": self.context.preferences_url,
            "unsubscribe_url": self.context.unsubscribe_url,
        }
        return DigestPayload(
            subject=subject,
            intro=f"{greeting} {intro}",
            lines=self.lines(),
            template_context=context,
        )


@dataclass(frozen=True)
class OrganizationDigest:
    """Every team's digest for one organization and one week; stored in Redis under
    :func:`~digests.weekly.keys.org_digest_key` by the aggregation step."""

    id: int
    name: str
    period_start: datetime
    period_end: datetime
    teams: tuple[TeamDigest, ...] = ()

    @property
    def is_empty(self) -> bool:
        return all(team.is_empty for team in self.teams)

    def for_user(
        self, user_teams: Collection[int], context: UserDigestContext
    ) -> UserSpecificDigest:
        """The member's digest for this org: the teams they have notifications on that
        have something to hear about, in this digest's team order.

        The rule: team ``T`` of this org is in the member's email if and only if

        1. ``T`` is in ``user_teams`` — the member belongs to ``T`` and has not muted it
           (:func:`teams_to_notify`; empty when they opted out of the digest), and
        2. ``T`` has at least one new item in the window (``not T.is_empty``).

        Teams of this org the member does not belong to or muted, teams with nothing new
        and ids in ``user_teams`` from other orgs are left out. A product suggestion about a
        team outside ``user_teams`` (another org, a muted team) is dropped. When no team is
        left the result :attr:`~UserSpecificDigest.is_empty` and no email is sent."""
        wanted = {int(team_id) for team_id in user_teams}
        teams = tuple(t for t in self.teams if t.id in wanted and not t.is_empty)
        suggestion = context.product_suggestion
        if suggestion is not None and suggestion.team_id not in wanted:
            context = replace(context, product_suggestion=None)
        return UserSpecificDigest(
            org_id=self.id,
            org_name=self.name,
            period_start=self.period_start,
            period_end=self.period_end,
            teams=teams,
            context=context,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "period_start": self.period_start.isoformat(),
            "period_end": self.period_end.isoformat(),
            "teams": [team.to_dict() for team in self.teams],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OrganizationDigest:
        return cls(
            id=int(data["id"]),
            name=str(data["name"]),
            period_start=datetime.fromisoformat(data["period_start"]),
            period_end=datetime.fromisoformat(data["period_end"]),
            teams=tuple(TeamDigest.from_dict(team) for team in data.get("teams", ())),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, raw: str | bytes) -> OrganizationDigest:
        return cls.from_dict(json.loads(raw))


def dump_items(items: Sequence[DigestItem]) -> str:
    return json.dumps([item.to_dict() for item in items])


def load_items(raw: str | bytes | None) -> list[dict[str, Any]]:
    return list(json.loads(raw)) if raw else []
