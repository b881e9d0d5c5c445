"""Model-based test of the whole pipeline (issue #12, "Catch the class, not the instance").

Hypothesis drives random sequences of what users and clients do, through the public paths
on the real services — triggers created, edited, disabled, enabled and snoozed through
``/api/triggers/`` by logged-in members; events ingested through ``POST /api/ingest/``
(bursts, resent batches, matching and non-matching names and properties, timestamps in the
past, hostile property values); insights created, edited and deleted through the host API;
people leaving and rejoining a team — and what the pipeline does with it: the real consumer
loop (``ConsumerLoop`` + ``EventProcessor`` over Kafka) run until caught up, restarted (a
new trigger cache), or crashed after its database commit and replayed; roll-up windows
flushed by ``rollup.flush_due`` at a clock past their end; deliveries run by Celery (inline
in tests) to the local Slack server and aiosmtpd; people changing their digest cadence or
switching the email digest off (``PUT /api/preferences/``); and ``manage.py digests run``
as beat runs it, with ``--now`` at the sequence's clock, a day or a week ahead, past the
hour the digest is due or just before it, sometimes twice in a row.

After every step the real system is compared with :class:`tests.reliability.model.Model`,
a pure reference written from DESIGN.md's promises: each person's in-app rows (and counts),
their unread badge, every message at every Slack channel and mailbox, and each digest
email (its items, per team and trigger, and what they add up to). A failing
sequence is shrunk by Hypothesis; each one found is kept below as a plain regression test.

Bounds: ``MODEL_EXAMPLES`` sequences of at most ``MODEL_STEPS`` steps, derandomized so CI
runs the same sequences every time; ``NOTIFLOW_MODEL_EXAMPLES=200
NOTIFLOW_MODEL_RANDOM=1`` explores further locally. Each sequence has its own Kafka topics
and starts from empty tables.

Everyone's digest zone puts the sequence near local noon (a fixed UTC offset chosen when
it starts), so a daily or weekly window never ends while it runs: which window each row
falls in has one right answer, whatever the time of day CI runs.

Where a change could be ambiguous — a trigger change while events it could apply to are
still unconsumed, which DESIGN.md leaves either way for events ingested *before* the
change — the step first runs the consumer, so every comparison has one right answer. A
resent batch is resent before any trigger or membership change (as a client's retry is).
"""

from __future__ import annotations

import io
import json
import os
import re
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, ClassVar

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.core.management.color import no_style
from django.db import connection
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from rest_framework.test import APIClient

from digests.history import client_for
from notifications import enqueue, rollup, stream
from notifications.consumers import BatchPolicy, ConsumerLoop
from notifications.events import MAX_PROPERTIES_DEPTH
from notifications.models import Delivery, DeliveryStatus, Notification, Outbox, Preference
from notifications.processing import BatchResult, EventProcessor
from tests.factories import MembershipFactory, OrganizationFactory, TeamFactory, UserFactory
from tests.notifications.test_delivery import slack_config
from tests.reliability import model as m
from workspace.models import ActivityLog, Membership, Role, UserProfile

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

MODEL_EXAMPLES = int(os.environ.get("NOTIFLOW_MODEL_EXAMPLES", "25"))
MODEL_STEPS = 20
MODEL_SETTINGS = settings(
    max_examples=MODEL_EXAMPLES,
    stateful_step_count=MODEL_STEPS,
    deadline=None,
    derandomize=not os.environ.get("NOTIFLOW_MODEL_RANDOM"),
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
MAX_TRIGGERS = 4
CONSUME_TIMEOUT = 60.0
QUICK_POLLS = BatchPolicy(poll_timeout_ms=200)
"""The loop stops at the first empty poll once caught up: a short poll keeps steps fast."""

# Who is where at the start of each sequence; admins never leave (they edit triggers).
TEAMS = {"A": ["alice", "bob", "carol", "erin"], "B": ["dave", "erin"]}
ADMINS = {"A": "alice", "B": "dave"}
PEOPLE = sorted({u for users in TEAMS.values() for u in users})

SUMMARY = re.compile(r"seen ([\d,]+) times? between")
EMAIL_TRIGGER = re.compile(r"\] mbt(\d+): ")

DELIVERIES = [("instant", 60), ("rollup", 30), ("rollup", 90), ("digest", 60)]
# Digest settings at the start of each sequence; erin's zone is 5 hours from the others'.
CADENCES = {"alice": "daily", "bob": "weekly", "carol": "off", "dave": "daily", "erin": "daily"}
DIGEST_HOUR = 9
DIGEST_SUBJECT = re.compile(r"^Your (daily|weekly) digest: ([\d,]+) updates? in (\d+) teams?$")
DIGEST_TRIGGER = re.compile(r"^mbt(\d+): (?:([\d,]+) × )?")
WEIGHT = re.compile(r"^([\d,]+) ")
TIMES = re.compile(r"\(×([\d,]+)\)")
MORE = re.compile(r"^   – …and ([\d,]+) more$")
RUN_AT = {
    "now": None,
    "tomorrow 08:30": (1, 8, 30),
    "tomorrow 09:00": (1, 9, 0),
    "tomorrow 10:00": (1, 10, 0),
    "in two days": (2, 10, 0),
    "in three days": (3, 10, 0),
    "next monday": ("monday", 9, 30),
    "monday week": ("monday week", 9, 30),
}
"""When ``digests run`` runs: the sequence's clock, or a local time (in alice's zone) that
many days ahead."""
FINAL_RUNS = ["tomorrow 10:00", "in two days", "next monday"]

# --- what clients send ------------------------------------------------------------------

AMOUNTS = st.one_of(
    st.integers(0, 300),
    st.integers(101, 10**6),
    st.sampled_from(
        [
            "150",
            " 150 ",
            "1e3",
            "99.5",
            "١٥٠",  # Arabic-Indic digits: Python reads 150
            "1e400",
            True,
            None,
            10**30,
            10**400,
            -(10**400),
            1e308,
            [150],
            {"v": 150},
            "🚀",
        ]
    ),
)
PLANS = st.sampled_from(["pro", "PRO", "free", "Pro ", "İpro", ["pro"], {"pro": 1}, None, 1, True])
TEXT = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=8)
"""Any text PostgreSQL can store: NUL and lone surrogates are refused (``ingest_refused``)."""
HOSTILE = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(10**40), max_value=10**40),
        st.floats(allow_nan=False, allow_infinity=False),
        TEXT,
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(TEXT, inner, max_size=3)),
    max_leaves=6,
)


