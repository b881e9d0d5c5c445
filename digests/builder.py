"""Build phase: decide which digests a run owes, and record them.

:func:`plan` only reads: for every user on a period it computes the due window in the
user's timezone, the channels the digest goes to, and the notifications that belong in it.
:func:`apply` writes the plan: one ``Digest`` per ``digest_key`` (insert-if-absent) and one
``DigestItem`` per (digest, notification) (insert-if-absent); a window with nothing in it
is kept with status ``empty`` so the window is on record. ``--dry-run`` stops after plan.

A notification belongs in a user's digest on a channel when it is the user's, landed in the
inbox (``created_at``) inside the window — or inside the window before it without going
in that window's digest —, is unread, not archived, not snoozed at ``now``,
not ``personal-direct``, from a team the user still belongs to and has not muted, in a
category the user allows on that channel — and has not already gone out on that channel:
no sent ``Delivery`` for it there, and no other queued, sending or sent digest on that
channel holds it.

Why the window before: ``created_at`` is stamped when the row is written, but the row
becomes visible when its transaction commits, which may be after the build of the window
it is stamped in (an hourly digest is built seconds after the hour). Such a straggler, or
one that was snoozed or not yet allowed when its own window was built, goes in the next
digest; the "held by another digest" rule keeps anything from going out twice.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Count, OuterRef, Subquery
from django.db.models.functions import Coalesce

from digests.models import (
    DIGEST_PREFERENCE,
    PERSONAL_DIRECT,
    Digest,
    DigestChannel,
    DigestItem,
    DigestStatus,
    DigestTarget,
    digest_key,
)
from digests.windows import Period, Window, clamp_hour, due_window, previous_window
from notifications.models import Delivery, DeliveryStatus, Notification, Preference
from workspace.models import Membership, UserProfile

log = logging.getLogger(__name__)

# A digest takes items while it waits to be sent; ``empty`` and everything after
# ``queued`` are final for the build phase.
OPEN_STATUSES = (DigestStatus.QUEUED,)
# A notification held by a digest in one of these statuses is not put in another digest on
# the same channel (a user who changes timezone or cadence gets nothing twice).
HOLDING_STATUSES = (DigestStatus.QUEUED, DigestStatus.SENDING, DigestStatus.SENT)
CHUNK_USERS = 500


@dataclass(frozen=True)
class Target:
    organization_id: int
    address: str


@dataclass(frozen=True)
class Recipient:
    """What the build phase needs to know about one user, as plain data."""

    user_id: int
    username: str
    email: str
    timezone: str
    digest_hour: int
    period: Period
    channels: Mapping[str, Mapping[str, bool]] = field(default_factory=dict)
    targets: Mapping[str, Target] = field(default_factory=dict)

    def allows(self, category: str, channel: str) -> bool:
        """``Preference.allows``: anything not switched off is on."""
        return bool(self.channels.get(category, {}).get(channel, True))

    def digest_channels(self) -> tuple[str, ...]:
        found = []
        if self.email.strip() and self.allows(DIGEST_PREFERENCE, DigestChannel.EMAIL):
            found.append(DigestChannel.EMAIL.value)
        for channel in (DigestChannel.SLACK, DigestChannel.TELEGRAM):
            if channel.value in self.targets and self.allows(DIGEST_PREFERENCE, channel):
                found.append(channel.value)
        return tuple(found)


@dataclass(frozen=True)
class PlannedDigest:
    key: str
    recipient: Recipient
    channel: str
    window: Window
    notification_ids: tuple[int, ...]
    digest_id: int | None = None
    status: str | None = None

    @property
    def is_new(self) -> bool:
        return self.digest_id is None

    @property
    def is_empty(self) -> bool:
        return not self.notification_ids


@dataclass
class BuildReport:
    """What a build phase did — the one tally of building, read by a run's progress and
    summary and the command's totals."""

    users: int = 0
    planned: int = 0
    created: int = 0
    empty: int = 0
    items: int = 0
    queued: list[PlannedDigest] = field(default_factory=list)
    touched: set[int] = field(default_factory=set)  # users a new digest was recorded for

    def add(self, other: BuildReport) -> None:
        self.users += other.users
        self.planned += other.planned
        self.created += other.created
        self.empty += other.empty
        self.items += other.items
        self.queued.extend(other.queued)
        self.touched |= other.touched


# -- who is on a period ----------------------------------------------------------------------


