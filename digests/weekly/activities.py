"""The weekly digest's I/O: every database query, Redis read/write and email send.

Four steps, each a plain function that the Celery tasks (:mod:`digests.weekly.tasks`) and
the in-process runner (:func:`digests.weekly.workflows.run_weekly_digest_inline`) both call:

1. :func:`plan_weekly_digest` — count teams and orgs, cut org batches.
2. Generators, one per kind (:data:`GENERATORS`), each for one batch: run one query over
   the batch's teams and stage JSON in Redis under a key from :mod:`digests.weekly.keys`,
   with a TTL. Re-running a generator replaces what it staged before.
3. :func:`aggregate_org_digests` — per org of a batch, read the staged team data and store
   an :class:`~digests.weekly.types.OrganizationDigest` (only when it is not empty).
4. :func:`send_org_digests` — per member of a batch's orgs: skip those who opted out, who
   were already sent this week's digest, or whose teams had nothing new; render one email
   each and send them all over one SMTP connection.

Database queries per batch do not depend on the number of members: every step reads its
rows for the whole batch at once, and Redis traffic is pipelined.

Exactly-once per member and week: the send step *claims* a member by adding them to the
week's ``sent`` set before sending (``SADD`` answers 1 only to the first claimant, so two
overlapping runs cannot both send), and releases the claim when the channel answers
``retry`` or ``failed`` so the next run tries again. A worker killed between the claim
and the SMTP answer loses that member's email for the week: a missed weekly summary is
better than a duplicate one.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import redis
from django.conf import settings

from digests.weekly import queries
from digests.weekly.keys import (
    DATA_TTL,
    RUN_LEASE_TTL,
    SENT_TTL,
    TeamDataKey,
    UserDataKey,
    org_digest_key,
    run_key,
    seconds,
    sent_key,
    team_data_key,
    user_data_key,
)
from digests.weekly.types import (
    SECTION_BY_KIND,
    TEAM_SECTIONS,
    Digest,
    DigestPayload,
    DigestProductSuggestion,
    MemberTeamFacts,
    OrganizationDigest,
    TeamDigest,
    UserDigestContext,
    dump_items,
    load_items,
    suggest_product,
    teams_to_notify,
)
from notifications.channels import email
from notifications.channels.base import Destination, Message, Outcome, Result
from notifications.models import Category, DigestCadence
from notifications.unsubscribe import unsubscribe_url
from workspace.resources import resource_url

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 100
"""Organizations per batch: one generator task per kind and one send task per batch."""

DIGEST_CATEGORY = Category.DIGEST
"""The preference category the weekly digest is filed under: switching it off for email
(or following the email's unsubscribe link) stops the digest."""


def redis_client() -> redis.Redis:
    """A client for ``settings.REDIS_URL``, read at call time."""
    return redis.Redis.from_url(settings.REDIS_URL, decode_responses=True)


@dataclass(frozen=True)
class OrgBatch:
    """A slice of organizations and all their teams, as it travels in task arguments."""

    index: int
    org_ids: tuple[int, ...]
    team_ids: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "org_ids": list(self.org_ids), "team_ids": list(self.team_ids)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OrgBatch:
        return cls(
            index=int(data["index"]),
            org_ids=tuple(int(i) for i in data["org_ids"]),
            team_ids=tuple(int(i) for i in data["team_ids"]),
        )


@dataclass(frozen=True)
class Plan:
    digest: Digest
    orgs: int
    teams: int
    batches: tuple[OrgBatch, ...]


def cut_batches(org_teams: Iterable[tuple[int, int]], batch_size: int) -> tuple[OrgBatch, ...]:
    """Group ``(org_id, team_id)`` pairs into batches of at most ``batch_size`` orgs, in org
    id order; an org's teams are never split across batches."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1 (got {batch_size})")
    teams_by_org: dict[int, list[int]] = defaultdict(list)
    for org_id, team_id in org_teams:
        teams_by_org[org_id].append(team_id)
    org_ids = sorted(teams_by_org)
    return tuple(
        OrgBatch(
            index=index,
            org_ids=tuple(chunk),
            team_ids=tuple(sorted(t for org in chunk for t in teams_by_org[org])),
        )
        for index, chunk in enumerate(
            org_ids[start : start + batch_size] for start in range(0, len(org_ids), batch_size)
        )
    )


def plan_weekly_digest(*, now: datetime, batch_size: int = DEFAULT_BATCH_SIZE) -> Plan:
    """Step 1: which week, how many orgs and teams, and the batches. Orgs without a team
    have nothing to report and are left out of the batches."""
    digest = Digest.for_week(now)
    org_teams = list(queries.org_team_pairs())
    return Plan(
        digest=digest,
        orgs=queries.organizations().count(),
        teams=len(org_teams),
        batches=cut_batches(org_teams, batch_size),
    )


# -- step 2: generators ---------------------------------------------------------------


def generate_team_data(*, digest: Digest, kind: TeamDataKey, batch: OrgBatch) -> int:
    """Stage one team-level kind for every team of the batch: a JSON list of items under
    ``team_data_key``; a team with nothing new has its key deleted, so a re-run in the same
    week never aggregates stale items. Returns the number of items staged."""
    section = SECTION_BY_KIND[kind]
    rows = queries.TEAM_QUERIES[kind](batch.team_ids, digest.period_start, digest.period_end)
    by_team: dict[int, list[Any]] = defaultdict(list)
    for row in rows:
        url = resource_url(section.item_type.resource_type, str(row["id"]))
        by_team[row["team_id"]].append(section.item_type.from_dict({**row, "url": url}))
    with redis_client().pipeline(transaction=False) as pipe:
        for team_id in batch.team_ids:
            key = team_data_key(digest.key, kind, team_id)
            if by_team.get(team_id):
                pipe.set(key, dump_items(by_team[team_id]), ex=seconds(DATA_TTL))
            else:
                pipe.delete(key)
        pipe.execute()
    return sum(len(items) for items in by_team.values())


def _member_teams(batch: OrgBatch) -> dict[int, set[int]]:
    """Every team of every active member of the batch's teams — also teams in other orgs,
    so whichever batch stages a user's data stages the same value."""
    teams: dict[int, set[int]] = defaultdict(set)
    for row in queries.query_memberships(queries.members_of(batch.team_ids)):
        teams[row["user_id"]].add(row["team_id"])
    return teams


def generate_notify_teams(*, digest: Digest, batch: OrgBatch) -> int:
    """Stage, per member, the SET of teams they have notifications on
    (:func:`~digests.weekly.types.teams_to_notify`: every team they belong to minus the
    ones they muted). Members who turned digests off or switched the digest's category off
    for email get no set (and lose a previously staged one). Two queries per batch
    (memberships, settings), whatever the number of members. Returns the number of members
    with a set."""
    teams = _member_teams(batch)
    cadence: dict[int, str] = {}
    channels: dict[int, dict[str, Any]] = {}
    muted: dict[int, set[int]] = defaultdict(set)
    for row in queries.query_notification_settings(queries.members_of(batch.team_ids)):
        cadence[row["user_id"]] = row["digest_cadence"]
        channels[row["user_id"]] = row["channels"] or {}
        if row["muted_team_id"] is not None:
            muted[row["user_id"]].add(row["muted_team_id"])
    staged = 0
    with redis_client().pipeline(transaction=True) as pipe:
        for user_id, member_of in teams.items():
            key = user_data_key(digest.key, UserDataKey.NOTIFY_TEAMS, user_id)
            pipe.delete(key)
            opted_in = cadence.get(user_id, DigestCadence.DAILY) != DigestCadence.OFF and bool(
                channels.get(user_id, {}).get(DIGEST_CATEGORY, {}).get(email.TYPE, True)
            )
            wanted = teams_to_notify(member_of, muted[user_id], opted_in=opted_in)
            if wanted:
                pipe.sadd(key, *sorted(wanted))
                pipe.expire(key, seconds(DATA_TTL))
                staged += 1
        pipe.execute()
    return staged


def generate_product_suggestions(*, digest: Digest, batch: OrgBatch) -> int:
    """Stage one :class:`~digests.weekly.types.DigestProductSuggestion` per member (see
    :func:`~digests.weekly.types.suggest_product` for the rule). Returns how many."""
    teams = _member_teams(batch)
    all_teams = {team_id for member_of in teams.values() for team_id in member_of}
    facts = {row["id"]: row for row in queries.query_team_facts(all_teams)}
    owned: dict[tuple[int, int], int] = {
        (row["owner_id"], row["team_id"]): row["triggers"]
        for row in queries.query_trigger_counts(all_teams)
    }
    base_url = settings.NOTIFLOW_BASE_URL
    staged = 0
    with redis_client().pipeline(transaction=False) as pipe:
        for user_id, member_of in teams.items():
            key = user_data_key(digest.key, UserDataKey.PRODUCT_SUGGESTION, user_id)
            suggestion = suggest_product(
                (
                    MemberTeamFacts(
                        team_id=team_id,
                        team_name=facts[team_id]["name"],
                        own_triggers=owned.get((user_id, team_id), 0),
                        top_event=facts[team_id]["top_event"],
                    )
                    for team_id in member_of
                    if team_id in facts
                ),
                base_url=base_url,
            )
            if suggestion is None:
                pipe.delete(key)
            else:
                pipe.set(key, suggestion.to_json(), ex=seconds(DATA_TTL))
                staged += 1
        pipe.execute()
    return staged


Generator = Callable[..., int]


def _team_generator(kind: TeamDataKey) -> Generator:
    def generate(*, digest: Digest, batch: OrgBatch) -> int:
        return generate_team_data(digest=digest, kind=kind, batch=batch)

    generate.__name__ = f"generate_{kind.name.lower()}"
    return generate


GENERATORS: dict[str, Generator] = {
    **{str(section.kind): _team_generator(section.kind) for section in TEAM_SECTIONS},
    str(UserDataKey.NOTIFY_TEAMS): generate_notify_teams,
    str(UserDataKey.PRODUCT_SUGGESTION): generate_product_suggestions,
}
"""Every generator by the name tasks carry: each team-level kind, then each user-level
kind. Both runners iterate this mapping, so adding a kind here adds it to both."""


# -- step 3: aggregate ----------------------------------------------------------------


def aggregate_org_digests(*, digest: Digest, batch: OrgBatch) -> int:
    """Read every staged team-level kind for the batch's teams (one ``MGET``) and store one
    :class:`OrganizationDigest` per org that has something new; an org with nothing has its
    key deleted. Returns how many orgs have a digest."""
    client = redis_client()
    teams = list(queries.query_org_teams(batch.org_ids))
    keys = [team_data_key(digest.key, s.kind, row["id"]) for row in teams for s in TEAM_SECTIONS]
    raw = iter(client.mget(keys) if keys else [])
    by_org: dict[int, list[TeamDigest]] = defaultdict(list)
    org_names: dict[int, str] = {}
    for row in teams:
        staged = {section.kind: load_items(next(raw)) for section in TEAM_SECTIONS}
        by_org[row["organization_id"]].append(
            TeamDigest.from_staged(id=row["id"], name=row["name"], staged=staged)
        )
        org_names[row["organization_id"]] = row["org_name"]
    stored = 0
    with client.pipeline(transaction=False) as pipe:
        for org_id in batch.org_ids:
            org_digest = OrganizationDigest(
                id=org_id,
                name=org_names.get(org_id, ""),
                period_start=digest.period_start,
                period_end=digest.period_end,
                teams=tuple(by_org.get(org_id, ())),
            )
            key = org_digest_key(digest.key, org_id)
            if org_digest.is_empty:
                pipe.delete(key)
            else:
                pipe.set(key, org_digest.to_json(), ex=seconds(DATA_TTL))
                stored += 1
        pipe.execute()
    return stored


# -- step 4: send ---------------------------------------------------------------------


@dataclass
class SendResult:
    """What one send step did. ``previews`` holds the rendered emails of a dry run."""

    sent: int = 0
    failed: int = 0
    already_sent: int = 0
    opted_out: int = 0
    nothing_new: int = 0
    previews: list[tuple[str, DigestPayload]] = field(default_factory=list)

    def add(self, other: SendResult) -> SendResult:
        return SendResult(
            sent=self.sent + other.sent,
            failed=self.failed + other.failed,
            already_sent=self.already_sent + other.already_sent,
            opted_out=self.opted_out + other.opted_out,
            nothing_new=self.nothing_new + other.nothing_new,
            previews=self.previews + other.previews,
        )

    def to_dict(self) -> dict[str, int]:
        return {
            "sent": self.sent,
            "failed": self.failed,
            "already_sent": self.already_sent,
            "opted_out": self.opted_out,
            "nothing_new": self.nothing_new,
        }

    @classmethod
    def from_dict(cls, data: dict[str, int]) -> SendResult:
        return cls(
            sent=int(data.get("sent", 0)),
            failed=int(data.get("failed", 0)),
            already_sent=int(data.get("already_sent", 0)),
            opted_out=int(data.get("opted_out", 0)),
            nothing_new=int(data.get("nothing_new", 0)),
        )


@dataclass(frozen=True)
class _Recipient:
    org_id: int
    user_id: int
    address: str
    name: str


def email_message(digest: Digest, payload: DigestPayload, context: UserDigestContext) -> Message:
    """The channel message for one rendered digest: the digest's own text and HTML for the
    email, plus the short form (subject, greeting, one line per team × section)."""
    return Message(
        text=payload.text,
        html=payload.html,
        title=payload.subject,
        body=payload.intro,
        url=context.home_url,
        lines=payload.lines,
        footer=f"Weekly digest · {digest.key}",
        unsubscribe_url=context.unsubscribe_url,
        headers={"X-Notiflow-Digest": digest.key},
    )


class EmailSender:
    """The send seam: ``send_many`` over one SMTP connection per call (the project's
    :class:`~notifications.channels.email.EmailChannel`)."""

    def send_many(self, pairs: Sequence[tuple[Message, Destination]]) -> list[Outcome]:
        return email.EmailChannel().send_many(pairs)


def send_org_digests(
    *, digest: Digest, batch: OrgBatch, sender: EmailSender | None = None, dry_run: bool = False
) -> SendResult:
    """Step 4 for one batch. ``dry_run`` renders and returns the emails it would send and
    writes nothing (no claim in the ``sent`` sets, no email)."""
    client = redis_client()
    result = SendResult()
    raw_digests = client.mget([org_digest_key(digest.key, org_id) for org_id in batch.org_ids])
    org_digests = {
        org_id: OrganizationDigest.from_json(raw)
        for org_id, raw in zip(batch.org_ids, raw_digests, strict=True)
        if raw
    }
    if not org_digests:
        return result

    recipients: dict[tuple[int, int], _Recipient] = {}
    for row in queries.query_org_recipients(org_digests):
        key = (row["org_id"], row["user_id"])
        if key not in recipients:
            recipients[key] = _Recipient(
                org_id=row["org_id"],
                user_id=row["user_id"],
                address=row["user__email"] or "",
                name=row["user__first_name"] or row["user__username"],
            )
    ordered = list(recipients.values())
    user_ids = sorted({r.user_id for r in ordered})
    with client.pipeline(transaction=False) as pipe:
        for user_id in user_ids:
            pipe.smembers(user_data_key(digest.key, UserDataKey.NOTIFY_TEAMS, user_id))
            pipe.get(user_data_key(digest.key, UserDataKey.PRODUCT_SUGGESTION, user_id))
        for r in ordered:
            pipe.sismember(sent_key(digest.key, r.org_id), str(r.user_id))
        answers = pipe.execute()
    notify = {u: {int(t) for t in answers[2 * i]} for i, u in enumerate(user_ids)}
    suggestions = {u: answers[2 * i + 1] for i, u in enumerate(user_ids)}
    already = answers[2 * len(user_ids) :]

    base_url = settings.NOTIFLOW_BASE_URL
    to_send: list[tuple[_Recipient, Message, Destination]] = []
    for recipient, was_sent in zip(ordered, already, strict=True):
        if was_sent:
            result.already_sent += 1
            continue
        user_teams = notify[recipient.user_id]
        if not user_teams or not recipient.address:
            result.opted_out += 1
            continue
        raw_suggestion = suggestions[recipient.user_id]
        context = UserDigestContext(
            recipient_name=recipient.name,
            product_suggestion=(
                DigestProductSuggestion.from_json(raw_suggestion) if raw_suggestion else None
            ),
            home_url=f"{base_url}/",
            preferences_url=f"{base_url}/preferences/",
            unsubscribe_url=unsubscribe_url(
                user_id=recipient.user_id, category=DIGEST_CATEGORY, channel=email.TYPE
            ),
        )
        user_digest = org_digests[recipient.org_id].for_user(user_teams, context)
        if user_digest.is_empty:
            result.nothing_new += 1
            continue
        payload = user_digest.render_payload()
        if dry_run:
            result.previews.append((recipient.address, payload))
            continue
        to_send.append(
            (recipient, email_message(digest, payload, context), Destination(recipient.address))
        )
    if dry_run or not to_send:
        return result

    claimed = _claim(client, digest, [r for r, _, _ in to_send])
    result.already_sent += len(to_send) - sum(claimed)
    pairs = [(m, d) for (_, m, d), ok in zip(to_send, claimed, strict=True) if ok]
    mine = [r for (r, _, _), ok in zip(to_send, claimed, strict=True) if ok]
    outcomes = (sender or EmailSender()).send_many(pairs) if pairs else []
    released: list[_Recipient] = []
    for recipient, outcome in zip(mine, outcomes, strict=True):
        if outcome.result == Result.SENT:
            result.sent += 1
            continue
        result.failed += 1
        released.append(recipient)
        log.warning(
            "weekly digest %s to user %s of org %s not sent (%s): %s",
            digest.key,
            recipient.user_id,
            recipient.org_id,
            outcome.result,
            outcome.detail,
        )
    if released:
        with client.pipeline(transaction=False) as pipe:
            for r in released:
                pipe.srem(sent_key(digest.key, r.org_id), r.user_id)
            pipe.execute()
    return result


def _claim(client: redis.Redis, digest: Digest, recipients: Sequence[_Recipient]) -> list[bool]:
    """Add each recipient to their org's ``sent`` set; True where this call added them."""
    with client.pipeline(transaction=False) as pipe:
        for r in recipients:
            pipe.sadd(sent_key(digest.key, r.org_id), r.user_id)
        for org_id in sorted({r.org_id for r in recipients}):
            pipe.expire(sent_key(digest.key, org_id), seconds(SENT_TTL))
        answers = pipe.execute()
    return [bool(added) for added in answers[: len(recipients)]]


# -- the scheduled run's marker -------------------------------------------------------


def claim_scheduled_run(digest: Digest) -> bool:
    """Take the week's run lease; False when a run is in flight or the week is done."""
    return bool(
        redis_client().set(run_key(digest.key), "running", nx=True, ex=seconds(RUN_LEASE_TTL))
    )


def finish_run(digest: Digest) -> None:
    """Mark the week done, so later beat ticks in the same week start nothing."""
    redis_client().set(run_key(digest.key), "done", ex=seconds(SENT_TTL))