@st.composite
def properties(draw) -> dict[str, Any]:
    props: dict[str, Any] = {}
    if draw(st.booleans()):
        props["amount"] = draw(AMOUNTS)
    if draw(st.booleans()):
        props["plan"] = draw(PLANS)
    if draw(st.integers(0, 3)) == 0:
        props[draw(st.sampled_from(["note", "ünïcødé", "🚀", "nested"]))] = draw(HOSTILE)
    return props


EVENT_NAMES = ["checkout_error", "signup"]


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


REFUSED: dict[str, tuple[str | None, dict[str, Any]]] = {
    "forged activity": ("event", {"event": "activity.insight.deleted"}),
    "forged check": ("event", {"event": "check.fired"}),
    "NUL in a value": ("properties", {"properties": {"note": "a\x00b"}}),
    "NUL in a key": ("properties", {"properties": {"a\x00": 1}}),
    "properties a list": ("properties", {"properties": [1, 2]}),
    "too deep": ("properties", {"properties": {"d": _nested(MAX_PROPERTIES_DEPTH + 1)}}),
    "lone surrogate": (None, {"properties": {"note": "\ud800"}}),
    "a day ahead": ("timestamp", {"timestamp": "2099-01-01T00:00:00Z"}),
    "no timezone": ("timestamp", {"timestamp": "2026-01-01T00:00:00"}),
}
"""What a client may send that ingestion must refuse (field named in the 400, item kept out)."""


@dataclass(frozen=True)
class Batch:
    """A batch as sent, to resend byte for byte (a client's retry)."""

    team: str
    body: dict[str, Any]
    events: list[m.Event]
    epoch: int


# --- the machine ------------------------------------------------------------------------