def recipients(period: Period | str, *, user_ids: Iterable[int] | None = None) -> list[Recipient]:
    """Active users whose digest cadence is ``period``, with their zone, hour, channel
    switches and Slack/Telegram targets. A user without a ``Preference`` row has the
    model's defaults (daily at 09:00)."""
    period = Period(period)
    User = get_user_model()
    users = User.objects.filter(is_active=True)
    if user_ids is not None:
        users = users.filter(pk__in=list(user_ids))
    on_period = users.filter(notification_preference__digest_cadence=period)
    if period == Preference._meta.get_field("digest_cadence").default:
        on_period = on_period | users.filter(notification_preference__isnull=True)
    rows = list(on_period.order_by("pk").values("pk", "username", "email"))
    ids = [row["pk"] for row in rows]
    prefs: dict[int, dict[str, Any]] = {
        p["user_id"]: dict(p)
        for p in Preference.objects.filter(user_id__in=ids).values(
            "user_id", "channels", "digest_hour"
        )
    }
    default_hour = Preference._meta.get_field("digest_hour").default
    zones = dict(UserProfile.objects.filter(user_id__in=ids).values_list("user_id", "timezone"))
    targets: dict[int, dict[str, Target]] = defaultdict(dict)
    for target in DigestTarget.objects.filter(user_id__in=ids, enabled=True).exclude(address=""):
        targets[target.user_id][target.channel] = Target(target.organization_id, target.address)
    return [
        Recipient(
            user_id=row["pk"],
            username=row["username"],
            email=row["email"] or "",
            timezone=zones.get(row["pk"]) or "UTC",
            digest_hour=clamp_hour(prefs.get(row["pk"], {}).get("digest_hour", default_hour)),
            period=period,
            channels=prefs.get(row["pk"], {}).get("channels") or {},
            targets=targets.get(row["pk"], {}),
        )
        for row in rows
    ]


def recipient_for(user_id: int) -> Recipient | None:
    """One user's digest settings, or None when their digests are off (or they are
    inactive)."""
    for period in Period:
        people = recipients(period, user_ids=[user_id])
        if people:
            return people[0]
    return None


# -- what goes in -----------------------------------------------------------------------------


def eligible_items(
    wanted: Sequence[tuple[Recipient, Window, str, str]], *, now: datetime
) -> dict[str, tuple[int, ...]]:
    """Notification ids for each (recipient, window, channel, digest key), by key, applying
    every exclusion rule in the module docstring. A handful of queries per call, however
    many recipients it covers."""
    if not wanted:
        return {}
    user_ids = sorted({recipient.user_id for recipient, _, _, _ in wanted})
    since = {key: previous_window(window).start for _, window, _, key in wanted}
    earliest = min(since.values())
    latest = max(window.end for _, window, _, _ in wanted)
    rows = list(
        Notification.objects.filter(
            recipient_id__in=user_ids,
            created_at__gte=earliest,
            created_at__lt=latest,
            read_at__isnull=True,
            archived_at__isnull=True,
        )
        .exclude(category=PERSONAL_DIRECT)
        .exclude(snoozed_until__gt=now)
        .order_by("created_at", "id")
        .values_list("id", "recipient_id", "team_id", "category", "created_at")
    )
    if not rows:
        return {key: () for _, _, _, key in wanted}
    member_of = set(
        Membership.objects.filter(user_id__in=user_ids).values_list("user_id", "team_id")
    )
    muted = set(
        Preference.muted_teams.through.objects.filter(preference__user_id__in=user_ids).values_list(
            "preference__user_id", "team_id"
        )
    )
    ids = [row[0] for row in rows]
    channels = sorted({channel for _, _, channel, _ in wanted})
    delivered = set(
        Delivery.objects.filter(
            notification_id__in=ids, channel__in=channels, status=DeliveryStatus.SENT
        ).values_list("notification_id", "channel")
    )
    held: dict[tuple[int, str], set[str]] = defaultdict(set)
    for notification_id, channel, key in DigestItem.objects.filter(
        notification_id__in=ids, digest__channel__in=channels, digest__status__in=HOLDING_STATUSES
    ).values_list("notification_id", "digest__channel", "digest__digest_key"):
        held[(notification_id, channel)].add(key)

    by_user: dict[int, list[tuple]] = defaultdict(list)
    for row in rows:
        by_user[row[1]].append(row)
    found: dict[str, tuple[int, ...]] = {}
    for recipient, window, channel, key in wanted:
        chosen = []
        for notification_id, user_id, team_id, category, created_at in by_user.get(
            recipient.user_id, ()
        ):
            if not since[key] <= created_at < window.end:
                continue
            if (user_id, team_id) not in member_of or (user_id, team_id) in muted:
                continue
            if not recipient.allows(category, channel):
                continue
            if (notification_id, channel) in delivered:
                continue
            if held.get((notification_id, channel), set()) - {key}:
                continue
            chosen.append(notification_id)
        found[key] = tuple(chosen)
    return found


