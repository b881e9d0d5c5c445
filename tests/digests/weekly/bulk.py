"""A large weekly-digest world built with ``bulk_create`` (no per-row factories, no
signals), and what every member's email must contain according to the rule in
:meth:`digests.weekly.types.OrganizationDigest.for_user`.

Every org has :data:`TEAMS_PER_ORG` teams named ``O{org:03d} T{j}``:

* teams in :func:`news_teams` get new items in the window (dashboards, flags, events,
  experiments launched and completed, surveys, cohorts — every section is exercised);
* team 3 only has things from before and after the window;
* team 4 has nothing new, but its members received in-app notifications during the
  window — having notifications does not put a team with nothing new in the email;
* every tenth org (``index % 10 == 9``) has nothing new at all and sends nothing.

Member ``m`` of an org belongs to the teams :data:`MEMBER_TEAMS` ``[m % 8]`` — a subset,
so "only their teams" means something — and, by ``m``:

* ``m % 20 == 19``: inactive user (never mailed);
* ``m % 20 == 7``: digest cadence ``off``; ``m % 20 == 13``: digest category off for email;
* ``m % 5 == 1``: muted the first of their teams;
* ``m % 3 == 0``: a Preference row with nothing special; ``m % 4 == 0``: owns a trigger;
* ``m == 0`` also belongs to team 1 of the next org in the list (wrapping), so that user
  gets one email per org, each with only that org's teams.

The expected result is computed here from the same rules, independently of the code under
test: for each ``(address, org name)`` the exact set of team names in that email.
"""

from __future__ import annotations

import email
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email import policy
from email.header import decode_header, make_header

from django.contrib.auth import get_user_model

from notifications.channels import email as email_channel
from notifications.models import (
    Category,
    DigestCadence,
    Notification,
    Preference,
    Trigger,
)
from notifications.triggers import Kind
from tests.digests.weekly.conftest import AFTER_WINDOW, BEFORE_WINDOW, IN_WINDOW
from workspace.models import (
    Cohort,
    Dashboard,
    EventDefinition,
    Experiment,
    FeatureFlag,
    Membership,
    Organization,
    Survey,
    Team,
)

TEAMS_PER_ORG = 5
OLD_ONLY_TEAM = 3
NOTIFIED_ONLY_TEAM = 4
MEMBER_TEAMS: tuple[tuple[int, ...], ...] = (
    (0, 1, 2, 3, 4),
    (0,),
    (1, 3),
    (2, 4),
    (3, 4),  # only teams with nothing new: never mailed
    (0, 2),
    (1,),
    (0, 1, 3),
)
DIGEST_CATEGORY = Category.DIGEST


def org_name(index: int) -> str:
    return f"Scale org {index:03d}"


def team_name(org_index: int, team: int) -> str:
    return f"O{org_index:03d} T{team}"


def news_teams(org_index: int) -> tuple[int, ...]:
    """The teams of an org with at least one new item in the window."""
    if org_index % 10 == 9:
        return ()
    if org_index % 3 == 1:
        return (0, 1)
    return (0, 1, 2)


@dataclass
class ScaleOrg:
    index: int
    org: Organization
    teams: list[Team]

    @property
    def name(self) -> str:
        return self.org.name


@dataclass
class Expected:
    """What a run must send: ``emails[(address, org name)]`` is the set of team names of
    that email; ``recipients`` counts the active (member, org with something new) pairs
    the send step looks at."""

    emails: dict[tuple[str, str], frozenset[str]] = field(default_factory=dict)
    recipients: int = 0

    def update(self, other: Expected) -> None:
        self.emails.update(other.emails)
        self.recipients += other.recipients


def build_orgs(count: int, *, start: int = 0) -> list[ScaleOrg]:
    """``count`` orgs (indexes ``start…``) with their teams and resources."""
    indexes = range(start, start + count)
    orgs = Organization.objects.bulk_create(
        Organization(name=org_name(i), slug=f"scale-org-{i:03d}") for i in indexes
    )
    teams = Team.objects.bulk_create(
        Team(organization=org, name=team_name(i, j))
        for i, org in zip(indexes, orgs, strict=True)
        for j in range(TEAMS_PER_ORG)
    )
    scale = [
        ScaleOrg(index=i, org=org, teams=teams[k * TEAMS_PER_ORG : (k + 1) * TEAMS_PER_ORG])
        for k, (i, org) in enumerate(zip(indexes, orgs, strict=True))
    ]
    _resources(scale)
    return scale