class Pipeline(RuleBasedStateMachine):
    """The real system on one side, the model on the other; one sequence per instance."""

    env: Any = None  # (settings, slack_server, smtp_server), set by the test
    stats: Counter[str] = Counter()  # what the run covered, printed by the test

    triggers = Bundle("triggers")
    batches = Bundle("batches")

    def __init__(self) -> None:
        super().__init__()
        django_settings, self.slack, self.smtp = self.env
        django_settings.NOTIFLOW_TOPIC_PREFIX = f"notiflow-model-{uuid.uuid4().hex[:10]}"
        cache.clear()  # ingest throttle counters
        self.slack_seen = len(self.slack.posts)
        self.smtp_seen = len(self.smtp.messages)
        self.base = timezone.now().replace(microsecond=0)
        self.offset = timedelta(0)
        self.event_at = self.base - timedelta(minutes=60)
        self.epoch = 0
        self.steps: list[str] = []

        org = OrganizationFactory()
        self.teams = {name: TeamFactory(organization=org) for name in TEAMS}
        token = uuid.uuid4().hex[:6]
        self.users = {
            name: UserFactory(username=f"{name}-{token}", email=f"{name}-{token}@example.com")
            for name in PEOPLE
        }
        for team, names in TEAMS.items():
            for name in names:
                role = Role.ADMIN if ADMINS[team] == name else Role.MEMBER
                MembershipFactory(team=self.teams[team], user=self.users[name], role=role)
        slack_config(self.teams["A"])
        self.clients = {}
        for name, user in self.users.items():
            client = APIClient()
            client.force_authenticate(user)
            self.clients[name] = client
        self.anonymous = APIClient()
        self.trigger_ids: dict[int, int] = {}
        offset = 12 - self.base.hour  # local noon, give or take half an hour
        away = offset + 5 if offset <= 9 else offset - 5  # UTC offsets run -12 … +14
        readers = {
            name: m.Reader(
                cadence=CADENCES[name],
                email_on=True,
                utc_offset=away if name == "erin" else offset,
                hour=DIGEST_HOUR,
            )
            for name in PEOPLE
        }
        for name, reader in readers.items():
            user = self.users[name]
            zone = f"Etc/GMT{-reader.utc_offset:+d}"  # POSIX signs: Etc/GMT-5 is UTC+5
            UserProfile.objects.update_or_create(user=user, defaults={"timezone": zone})
            Preference.objects.update_or_create(
                user=user, defaults={"digest_cadence": reader.cadence, "digest_hour": reader.hour}
            )
        self.model = m.Model(
            members={team: set(names) for team, names in TEAMS.items()},
            emails={name: user.email for name, user in self.users.items()},
            readers=readers,
        )
        stream.ensure_topics()
        self._start_consumer()

    # --- plumbing --------------------------------------------------------------------------

    def now(self) -> datetime:
        return self.base + self.offset

    def _start_consumer(self) -> None:
        self.consumer = stream.build_consumer()
        self.producer = stream.build_producer()
        self.loop = ConsumerLoop(
            self.consumer, self.producer, EventProcessor(clock=self.now), policy=QUICK_POLLS
        )

    def _stop_consumer(self) -> None:
        self.producer.close(timeout=5)
        self.consumer.close()

    def _run_consumer(self) -> BatchResult:
        stop = threading.Event()
        timer = threading.Timer(CONSUME_TIMEOUT, stop.set)
        timer.start()
        try:
            result = self.loop.run(stop, until_idle=True)
        finally:
            timer.cancel()
        assert not stop.is_set(), f"the consumer did not catch up in {CONSUME_TIMEOUT:.0f} s"
        assert result.dead_lettered == 0, "an event the API accepted was dead-lettered"
        return result

    def _consume(self) -> None:
        self._run_consumer()
        self.model.consume(self.now(), made=timezone.now())

    def _settle(self, team: str, *names: str) -> None:
        """Consume first when unconsumed events could be evaluated either way by a change
        to triggers on these event names (see the module docstring)."""
        pending = self.model.pending_names()
        if any((team, name) in pending for name in names):
            self.steps.append("  (consume first: events of the changed trigger are pending)")
            self._consume()

    def members(self, team: str) -> list[str]:
        return sorted(self.model.members[team])

    def log(self, text: str) -> None:
        self.steps.append(text)
        self.stats["steps"] += 1

    def teardown(self) -> None:
        """Let every window end, consume and flush what is left, run the digests due the
        next days, compare once more (unless a step already failed), and empty the tables
        for the next sequence."""
        try:
            if getattr(self, "loop", None) is not None and sys.exc_info()[0] is None:
                self.offset += timedelta(days=1)
                self._consume()
                self._flush()
                self.offset -= timedelta(days=1)
                for when in FINAL_RUNS:  # every row made so far is due in one of these
                    self._run_digests(when, None)
                self._compare()
                if os.environ.get("H5_DEBUG"):
                    print(
                        "\n".join(
                            ["----", *self.steps, repr(self.model.rows), repr(self.model.messages)]
                        )
                    )
                self.stats["sequences"] += 1
                self.stats["in-app rows"] += len(self.model.rows)
                self.stats["messages"] += len(self.model.messages)
                self.stats["events"] += len(self.model.seen)
                self.stats["digest mails"] += len(self.model.digest_mails)
                self.stats["digest items"] += len(self.model.in_digest)
        finally:
            if getattr(self, "consumer", None) is not None:
                self._stop_consumer()
            _empty_tables()
            _forget_digest_history()

    # --- triggers ----------------------------------------------------------------------

    TRIGGER_ARGUMENTS: ClassVar[dict[str, st.SearchStrategy]] = {
        "team": st.sampled_from(["A", "A", "B"]),
        "kind": st.sampled_from(["event", "event", "event_count"]),
        "event": st.sampled_from(EVENT_NAMES),
        "filter_name": st.sampled_from([None, None, m.AMOUNT_OVER_100, m.PLAN_IS_PRO]),
        "channels": st.sets(st.sampled_from(["in_app", "email", "slack"]), min_size=1),
        "delivery": st.sampled_from(DELIVERIES),
        "count": st.integers(2, 3),
        "window_minutes": st.integers(1, 2),
        "data": st.data(),
    }

    @initialize(target=triggers, **TRIGGER_ARGUMENTS)
    def first_trigger(self, **arguments):
        """Every sequence starts with a trigger, so most of its events can match one."""
        return self.create_trigger(**arguments)

    @precondition(lambda self: len(self.model.triggers) < MAX_TRIGGERS)
    @rule(target=triggers, **TRIGGER_ARGUMENTS)
    def create_trigger(
        self, team, kind, event, filter_name, channels, delivery, count, window_minutes, data
    ):
        members = self.members(team)
        creator = data.draw(st.sampled_from(members), label="creator")
        subscribers = data.draw(st.sets(st.sampled_from(members)), label="subscribers")
        key = len(self.trigger_ids) + 1
        config = m.TriggerConfig(
            kind=kind,
            event=event,
            filter=filter_name,
            count=count if kind == "event_count" else 1,
            window_minutes=window_minutes if kind == "event_count" else 1,
            channels=frozenset(channels),
            mode=delivery[0],
            window_seconds=delivery[1],
            subscribers=frozenset(subscribers),
        )
        trigger = m.Trigger(key=key, team=team, owner=creator, config=config)
        self._settle(team, event)
        body = {
            "team": self.teams[team].pk,
            "name": trigger.name,
            "kind": kind,
            "config": _config_body(config),
            "channels": _channels_body(trigger),
            "delivery": _delivery_body(config),
            "subscribers": sorted(self.users[u].pk for u in subscribers),
        }
        response = self.clients[creator].post("/api/triggers/", body, format="json")
        assert response.status_code == 201, response.content
        self.trigger_ids[response.json()["id"]] = key
        self.model.add_trigger(trigger)
        self.epoch += 1
        self.log(f"{creator} creates {trigger.name} in {team}: {config}")
        return key

    def _patch(self, key: int, body: dict[str, Any], **changes: Any) -> None:
        trigger = self.model.triggers[key]
        names = {trigger.config.event, changes.get("event", trigger.config.event)}
        self._settle(trigger.team, *names)
        response = self.clients[ADMINS[trigger.team]].patch(
            f"/api/triggers/{self._real(key)}/", body, format="json"
        )
        assert response.status_code == 200, response.content
        self.model.change_trigger(key, **changes)
        self.epoch += 1
        self.log(f"edit mbt{key}: {changes}")

    def _real(self, key: int) -> int:
        return next(real for real, k in self.trigger_ids.items() if k == key)

    @rule(
        key=triggers,
        what=st.sampled_from(["edit", "edit", "edit", "disable", "enable", "snooze", "unsnooze"]),
        data=st.data(),
    )
    def change_trigger(self, key, what, data):
        """An edit (channels, delivery, subscribers, filter, event or count), or the
        enable / disable / snooze actions, by the team's admin."""
        if what == "edit":
            self._edit_trigger(key, data)
            return
        trigger = self.model.triggers[key]
        self._settle(trigger.team, trigger.config.event)
        client = self.clients[ADMINS[trigger.team]]
        url = f"/api/triggers/{self._real(key)}"
        if what in ("enable", "disable"):
            response = client.post(f"{url}/{what}/")
            changes = {"enabled": what == "enable"}
        else:
            # Snoozed for two days of real time: longer than any sequence's clock runs.
            until = (timezone.now() + timedelta(days=2)).isoformat() if what == "snooze" else None
            response = client.post(f"{url}/snooze/", {"until": until}, format="json")
            changes = {"snoozed": what == "snooze"}
        assert response.status_code == 200, response.content
        self.model.change_trigger(key, **changes)
        self.epoch += 1
        self.log(f"{what} mbt{key}")

    def _edit_trigger(self, key: int, data: st.DataObject) -> None:
        trigger = self.model.triggers[key]
        config = trigger.config
        fields = ["channels", "delivery", "subscribers"]
        fields += ["filter", "event"] if config.kind == "event" else ["count"]
        what = data.draw(st.sampled_from(fields), label="field")
        if what == "channels":
            channels = frozenset(
                data.draw(st.sets(st.sampled_from(["in_app", "email", "slack"]), min_size=1))
            )
            changed = replace(trigger, config=replace(config, channels=channels))
            self._patch(key, {"channels": _channels_body(changed)}, channels=channels)
        elif what == "delivery":
            mode, seconds = data.draw(st.sampled_from(DELIVERIES))
            body = {"delivery": _delivery_body(replace(config, mode=mode, window_seconds=seconds))}
            self._patch(key, body, mode=mode, window_seconds=seconds)
        elif what == "subscribers":
            subscribers = frozenset(data.draw(st.sets(st.sampled_from(self.members(trigger.team)))))
            ids = sorted(self.users[u].pk for u in subscribers)
            self._patch(key, {"subscribers": ids}, subscribers=subscribers)
        elif what == "filter":
            name = data.draw(st.sampled_from([None, m.AMOUNT_OVER_100, m.PLAN_IS_PRO]))
            body = {"config": _config_body(replace(config, filter=name))}
            self._patch(key, body, filter=name)
        elif what == "event":
            event = data.draw(st.sampled_from(EVENT_NAMES))
            self._patch(key, {"config": _config_body(replace(config, event=event))}, event=event)
        else:
            count = data.draw(st.integers(1, 3))
            self._patch(key, {"config": _config_body(replace(config, count=count))}, count=count)

    # --- events --------------------------------------------------------------------------

    INGEST_ARGUMENTS: ClassVar[dict[str, st.SearchStrategy]] = {
        "items": st.lists(properties(), min_size=1, max_size=8),
        "spacing": st.sampled_from([1, 10, 40]),
        "then_consume": st.booleans(),
        "data": st.data(),
    }

    @initialize(target=batches, **INGEST_ARGUMENTS)
    def first_burst(self, **arguments):
        return self.ingest(**arguments)

    @rule(target=batches, **INGEST_ARGUMENTS)
    def ingest(self, items, spacing, then_consume, data):
        """A burst, stamped in the past at ``spacing`` seconds apart (never decreasing
        across a sequence, so event_count windows have one right answer); mostly into a
        team with triggers, of events one of them watches. Sometimes consumed at once."""
        busy = sorted({t.team for t in self.model.triggers.values()})
        team = data.draw(st.sampled_from([*busy, *busy, *busy, *TEAMS]), label="team")
        watched = sorted({t.config.event for t in self.model.triggers.values() if t.team == team})
        names = st.sampled_from([*watched, *watched, *watched, *EVENT_NAMES, "page_view"])
        events, batch = [], []
        for props in items:
            name = data.draw(names, label="event")
            self.event_at = min(self.event_at + timedelta(seconds=spacing), timezone.now())
            event_id = str(uuid.uuid4())
            events.append(
                m.Event(id=event_id, team=team, name=name, at=self.event_at, properties=props)
            )
            batch.append(
                {
                    "event": name,
                    "distinct_id": f"user-{event_id[:8]}",
                    "properties": props,
                    "timestamp": self.event_at.isoformat(),
                    "uuid": event_id,
                }
            )
        body = {"api_key": self.teams[team].api_token, "batch": batch}
        self._post_batch(body, events)
        self.log(f"ingest into {team}: {[(e.name, e.properties) for e in events]}")
        self.stats["events sent"] += len(events)
        if then_consume:
            self.consume("plain")
        return Batch(team, body, events, self.epoch)

    @rule(
        team=st.sampled_from(sorted(TEAMS)),
        items=st.lists(properties(), max_size=3),
        bad=st.sampled_from(sorted(REFUSED)),
        at=st.integers(0, 3),
    )
    def ingest_refused(self, team, items, bad, at):
        """A batch with one item the public contract refuses: 400 naming the item and the
        field, and none of the batch reaches anyone."""
        batch = [
            {"event": "checkout_error", "distinct_id": "u", "properties": props} for props in items
        ]
        field, item = REFUSED[bad]
        index = min(at, len(batch))
        batch.insert(index, {"event": "checkout_error", "distinct_id": "u"} | item)
        body = json.dumps({"api_key": self.teams[team].api_token, "batch": batch})
        response = self.anonymous.post("/api/ingest/", body, content_type="application/json")
        assert response.status_code == 400, (response.status_code, response.content)
        if field is None:  # refused by the JSON parser, before items are read
            assert "surrogate" in response.json()["detail"], response.content
        else:
            errors = response.json()["errors"]
            assert {"index": index, "field": field} in [
                {"index": e.get("index"), "field": e["field"]} for e in errors
            ], errors
        self.log(f"ingest into {team}, refused: {bad} at {index}")

    def _post_batch(self, body: dict[str, Any], events: list[m.Event]) -> None:
        response = self.anonymous.post("/api/ingest/", body, format="json")
        assert response.status_code == 202, (response.status_code, response.content)
        assert response.json() == {"accepted": len(events)}
        self.model.ingest(events)

    @rule(batch=batches)
    def resend(self, batch):
        """A client retrying a batch it already sent (same uuids, same bytes), before any
        trigger or membership change."""
        if batch.epoch != self.epoch:
            return
        self._post_batch(batch.body, batch.events)
        self.log(f"resend the batch of {len(batch.events)} into {batch.team}")

    # --- the host product ---------------------------------------------------------------

    @rule(
        team=st.sampled_from(["A", "A", "B"]),
        action=st.sampled_from(["created", "updated", "updated", "updated", "deleted"]),
        data=st.data(),
    )
    def insight_activity(self, team, action, data):
        """A member creates, edits or deletes an insight of the team."""
        actor = data.draw(st.sampled_from(self.members(team)), label="actor")
        client = self.clients[actor]
        live = self.model.live_resources(team)
        if action == "created" or not live:
            body = {"team": self.teams[team].pk, "name": "Revenue"}
            response = client.post("/api/insights/", body, format="json")
            assert response.status_code == 201, response.content
            resource = str(response.json()["id"])
            event = self._activity(team, resource, "created", actor)
            self.model.resource_created(resource, team, actor, event)
            self.log(f"{actor} creates insight {resource} in {team}")
            return
        resource = data.draw(st.sampled_from(live), label="insight")
        self._around_followers(resource)
        if action == "updated":
            body = {"name": f"Revenue {uuid.uuid4().hex[:4]}"}
            response = client.patch(f"/api/insights/{resource}/", body, format="json")
            assert response.status_code == 200, response.content
        else:
            response = client.delete(f"/api/insights/{resource}/")
            assert response.status_code == 204, response.content
        self.model.resource_changed(self._activity(team, resource, action, actor))
        self.log(f"{actor} {action} insight {resource}")

    def _around_followers(self, resource: str) -> None:
        if os.environ.get("H5_AROUND") and any(
            p.event.resource == resource for p in self.model.pending
        ):
            self._consume()

    def _activity(self, team: str, resource: str, action: str, actor: str) -> m.Event:
        entry = ActivityLog.objects.filter(resource_type="insight", resource_id=resource).latest(
            "pk"
        )
        assert (entry.action, entry.actor_id) == (action, self.users[actor].pk)
        assert not Outbox.objects.filter(published_at__isnull=True).exists(), "relay pending"
        return m.Event(
            id=f"act:{entry.pk}",
            team=team,
            name=f"activity.insight.{action}",
            at=entry.created_at,
            actor=actor,
            resource=resource,
            action=action,
        )

    @rule(team=st.sampled_from(sorted(TEAMS)), data=st.data())
    def leave_or_rejoin(self, team, data):
        user = data.draw(
            st.sampled_from([u for u in TEAMS[team] if u != ADMINS[team]]), label="user"
        )
        if user in self.model.members[team]:
            Membership.objects.filter(team=self.teams[team], user=self.users[user]).delete()
            self.model.leave(team, user)
            self.log(f"{user} leaves {team}")
        else:
            MembershipFactory(team=self.teams[team], user=self.users[user])
            self.model.join(team, user)
            self.log(f"{user} rejoins {team}")
        self.epoch += 1

    # --- the pipeline ------------------------------------------------------------------

    @precondition(lambda self: self.model.pending)
    @rule(how=st.sampled_from(["plain", "plain", "restarted", "crash"]))
    def consume(self, how):
        """Run the consumer until caught up: as it is, as a new process (a new group
        member, an empty trigger cache), or crashing after its database commit and before
        the offsets count, so a new process reads the same records again."""
        if how == "restarted":
            self._stop_consumer()
            self._start_consumer()
        before = {tp: self.consumer.position(tp) for tp in self.consumer.assignment()}
        self._consume()
        if how == "crash":
            self.loop.processor = EventProcessor(clock=self.now)
            for tp, position in before.items():
                self.consumer.seek(tp, position)
            self._run_consumer()
        self.log(f"consume ({how})")

    @precondition(lambda self: self.model.windows)
    @rule(seconds=st.sampled_from([20, 45, 100]), then_flush=st.booleans())
    def time_passes(self, seconds, then_flush):
        """The clock the consumer and the flush read moves on; beat may flush at once."""
        self.offset += timedelta(seconds=seconds)
        self.log(f"{seconds} s pass")
        if then_flush:
            self._flush()
            self.log("flush roll-up windows")

    def _flush(self) -> None:
        enqueue.deliver_all(rollup.flush_due(now=self.now()))
        self.model.flush(self.now())

    # --- digests -------------------------------------------------------------------------

    @rule(
        user=st.sampled_from(PEOPLE),
        what=st.sampled_from(["off", "daily", "daily", "weekly", "email off", "email on"]),
    )
    def digest_settings(self, user, what):
        """A person picks a digest cadence, or switches the email digest off or on, on the
        preferences page (``PUT /api/preferences/``)."""
        if what.startswith("email"):
            on = what == "email on"
            body: dict[str, Any] = {"channels": {"digest": {"email": on}}}
            changes: dict[str, Any] = {"email_on": on}
        else:
            body, changes = {"digest_cadence": what}, {"cadence": what}
        response = self.clients[user].put("/api/preferences/", body, format="json")
        assert response.status_code == 200, response.content
        self.model.set_reader(user, **changes)
        self.log(f"{user} sets digests: {what}")

    @precondition(lambda self: self.model.rows)
    @rule(
        when=st.sampled_from(sorted(RUN_AT)),
        period=st.sampled_from([None, "daily", "weekly"]),
        twice=st.booleans(),
    )
    def run_digests(self, when, period, twice):
        """Beat runs ``manage.py digests run`` (every period, or one), at the sequence's
        clock or a clock ahead of it; sometimes the same run twice in a row."""
        for _ in range(2 if twice else 1):
            self._run_digests(when, period)

    def _run_digests(self, when: str, period: str | None) -> None:
        at = self._run_at(when)
        args = ["run", "--now", at.isoformat()] + (["--period", period] if period else [])
        out = io.StringIO()
        call_command("digests", *args, stdout=out)
        assert out.getvalue().splitlines()[-1].startswith("digests run "), out.getvalue()
        self.model.run_digests([period] if period else ["daily", "weekly"], at)
        self.log(f"digests run {period or 'all'} at {when} ({at.isoformat()})")
        self.stats["digest runs"] += 1

    def _run_at(self, when: str) -> datetime:
        if RUN_AT[when] is None:
            return self.now()
        days, hour, minute = RUN_AT[when]
        zone = self.model.readers["alice"].zone
        today = self.now().astimezone(zone).date()
        if days in ("monday", "monday week"):
            days = 7 - today.weekday() + (7 if days == "monday week" else 0)
        day = today + timedelta(days=days)
        return datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone)

    # --- the comparison ------------------------------------------------------------------

    @invariant()
    def agrees_with_the_model(self):
        self._compare()

    def _compare(self) -> None:
        context = "\n".join(self.steps)
        names = {user.pk: name for name, user in self.users.items()}
        teams = {team.pk: name for name, team in self.teams.items()}
        activity = {
            o.event_id: f"act:{o.payload['properties']['activity_id']}"
            for o in Outbox.objects.filter(team_id__in=teams)
        }
        rows: Counter[m.Row] = Counter()
        for n in Notification.objects.filter(recipient_id__in=names):
            rollup_row = n.dedup_key.startswith("rollup:")
            event = None if rollup_row else activity.get(n.event_id, str(n.event_id))
            trigger = self.trigger_ids.get(n.trigger_id) if n.trigger_id else None
            rows[m.Row(names[n.recipient_id], teams[n.team_id], trigger, event, n.count)] += 1
        expected_rows: Counter[m.Row] = Counter()
        for name in PEOPLE:
            expected_rows += self.model.rows_of(name)
        assert _diff(rows, expected_rows) == {}, f"in-app rows differ after:\n{context}"

        for name, client in self.clients.items():
            unread = client.get("/api/notifications/unread_count/").json()["unread"]
            assert unread == self.model.unread(name), f"{name}'s badge after:\n{context}"

        got = Counter(self._slack_messages()) + Counter(self._emails())
        assert _diff(got, self.model.deliveries()) == {}, f"messages differ after:\n{context}"
        digests = Counter(self._digest_mails())
        assert _diff(digests, self.model.digests()) == {}, f"digests differ after:\n{context}"
        # A roll-up summary whose person left the team since the window opened is recorded
        # ``skipped`` with the reason (the model sends them nothing, as it checks above).
        unsent = list(
            Delivery.objects.filter(team_id__in=teams)
            .exclude(status=DeliveryStatus.SENT)
            .exclude(status=DeliveryStatus.SKIPPED, rollup__isnull=False)
            .values_list("channel", "destination", "status", "last_error")
        )
        assert unsent == [], f"deliveries not sent after:\n{context}"

    def _slack_messages(self) -> list[m.Message]:
        found = []
        for post in self.slack.posts[self.slack_seen :]:
            assert post.channel.startswith("#mbt-"), post
            summary = SUMMARY.search(post.text)
            count = int(summary.group(1).replace(",", "")) if summary else None
            found.append(m.Message(post.channel, int(post.channel[5:]), count))
        return found

    def _emails(self) -> list[m.Message]:
        found = []
        for mail in self.smtp.messages[self.smtp_seen :]:
            if mail.message["X-Notiflow-Digest"]:
                continue
            subject = str(mail.message["Subject"])
            trigger = EMAIL_TRIGGER.search(subject)
            assert trigger, subject
            summary = SUMMARY.search(subject)
            count = int(summary.group(1).replace(",", "")) if summary else None
            for address in mail.rcpt_tos:
                found.append(m.Message(address, int(trigger.group(1)), count))
        return found

    def _digest_mails(self) -> list[m.DigestMail]:
        teams = {team.name: name for name, team in self.teams.items()}
        found = []
        for mail in self.smtp.messages[self.smtp_seen :]:
            if not mail.message["X-Notiflow-Digest"]:
                continue
            subject = DIGEST_SUBJECT.match(str(mail.message["Subject"]))
            assert subject, mail.message["Subject"]
            [address] = mail.rcpt_tos
            groups = _digest_groups(mail.part("text/plain"), teams)
            found.append(
                m.DigestMail(
                    address=address,
                    period=subject.group(1),
                    items=int(subject.group(2).replace(",", "")),
                    teams=int(subject.group(3)),
                    groups=groups,
                )
            )
        return found