def _chunks(items: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def plan(
    period: Period | str,
    *,
    now: datetime,
    user_ids: Iterable[int] | None = None,
    chunk_size: int = CHUNK_USERS,
) -> Iterator[list[PlannedDigest]]:
    """The digests owed at ``now`` for users on ``period``, a chunk of users at a time.
    Digests already past the build phase (sending, sent, failed, skipped) are left out;
    reads only."""
    period = Period(period)
    people = recipients(period, user_ids=user_ids)
    for group in _chunks(people, chunk_size):
        wanted: list[tuple[Recipient, Window, str, str]] = []
        for recipient in group:
            window = due_window(period, now, recipient.timezone, recipient.digest_hour)
            for channel in recipient.digest_channels():
                key = digest_key(
                    user_id=recipient.user_id,
                    channel=channel,
                    period=period,
                    window_start=window.start,
                )
                wanted.append((recipient, window, channel, key))
        existing = {
            key: (pk, status)
            for key, pk, status in Digest.objects.filter(
                digest_key__in=[key for _, _, _, key in wanted]
            ).values_list("digest_key", "pk", "status")
        }
        open_ = [w for w in wanted if w[3] not in existing or existing[w[3]][1] in OPEN_STATUSES]
        items = eligible_items(open_, now=now)
        yield [
            PlannedDigest(
                key=key,
                recipient=recipient,
                channel=channel,
                window=window,
                notification_ids=items[key],
                digest_id=existing.get(key, (None, None))[0],
                status=existing.get(key, (None, None))[1],
            )
            for recipient, window, channel, key in open_
        ]


def apply(plans: Sequence[PlannedDigest]) -> BuildReport:
    """Record ``plans``: new digests (``queued``, or ``empty`` with nothing in them), new
    items for digests still ``queued``. Safe to run concurrently with itself and with the
    sender: queued digests are locked while items are added, and a digest the sender has
    claimed is no longer queued."""
    report = BuildReport(planned=len(plans))
    if not plans:
        return report
    with transaction.atomic():
        new = [
            Digest(
                digest_key=p.key,
                user_id=p.recipient.user_id,
                channel=p.channel,
                period=p.recipient.period,
                window_start=p.window.start,
                window_end=p.window.end,
                timezone=p.window.tz,
                status=DigestStatus.EMPTY if p.is_empty else DigestStatus.QUEUED,
            )
            for p in plans
            if p.is_new
        ]
        # bulk_create(ignore_conflicts=True) returns no ids on PostgreSQL; count what was
        # there before instead (a concurrent build may have inserted some of the same keys).
        already = Digest.objects.filter(digest_key__in=[d.digest_key for d in new]).count()
        Digest.objects.bulk_create(new, ignore_conflicts=True, batch_size=1000)
        report.created = len(new) - already
        open_digests = dict(
            Digest.objects.select_for_update()
            .filter(digest_key__in=[p.key for p in plans], status__in=OPEN_STATUSES)
            .order_by("pk")  # one lock order for every builder: no deadlocks between them
            .values_list("digest_key", "pk")
        )
        items = [
            DigestItem(digest_id=open_digests[p.key], notification_id=notification_id)
            for p in plans
            if p.key in open_digests
            for notification_id in p.notification_ids
        ]
        before = DigestItem.objects.filter(digest_id__in=open_digests.values()).count()
        DigestItem.objects.bulk_create(items, ignore_conflicts=True, batch_size=1000)
        after = DigestItem.objects.filter(digest_id__in=open_digests.values()).count()
        report.items = after - before
        if open_digests:
            counted = Coalesce(
                Subquery(
                    DigestItem.objects.filter(digest_id=OuterRef("pk"))
                    .values("digest_id")
                    .annotate(n=Count("pk"))
                    .values("n")
                ),
                0,
            )
            Digest.objects.filter(pk__in=open_digests.values()).update(item_count=counted)
    report.empty = sum(1 for p in plans if p.is_new and p.is_empty)
    report.queued = [p for p in plans if not p.is_empty]
    report.users = len({p.recipient.user_id for p in plans})
    report.touched = {p.recipient.user_id for p in plans if p.is_new}
    return report


def digest_build(
    *,
    period: Period | str,
    now: datetime,
    dry_run: bool = False,
    user_ids: Iterable[int] | None = None,
    on_chunk: Callable[[BuildReport], None] | None = None,
) -> BuildReport:
    """Plan and (unless ``dry_run``) record the digests owed at ``now`` for ``period``.
    ``on_chunk`` is handed the running total after every chunk of users."""
    total = BuildReport()
    for plans in plan(period, now=now, user_ids=user_ids):
        if dry_run:
            chunk = BuildReport(
                users=len({p.recipient.user_id for p in plans}),
                planned=len(plans),
                created=sum(1 for p in plans if p.is_new),
                empty=sum(1 for p in plans if p.is_new and p.is_empty),
                items=sum(len(p.notification_ids) for p in plans),
                queued=[p for p in plans if not p.is_empty],
                touched={p.recipient.user_id for p in plans if p.is_new},
            )
        else:
            chunk = apply(plans)
        total.add(chunk)
        if on_chunk is not None:
            on_chunk(total)
    return total