def _resources(orgs: Sequence[ScaleOrg]) -> None:
    dashboards: list[tuple[Dashboard, datetime]] = []
    flags: list[tuple[FeatureFlag, datetime]] = []
    events: list[tuple[EventDefinition, datetime]] = []
    cohorts: list[tuple[Cohort, datetime]] = []
    experiments: list[Experiment] = []
    surveys: list[Survey] = []
    for o in orgs:
        news = news_teams(o.index)
        for j, team in enumerate(o.teams):
            tag = f"{o.index:03d}-{j}"
            # Old and future things everywhere but the notified-only team.
            if j != NOTIFIED_ONLY_TEAM:
                dashboards.append((Dashboard(team=team, name=f"Old board {tag}"), BEFORE_WINDOW))
                flags.append(
                    (
                        FeatureFlag(team=team, name=f"Late flag {tag}", key=f"late-{tag}"),
                        AFTER_WINDOW,
                    )
                )
            if j not in news:
                continue
            if j == 0:
                dashboards += [
                    (Dashboard(team=team, name=f"Board {tag} a"), IN_WINDOW),
                    (Dashboard(team=team, name=f"Board {tag} b"), IN_WINDOW),
                ]
                flags.append(
                    (FeatureFlag(team=team, name=f"Flag {tag}", key=f"flag-{tag}"), IN_WINDOW)
                )
            elif j == 1:
                events.append((EventDefinition(team=team, name=f"event_{tag}"), IN_WINDOW))
                experiments.append(
                    Experiment(
                        team=team,
                        name=f"Launch {tag}",
                        status=Experiment.Status.RUNNING,
                        start_date=IN_WINDOW,
                    )
                )
            else:
                experiments.append(
                    Experiment(
                        team=team,
                        name=f"Done {tag}",
                        status=Experiment.Status.COMPLETE,
                        start_date=BEFORE_WINDOW,
                        end_date=IN_WINDOW,
                    )
                )
                surveys.append(
                    Survey(
                        team=team,
                        name=f"Survey {tag}",
                        status=Survey.Status.LAUNCHED,
                        launched_at=IN_WINDOW,
                    )
                )
                cohorts.append((Cohort(team=team, name=f"Cohort {tag}", count=7), IN_WINDOW))
    for model, rows in (
        (Dashboard, dashboards),
        (FeatureFlag, flags),
        (EventDefinition, events),
        (Cohort, cohorts),
    ):
        created = model.objects.bulk_create(row for row, _ in rows)
        _backdate(model, created, [when for _, when in rows])
    Experiment.objects.bulk_create(experiments)
    Survey.objects.bulk_create(surveys)


def _backdate(model, objects: Sequence, moments: Sequence[datetime]) -> None:
    """``created_at`` is ``auto_now_add`` (``bulk_create`` sets it to now): one UPDATE
    per distinct moment."""
    by_moment: dict[datetime, list[int]] = {}
    for obj, when in zip(objects, moments, strict=True):
        by_moment.setdefault(when, []).append(obj.pk)
    for when, pks in by_moment.items():
        model.objects.filter(pk__in=pks).update(created_at=when)