@dataclass
class _Group:
    """One "• …" line of a digest email and the "– …" lines under it."""

    team: str
    about: str
    listed: int = 0
    weight: int = 1  # what the headline adds up to

    @property
    def items(self) -> int:
        return self.listed or 1


def _digest_groups(text: str, teams: dict[str, str]) -> tuple[tuple[str, str, int, int], ...]:
    """A digest email's text read as its reader does: per team section, per group line,
    what it is about (``mbt<key>`` or ``activity``), how many items it lists (its "– …"
    lines and "…and N more"; one when none) and what they add up to ("mbt1: 12 ×
    checkout_error", "… (×5)", "3 edits to …")."""
    found: list[_Group] = []
    team = "?"
    lines = text.replace("\r\n", "\n").split("\n")
    for before, line in zip(["", *lines[:-1]], lines, strict=True):
        if line.startswith("• "):
            headline = line[2:]
            trigger = DIGEST_TRIGGER.match(headline)
            many = trigger.group(2) if trigger else (WEIGHT.match(headline) or [None, None])[1]
            times = TIMES.search(headline)
            weight = many or (times.group(1) if times else "1")
            about = f"mbt{trigger.group(1)}" if trigger else "activity"
            found.append(_Group(team, about, weight=int(weight.replace(",", ""))))
        elif line.startswith("   – ") and found:
            more = MORE.match(line)
            found[-1].listed += int(more.group(1).replace(",", "")) if more else 1
        elif before == "" and line in teams:
            team = teams[line]
    groups: dict[tuple[str, str], list[int]] = {}
    for group in found:
        totals = groups.setdefault((group.team, group.about), [0, 0])
        totals[0] += group.items
        totals[1] += group.weight
    return tuple(sorted((t, a, n, w) for (t, a), (n, w) in groups.items()))


