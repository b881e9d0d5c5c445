"""Claims, leases, recovery and sends in random order, against a reference model of the
promise: a digest goes out once, and a second time only when a sender died after sending
and before recording and its lease then ran out (the documented at-least-once window).

The steps drive the real sender (claim, deliver, record, recover) against the aiosmtpd
server and the test's database; runs get ``now`` a week back, now, 11 minutes on or a day
ahead, which must make no difference to leases. "Real time passes" is the claim stamp moved
back in the database, never a clock moved forward.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    rule,
    run_state_machine_as_test,
)

from digests import sender
from digests.builder import digest_build
from digests.models import Digest, DigestStatus
from digests.windows import Period
from notifications import sending
from tests.digests.factories import NotificationFactory

pytestmark = [pytest.mark.django_db, pytest.mark.integration, pytest.mark.sqlite]

DAY = datetime(2026, 3, 29, 12, tzinfo=UTC)
BUILT = datetime(2026, 3, 30, 9, 30, tzinfo=UTC)
NOWS = st.sampled_from(
    [
        BUILT - timedelta(days=7),
        BUILT,
        BUILT + timedelta(minutes=11),
        BUILT + timedelta(days=1),
    ]
)


@dataclass
class Model:
    """What the promise says, per digest key: its state, the mails it got, and the mails it
    may get (one, plus one per orphaned send whose lease ran out and was taken back)."""

    state: dict[str, str] = field(default_factory=dict)  # queued | sent | token of a claim
    mails: Counter = field(default_factory=Counter)
    allowed: Counter = field(default_factory=Counter)
    orphaned: set[str] = field(default_factory=set)  # mailed, not (yet) recorded
    expired: set[str] = field(default_factory=set)  # claim tokens past their lease

    def claim(self, token: str) -> None:
        for key, state in self.state.items():
            if state == "queued":
                self.state[key] = token

    def send(self, token: str) -> None:
        for key, state in self.state.items():
            if state == token:
                self.mails[key] += 1
                self.orphaned.add(key)

    def record(self, token: str) -> None:
        for key, state in self.state.items():
            if state == token:
                self.state[key] = "sent"
                self.orphaned.discard(key)

    def recover(self) -> None:
        for key, state in self.state.items():
            if state in self.expired:
                self.state[key] = "queued"
                if key in self.orphaned:
                    self.orphaned.discard(key)
                    self.allowed[key] += 1


@dataclass
class InFlight:
    claim: sending.Claim
    prepared: list[sender.Prepared]
    outcomes: dict = field(default_factory=dict)


class Leases(RuleBasedStateMachine):
    claimed = Bundle("claimed")
    mailed_unrecorded = Bundle("mailed_unrecorded")

    def __init__(self, server, users):
        super().__init__()
        self.server, self.users, self.day = server, users, 0
        server.messages.clear()
        Digest.objects.all().delete()
        self.model = Model()
        self.the_next_days_digests_are_built()

    def mailed(self) -> Counter:
        return Counter(m.message["X-Notiflow-Digest"] for m in self.server.messages)

    @rule()
    def the_next_days_digests_are_built(self):
        """A new day: one notification per user, and beat builds that day's digests."""
        self.day += 1
        day = timedelta(days=self.day)
        for user in self.users:
            NotificationFactory(recipient=user, team=user.memberships.get().team, at=DAY + day)
        before = set(self.model.state)
        digest_build(period=Period.DAILY, now=BUILT + day)
        new = set(Digest.objects.values_list("digest_key", flat=True)) - before
        assert len(new) == len(self.users)
        self.model.state.update(dict.fromkeys(new, "queued"))
        self.model.allowed.update(dict.fromkeys(new, 1))

    @rule(target=claimed, now=NOWS)
    def a_sender_claims(self, now):
        """A sender starts as ``digest_send`` does — takes back expired claims, then takes
        every queued digest — and pauses before sending."""
        sender.recover_stuck()
        self.model.recover()
        claim = sender.digest_claim(now=now, limit=100)
        self.model.claim(claim.token)
        return InFlight(claim, sender.prepare(claim.ids))

    @rule(target=mailed_unrecorded, flight=consumes(claimed))
    def the_sender_sends(self, flight):
        """It sends what it still holds, and pauses before recording."""
        held = partial(flight.claim.keep, sending.SEND)
        sender.deliver(flight.prepared, flight.outcomes, held=held)
        self.model.send(flight.claim.token)
        return flight

    @rule(flight=consumes(mailed_unrecorded), now=NOWS)
    def the_sender_records(self, flight, now):
        known = sorted(flight.outcomes)
        sender.record(
            flight.claim,
            [flight.prepared[i] for i in known],
            [flight.outcomes[i] for i in known],
            now=now,
        )
        self.model.record(flight.claim.token)

    @rule(flight=st.one_of(consumes(claimed), consumes(mailed_unrecorded)))
    def the_sender_dies(self, flight):
        """Before or after sending: its claim stays until the lease runs out."""

    @rule()
    def every_lease_runs_out(self):
        lease = sending.SEND.lease.duration + timedelta(seconds=1)
        stale = sending.lease_clock() - lease
        Digest.objects.filter(status=DigestStatus.SENDING).update(claimed_at=stale)
        self.model.expired.update(
            state for state in self.model.state.values() if state not in ("queued", "sent")
        )

    @rule(now=NOWS)
    def a_run_sends(self, now):
        """What beat or ``digests send --now`` does: recover, claim, send, record."""
        sender.digest_send(now=now)
        self.model.recover()
        self.model.claim("run")
        self.model.send("run")
        self.model.record("run")

    @invariant()
    def mails_are_what_the_promise_allows(self):
        mailed = self.mailed()
        assert mailed == +self.model.mails
        for key, count in mailed.items():
            assert count <= self.model.allowed[key], (key, count)

    @invariant()
    def rows_are_where_the_model_says(self):
        rows = dict(Digest.objects.values_list("digest_key", "status"))
        expected = {
            key: state if state in ("queued", "sent") else "sending"
            for key, state in self.model.state.items()
        }
        assert rows == expected

    def teardown(self):
        """Whatever happened, once every lease has run out one run sends the rest."""
        self.every_lease_runs_out()
        self.a_run_sends(BUILT)
        self.mails_are_what_the_promise_allows()
        assert set(Digest.objects.values_list("status", flat=True)) == {DigestStatus.SENT}