def add_members(orgs: Sequence[ScaleOrg], members: Iterable[int]) -> Expected:
    """Members ``members`` (indexes) of every org in ``orgs``, with their memberships,
    preferences, muted teams, triggers and notifications; returns what they must get."""
    members = list(members)
    User = get_user_model()
    users = User.objects.bulk_create(
        User(
            username=f"s{o.index:03d}m{m:03d}",
            email=f"s{o.index:03d}m{m:03d}@example.com",
            first_name=f"M{m}",
            password="!",  # unusable: no hashing
            is_active=m % 20 != 19,
        )
        for o in orgs
        for m in members
    )
    pairs = [(o.index, m) for o in orgs for m in members]
    user_of = dict(zip(pairs, users, strict=True))
    memberships: list[Membership] = []
    preferences: list[tuple[Preference, list[Team]]] = []
    triggers: list[Trigger] = []
    notifications: list[Notification] = []
    expected = Expected()

    for k, o in enumerate(orgs):
        following = orgs[(k + 1) % len(orgs)]
        for m in members:
            user = user_of[(o.index, m)]
            own = MEMBER_TEAMS[m % len(MEMBER_TEAMS)]
            memberships += [Membership(user=user, team=o.teams[j]) for j in own]
            cross = m == 0 and following is not o
            if cross:
                memberships.append(Membership(user=user, team=following.teams[1]))
            muted = {own[0]} if m % 5 == 1 else set()
            opted_in = m % 20 not in (7, 13)
            if m % 20 == 7 or m % 20 == 13 or muted or m % 3 == 0:
                channels = {DIGEST_CATEGORY: {email_channel.TYPE: False}} if m % 20 == 13 else {}
                cadence = DigestCadence.OFF if m % 20 == 7 else DigestCadence.WEEKLY
                preferences.append(
                    (
                        Preference(user=user, digest_cadence=cadence, channels=channels),
                        [o.teams[j] for j in muted],
                    )
                )
            if m % 4 == 0:
                triggers.append(
                    Trigger(
                        team=o.teams[own[0]],
                        owner=user,
                        name=f"Trigger {user.username}",
                        kind=Kind.EVENT,
                        config={"event": "signup"},
                        event_name="signup",
                    )
                )
            if NOTIFIED_ONLY_TEAM in own:
                notifications.append(
                    Notification(
                        recipient=user,
                        team=o.teams[NOTIFIED_ONLY_TEAM],
                        category=Category.ALERT,
                        title=f"Alert for {user.username}",
                        dedup_key=f"scale-{user.username}",
                        first_seen_at=IN_WINDOW,
                        last_seen_at=IN_WINDOW,
                    )
                )
            if not user.is_active:
                continue
            # Expected: per org they belong to, their unmuted teams with something new.
            unmuted = [(o, set(own) - muted)] + ([(following, {1})] if cross else [])
            for org, teams in unmuted:
                if not news_teams(org.index):
                    continue  # no org digest: the send step never looks at its members
                expected.recipients += 1
                wanted = sorted(teams & set(news_teams(org.index))) if opted_in else []
                if wanted:
                    expected.emails[(user.email, org.name)] = frozenset(
                        team_name(org.index, j) for j in wanted
                    )

    Membership.objects.bulk_create(memberships)
    created = Preference.objects.bulk_create(p for p, _ in preferences)
    Preference.muted_teams.through.objects.bulk_create(
        Preference.muted_teams.through(preference_id=p.pk, team_id=team.pk)
        for p, (_, teams) in zip(created, preferences, strict=True)
        for team in teams
    )
    Trigger.objects.bulk_create(triggers)
    Notification.objects.bulk_create(notifications)
    Notification.objects.filter(dedup_key__startswith="scale-").update(created_at=IN_WINDOW)
    return expected


def email_teams(text: str) -> frozenset[str]:
    """The team names of one digest email's plain text (``weekly_digest.txt``): each team's
    section opens with a ``== {team} ==`` line."""
    return frozenset(
        line[3:-3] for line in text.splitlines() if line.startswith("== ") and line.endswith(" ==")
    )


def read_digest_mail(raw: bytes) -> tuple[str, frozenset[str]]:
    """``(org name, team names)`` of one digest email. The org comes from the subject
    (``{org} this week: …``). Parsed once with the ``compat32`` policy: ``policy.default``
    (what ``ReceivedMail.message`` uses) costs ~10 ms a mail, too slow for a thousand."""
    message = email.message_from_bytes(raw, policy=policy.compat32)
    subject = " ".join(str(make_header(decode_header(message["Subject"]))).split())
    for part in message.walk():
        if part.get_content_type() == "text/plain" and not part.is_multipart():
            text = part.get_payload(decode=True).decode(part.get_content_charset() or "utf-8")
            return subject.split(" this week: ", 1)[0], email_teams(text)
    raise LookupError("no text/plain part")