def _forget_digest_history() -> None:
    """Digest history lives in Redis under the sequence's topic prefix: delete it."""
    from django.conf import settings as django_settings

    client = client_for(django_settings.REDIS_URL)
    prefix = django_settings.NOTIFLOW_TOPIC_PREFIX
    for key in client.scan_iter(match=f"{prefix}:digest:*", count=500):
        client.delete(key)


def _diff(got: Counter, expected: Counter) -> dict[str, list]:
    """What is missing and what is extra, for a readable assertion."""
    missing = sorted(map(repr, (expected - got).elements()))
    extra = sorted(map(repr, (got - expected).elements()))
    return {k: v for k, v in (("missing", missing), ("extra", extra)) if v}


def _config_body(config: m.TriggerConfig) -> dict[str, Any]:
    body: dict[str, Any] = {"event": config.event, "filters": m.FILTERS[config.filter]}
    if config.kind == "event_count":
        body |= {"count": config.count, "window_minutes": config.window_minutes}
    return body


def _channels_body(trigger: m.Trigger) -> list[dict[str, str]]:
    channels = []
    for channel in sorted(trigger.config.channels):
        spec = {"type": channel}
        if channel == "slack":
            spec["target"] = trigger.slack_target
        channels.append(spec)
    return channels


def _delivery_body(config: m.TriggerConfig) -> dict[str, Any]:
    if config.mode == "rollup":
        return {"mode": "rollup", "window_seconds": config.window_seconds}
    return {"mode": config.mode}