def test_claims_recovery_and_sends_keep_the_promise(subscriber, smtp_server):
    users = two_users(subscriber)
    run_state_machine_as_test(
        lambda: Leases(smtp_server, users),
        settings=settings(
            max_examples=40,
            stateful_step_count=15,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


def check(machine):
    machine.mails_are_what_the_promise_allows()
    machine.rows_are_where_the_model_says()


def two_users(subscriber):
    team = subscriber()[1]
    return [team.memberships.get().user, subscriber(team=team)[0]]


def test_a_sender_whose_claim_was_taken_back_sends_nothing(subscriber, smtp_server):
    """Kept from the model: the claim runs out before the sender sends; beat takes the
    digests back and sends them; the late sender must not send them again."""
    machine = Leases(smtp_server, two_users(subscriber))
    late = machine.a_sender_claims(BUILT - timedelta(days=7))
    machine.every_lease_runs_out()
    machine.a_run_sends(BUILT)
    machine.the_sender_sends(late)
    check(machine)
    machine.teardown()


def test_a_sender_that_lost_its_claim_after_sending_records_nothing(subscriber, smtp_server):
    """Kept from the model: a sender mails, pauses past its lease, another sender takes the
    digests; the first one's record must leave the second one's claim alone."""
    machine = Leases(smtp_server, two_users(subscriber))
    slow = machine.the_sender_sends(machine.a_sender_claims(BUILT))
    machine.every_lease_runs_out()
    second = machine.a_sender_claims(BUILT + timedelta(minutes=11))
    machine.the_sender_records(slow, BUILT)
    check(machine)
    machine.the_sender_records(machine.the_sender_sends(second), BUILT)
    check(machine)
    machine.teardown()
