"""The weekly digest's activity functions against the real PostgreSQL, Redis and an
aiosmtpd server on loopback, step by step and end to end (in-process runner)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from urllib.parse import urlsplit

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from digests.builder import digest_build
from digests.models import Digest
from digests.weekly import activities, keys, workflows
from digests.weekly.keys import TeamDataKey, UserDataKey
from digests.weekly.types import OrganizationDigest, SuggestionReason
from digests.windows import Period
from notifications.models import Preference
from tests.digests.factories import NotificationFactory
from tests.digests.weekly.conftest import DIGEST, NOW, week_keys
from tests.factories import MembershipFactory, TriggerFactory, UserFactory
from workspace.models import Dashboard

pytestmark = [pytest.mark.integration, pytest.mark.sqlite]


def only_batch():
    plan = activities.plan_weekly_digest(now=NOW)
    assert len(plan.batches) == 1
    return plan.batches[0]


def mail_to(smtp_server, address):
    found = [m for m in smtp_server.messages if m.rcpt_tos == [address]]
    assert len(found) == 1, f"expected one mail to {address}, got {len(found)}"
    return found[0]


def test_plan_counts_orgs_and_teams_and_cuts_batches(world):
    plan = activities.plan_weekly_digest(now=NOW, batch_size=1)
    assert (plan.orgs, plan.teams, plan.digest) == (2, 3, DIGEST)
    assert [b.org_ids for b in plan.batches] == [(world.busy_org.id,), (world.quiet_org.id,)]
    assert plan.batches[0].team_ids == tuple(sorted((world.web.id, world.app.id)))


def test_team_generators_stage_only_the_window_and_restaging_clears_stale_items(
    world, weekly_redis
):
    batch = only_batch()
    for kind in TeamDataKey:
        activities.generate_team_data(digest=DIGEST, kind=kind, batch=batch)

    def staged(kind, team):
        raw = weekly_redis.get(keys.team_data_key(DIGEST.key, kind, team.id))
        return [item["name"] for item in json.loads(raw)] if raw else []

    assert staged(TeamDataKey.DASHBOARDS, world.web) == ["Revenue"]
    assert staged(TeamDataKey.EXPERIMENTS_LAUNCHED, world.web) == ["Checkout v2"]
    assert staged(TeamDataKey.FEATURE_FLAGS, world.web) == ["New nav"]
    assert staged(TeamDataKey.EVENT_DEFINITIONS, world.web) == []
    assert staged(TeamDataKey.EXPERIMENTS_COMPLETED, world.app) == ["Pricing page"]
    assert staged(TeamDataKey.SURVEYS_LAUNCHED, world.app) == ["NPS"]
    assert staged(TeamDataKey.COHORTS, world.app) == ["Power users"]
    assert staged(TeamDataKey.EVENT_DEFINITIONS, world.app) == ["signup_started"]
    assert all(staged(kind, world.quiet) == [] for kind in TeamDataKey)

    raw = json.loads(
        weekly_redis.get(keys.team_data_key(DIGEST.key, TeamDataKey.DASHBOARDS, world.web.id))
    )
    assert raw[0]["creator"] == "Alice " + world.alice.last_name
    assert raw[0]["url"].endswith(f"/dashboards/{raw[0]['id']}/")

    Dashboard.objects.filter(name="Revenue").delete()
    activities.generate_team_data(digest=DIGEST, kind=TeamDataKey.DASHBOARDS, batch=batch)
    assert staged(TeamDataKey.DASHBOARDS, world.web) == []


def test_user_generators_stage_notify_sets_and_suggestions(world, weekly_redis):
    batch = only_batch()
    TriggerFactory(team=world.web, owner=world.bob)
    assert activities.generate_notify_teams(digest=DIGEST, batch=batch) == 5
    activities.generate_product_suggestions(digest=DIGEST, batch=batch)

    def notify(user):
        key = keys.user_data_key(DIGEST.key, UserDataKey.NOTIFY_TEAMS, user.id)
        return {int(t) for t in weekly_redis.smembers(key)}

    def suggested(user):
        raw = weekly_redis.get(
            keys.user_data_key(DIGEST.key, UserDataKey.PRODUCT_SUGGESTION, user.id)
        )
        return json.loads(raw) if raw else None

    assert notify(world.alice) == {world.web.id, world.app.id}
    assert notify(world.bob) == {world.web.id}
    assert notify(world.carol) == set()  # cadence off: no set at all
    assert notify(world.dave) == {world.web.id}  # app muted
    assert notify(world.erin) == {world.quiet.id}

    alice = suggested(world.alice)
    assert (alice["team_id"], alice["reason"]) == (world.web.id, SuggestionReason.NO_TRIGGERS)
    assert "checkout_error" in alice["reason_text"]
    # Bob owns a trigger in Web, his only team, which has events: nothing to suggest.
    assert suggested(world.bob) is None
    # The quiet team has never seen an event.
    assert suggested(world.erin)["reason"] == SuggestionReason.NO_EVENTS


def test_aggregate_stores_a_digest_only_for_the_org_with_something_new(world, weekly_redis):
    batch = only_batch()
    for generate in activities.GENERATORS.values():
        generate(digest=DIGEST, batch=batch)
    assert activities.aggregate_org_digests(digest=DIGEST, batch=batch) == 1

    assert weekly_redis.get(keys.org_digest_key(DIGEST.key, world.quiet_org.id)) is None
    busy = OrganizationDigest.from_json(
        weekly_redis.get(keys.org_digest_key(DIGEST.key, world.busy_org.id))
    )
    assert busy.name == "Acme"
    assert {team.name: team.is_empty for team in busy.teams} == {"App": False, "Web": False}


def test_one_email_per_member_of_the_busy_org_over_one_connection(world, weekly_redis, smtp_server):
    summary = workflows.run_weekly_digest_inline(now=NOW)

    assert {m.rcpt_tos[0] for m in smtp_server.messages} == world.busy_recipients
    assert len(smtp_server.messages) == 3
    assert smtp_server.connections == 1
    assert summary.to_dict() == {
        "digest_key": "weekly-digest-2025-10",
        "orgs": 2,
        "teams": 3,
        "batches": 1,
        "org_digests": 1,
        "sent": 3,
        "failed": 0,
        "already_sent": 0,
        "opted_out": 1,  # carol
        "nothing_new": 0,
    }

    alice = mail_to(smtp_server, world.alice.email)
    assert alice.message["Subject"].startswith("Acme this week: ")
    assert "/unsubscribe/" in str(alice.message["List-Unsubscribe"])
    html = alice.part("text/html")
    for name in ("Revenue", "Checkout v2", "New nav", "Pricing page", "NPS", "Power users"):
        assert name in html
    assert "Old board" not in html and "Too new" not in html

    bob = mail_to(smtp_server, world.bob.email).part("text/plain")
    assert "Revenue" in bob and "Pricing page" not in bob  # Bob is only in Web
    dave = mail_to(smtp_server, world.dave.email).part("text/plain")
    assert "Revenue" in dave and "NPS" not in dave  # Dave muted App


def test_a_rerun_in_the_same_week_sends_nothing_more(world, weekly_redis, smtp_server):
    workflows.run_weekly_digest_inline(now=NOW)
    again = workflows.run_weekly_digest_inline(now=NOW.replace(day=7))  # Friday, same week
    assert len(smtp_server.messages) == 3
    assert (again.result.sent, again.result.already_sent) == (0, 3)


def test_a_member_who_turned_digests_off_gets_nothing(world, weekly_redis, smtp_server):
    workflows.run_weekly_digest_inline(now=NOW)
    received = {m.rcpt_tos[0] for m in smtp_server.messages}
    assert world.carol.email not in received
    assert not received & {world.erin.email, world.frank.email}


def test_a_member_who_switched_the_digest_off_for_email_gets_nothing(
    world, weekly_redis, smtp_server
):
    Preference.objects.create(
        user=world.bob, channels={activities.DIGEST_CATEGORY: {"email": False}}
    )
    workflows.run_weekly_digest_inline(now=NOW)
    assert world.bob.email not in {m.rcpt_tos[0] for m in smtp_server.messages}


def test_a_refused_send_is_released_and_retried_by_the_next_run(world, weekly_redis, smtp_server):
    smtp_server.answer_next("451 4.3.0 try again later")  # the first RCPT of the batch
    first = workflows.run_weekly_digest_inline(now=NOW)
    assert (first.result.sent, first.result.failed) == (2, 1)
    second = workflows.run_weekly_digest_inline(now=NOW)
    assert (second.result.sent, second.result.already_sent) == (1, 2)
    assert {m.rcpt_tos[0] for m in smtp_server.messages} == world.busy_recipients


def test_every_redis_key_of_the_week_has_a_ttl(world, weekly_redis, smtp_server):
    workflows.run_weekly_digest_inline(now=NOW)
    found = week_keys(weekly_redis)
    kinds = {
        "team data": keys.team_data_key(DIGEST.key, TeamDataKey.DASHBOARDS, world.web.id),
        "notify": keys.user_data_key(DIGEST.key, UserDataKey.NOTIFY_TEAMS, world.alice.id),
        "suggestion": keys.user_data_key(
            DIGEST.key, UserDataKey.PRODUCT_SUGGESTION, world.alice.id
        ),
        "org digest": keys.org_digest_key(DIGEST.key, world.busy_org.id),
        "sent": keys.sent_key(DIGEST.key, world.busy_org.id),
        "run": keys.run_key(DIGEST.key),
    }
    assert set(kinds.values()) <= set(found), "every kind of key is written"
    ttls = {key: weekly_redis.ttl(key) for key in found}
    assert all(ttl > 0 for ttl in ttls.values()), ttls
    assert ttls[kinds["sent"]] > 7 * 24 * 3600


def test_dry_run_renders_but_sends_and_claims_nothing(world, weekly_redis, smtp_server):
    summary = workflows.run_weekly_digest_inline(now=NOW, dry_run=True)
    assert smtp_server.messages == []
    assert {address for address, _ in summary.result.previews} == world.busy_recipients
    assert weekly_redis.exists(keys.sent_key(DIGEST.key, world.busy_org.id)) == 0
    assert weekly_redis.exists(keys.run_key(DIGEST.key)) == 0
    assert workflows.run_weekly_digest_inline(now=NOW).result.sent == 3


def test_database_queries_do_not_grow_with_members(world, weekly_redis, smtp_server):
    def queries_for_a_run() -> int:
        for key in week_keys(weekly_redis):
            weekly_redis.delete(key)
        with CaptureQueriesContext(connection) as captured:
            workflows.run_weekly_digest_inline(now=NOW)
        return len(captured.captured_queries)

    before = queries_for_a_run()
    for _ in range(15):
        MembershipFactory(team=world.web, user=UserFactory())
        MembershipFactory(team=world.quiet, user=UserFactory())
    after = queries_for_a_run()
    assert after == before
    assert len(smtp_server.messages) == 3 + 3 + 15


def test_the_unsubscribe_link_says_it_stops_every_digest_email_and_does(
    world, weekly_redis, smtp_server, client
):
    """One preference (digest × email) covers the weekly organization digest and the
    person's own digest, so the weekly email's link says "all digest emails" — and
    following it stops bob's daily digest email too."""
    workflows.run_weekly_digest_inline(now=NOW)
    text = mail_to(smtp_server, world.bob.email).part("text/plain")
    found = re.search(r"Unsubscribe from all digest emails: (\S+)", text)
    assert found, text
    html = mail_to(smtp_server, world.bob.email).part("text/html")
    assert ">Unsubscribe from all digest emails</a>" in html

    assert client.get(urlsplit(found.group(1)).path).status_code == 200

    day = datetime(2026, 3, 29, 12, tzinfo=UTC)
    NotificationFactory(recipient=world.bob, team=world.web, at=day)
    digest_build(period=Period.DAILY, now=datetime(2026, 3, 30, 9, 30, tzinfo=UTC))
    assert not Digest.objects.filter(user=world.bob, channel="email").exists()