KEPT_TABLES = {"django_migrations", "django_content_type", "auth_permission"}


def _empty_tables() -> None:
    """Each sequence starts from empty tables (what pytest-django does between tests)."""
    tables = [
        t
        for t in connection.introspection.django_table_names(only_existing=True)
        if t not in KEPT_TABLES
    ]
    connection.ops.execute_sql_flush(
        connection.ops.sql_flush(no_style(), tables, allow_cascade=True)
    )


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_the_pipeline_keeps_the_models_promises(settings, slack_server, smtp_server):
    Pipeline.env = (settings, slack_server, smtp_server)
    Pipeline.stats.clear()
    started = time.monotonic()
    run_state_machine_as_test(Pipeline, settings=MODEL_SETTINGS)
    print(f"model: {dict(Pipeline.stats)} in {time.monotonic() - started:.0f} s")


# --- sequences the model found, kept as plain regression tests ---------------------------


def _edit(client, insight_id: int, name: str) -> None:
    response = client.patch(f"/api/insights/{insight_id}/", {"name": name}, format="json")
    assert response.status_code == 200, response.content


def _activity_rows(user) -> list[str]:
    return sorted(
        Notification.objects.filter(recipient=user, trigger__isnull=True).values_list(
            "title", flat=True
        )
    )


@pytest.fixture
def three_people(team, member_of):
    """Olive owns an insight; Carol and Erin are teammates; each with a logged-in client."""
    people = {}
    for name in ("Olive", "Carol", "Erin"):
        user = member_of(team, first_name=name, last_name="Tester")
        client = APIClient()
        client.force_authenticate(user)
        people[name] = (user, client)
    response = people["Olive"][1].post(
        "/api/insights/", {"team": team.pk, "name": "Revenue"}, format="json"
    )
    assert response.status_code == 201, response.content
    return people, response.json()["id"]


def test_an_editor_hears_of_the_next_edit_even_when_both_are_in_one_batch(three_people, drain):
    """Shrunk from the model: create; Carol edits; Erin edits; one consume. Carol worked on
    the insight before Erin's edit, so she hears of it — as she does when a consume runs
    between the two edits (``test_consumer.py::test_followers_hear_about_later_edits…``).
    Followers are read from the table before the batch's own edits are recorded."""
    people, insight = three_people
    _edit(people["Carol"][1], insight, "Revenue (EUR)")
    _edit(people["Erin"][1], insight, "Revenue (EUR, net)")

    drain(expected=3)

    assert _activity_rows(people["Carol"][0]) == ["Erin Tester edited insight “Revenue (EUR, net)”"]


def test_a_replay_tells_nobody_of_an_edit_made_before_they_worked_on_the_resource(
    three_people, drain
):
    """Shrunk from the model: create; Erin edits; Carol edits; consume; the same records
    again (a crash before the offset commit). Carol edited after Erin, so Erin's edit is
    not news to her — not the first time, and not on a replay, which finds Carol's follow
    (stamped later) and tells her of the edit before it."""
    people, insight = three_people
    _edit(people["Erin"][1], insight, "Revenue (EUR)")
    _edit(people["Carol"][1], insight, "Revenue (EUR, net)")
    drain(expected=3)
    assert _activity_rows(people["Carol"][0]) == []

    Outbox.objects.update(published_at=None)
    assert stream.relay_outbox() == 3
    drain(expected=3)

    assert _activity_rows(people["Carol"][0]) == []


def _roll_up_trigger(team, owner, *, channel: str, subscribers=()) -> APIClient:
    """``owner`` makes a 60 s roll-up of ``checkout_error`` on ``channel`` through the API;
    returns their logged-in client."""
    client = APIClient()
    client.force_authenticate(owner)
    body = {
        "team": team.pk,
        "name": "Checkout errors",
        "kind": "event",
        "config": {"event": "checkout_error"},
        "channels": [{"type": channel}],
        "delivery": {"mode": "rollup", "window_seconds": 60},
        "subscribers": list(subscribers),
    }
    response = client.post("/api/triggers/", body, format="json")
    assert response.status_code == 201, response.content
    return client


def test_a_batch_resent_before_the_consumer_read_it_counts_once_in_its_roll_up(
    team, member_of, drain
):
    """Shrunk from the model: a roll-up trigger; a batch sent, and sent again by a client
    that retried before the consumer ran; one consume. Both copies arrive in one poll:
    the event is claimed once, but each copy's hit is counted (``counting.new_hits`` keeps every
    hit whose event was new), so the window and its in-app row say 2 for one event."""
    alice = member_of(team)
    client = _roll_up_trigger(team, alice, channel="in_app")
    body = {
        "api_key": team.api_token,
        "batch": [{"event": "checkout_error", "distinct_id": "u1", "uuid": str(uuid.uuid4())}],
    }
    for _ in range(2):
        assert client.post("/api/ingest/", body, format="json").status_code == 202

    drain(expected=2)

    assert list(Notification.objects.filter(recipient=alice).values_list("count", flat=True)) == [1]


def test_a_person_who_left_the_team_gets_no_roll_up_summary_of_it(
    team, member_of, drain, smtp_server
):
    """Found by the model (its derandomized run on main at cd83664, before 1480c9c): a
    roll-up trigger mails Bob; a match opens his window; Bob leaves the team; the window
    ends. "Users only ever hear about teams they belong to": the summary is made when the
    window ends, so it does not go to someone who is no longer a member."""
    alice, bob = member_of(team), member_of(team)
    client = _roll_up_trigger(team, alice, channel="email", subscribers=[bob.pk])
    body = {"api_key": team.api_token, "batch": [{"event": "checkout_error", "distinct_id": "u"}]}
    assert client.post("/api/ingest/", body, format="json").status_code == 202
    drain(expected=1)

    Membership.objects.filter(team=team, user=bob).delete()
    enqueue.deliver_all(rollup.flush_due(now=timezone.now() + timedelta(minutes=2)))

    assert [m.rcpt_tos for m in smtp_server.messages] == []
