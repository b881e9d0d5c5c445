"""Digest types and rendering: pure, no database, no Redis."""

from __future__ import annotations

from datetime import UTC, datetime

from digests.weekly.types import (
    MAX_ITEMS_PER_SECTION,
    DigestCohort,
    DigestDashboard,
    DigestExperiment,
    DigestFeatureFlag,
    DigestProductSuggestion,
    MemberTeamFacts,
    OrganizationDigest,
    SuggestionReason,
    TeamDigest,
    UserDigestContext,
    suggest_product,
    teams_to_notify,
)

START = datetime(2025, 2, 24, tzinfo=UTC)
END = datetime(2025, 3, 3, tzinfo=UTC)


def org_digest(*teams: TeamDigest, name: str = "Acme") -> OrganizationDigest:
    return OrganizationDigest(id=1, name=name, period_start=START, period_end=END, teams=teams)


def busy_team(team_id: int = 10, name: str = "Web") -> TeamDigest:
    return TeamDigest(
        id=team_id,
        name=name,
        dashboards=(DigestDashboard(id=1, name="Revenue", url="http://x/d/1", creator="Ada"),),
        experiments_launched=(
            DigestExperiment(id=2, name="Checkout v2", start_date="2025-02-25T10:00:00+00:00"),
        ),
        feature_flags=(DigestFeatureFlag(id=3, name="New nav", key="new-nav"),),
    )


def suggestion(team_id: int) -> DigestProductSuggestion:
    return DigestProductSuggestion(
        team_id=team_id,
        team_name="Web",
        reason=SuggestionReason.NO_TRIGGERS,
        reason_text="You have no triggers in Web yet — create one for checkout_error.",
        url="http://x/triggers/",
    )


def test_empty_teams_make_an_empty_org_digest():
    assert org_digest().is_empty
    assert org_digest(TeamDigest(id=1, name="Quiet")).is_empty
    assert not org_digest(TeamDigest(id=1, name="Quiet"), busy_team()).is_empty


def test_org_digest_survives_a_json_round_trip():
    digest = org_digest(
        busy_team(),
        TeamDigest(id=11, name="App", cohorts=(DigestCohort(id=9, name="VIP", count=3),)),
    )
    assert OrganizationDigest.from_json(digest.to_json()) == digest


def test_for_user_keeps_only_the_users_teams_with_something_new():
    digest = org_digest(busy_team(10, "Web"), busy_team(11, "App"), TeamDigest(id=12, name="Quiet"))
    mine = digest.for_user({11, 12, 99}, UserDigestContext(recipient_name="Grace"))
    assert [team.name for team in mine.teams] == ["App"]
    assert not mine.is_empty
    assert digest.for_user(set(), UserDigestContext()).is_empty
    assert digest.for_user({12}, UserDigestContext()).is_empty


def test_teams_to_notify_are_the_members_teams_minus_muted_and_none_when_opted_out():
    assert teams_to_notify({10, 11, 12}, {11, 99}, opted_in=True) == {10, 12}
    assert teams_to_notify({10, 11}, set(), opted_in=False) == frozenset()
    assert teams_to_notify({10}, {10}, opted_in=True) == frozenset()


def test_for_user_follows_the_rule_member_and_not_muted_and_something_new():
    """Team in the email ⇔ in ``teams_to_notify`` (belongs, not muted) ∧ has new items."""
    web, app, quiet = busy_team(10, "Web"), busy_team(11, "App"), TeamDigest(id=12, name="Quiet")
    digest = org_digest(web, app, quiet)
    member_of, muted = {10, 11, 12, 77}, {10}  # 77: a team in another org
    mine = digest.for_user(teams_to_notify(member_of, muted, opted_in=True), UserDigestContext())
    assert [team.id for team in mine.teams] == [11]  # not 10 (muted), not 12 (nothing new)
    opted_out = teams_to_notify(member_of, set(), opted_in=False)
    assert digest.for_user(opted_out, UserDigestContext()).is_empty


def test_for_user_drops_a_suggestion_about_a_team_outside_the_users_teams():
    digest = org_digest(busy_team(10))
    kept = digest.for_user({10}, UserDigestContext(product_suggestion=suggestion(10)))
    dropped = digest.for_user({10}, UserDigestContext(product_suggestion=suggestion(77)))
    assert kept.context.product_suggestion == suggestion(10)
    assert dropped.context.product_suggestion is None


def test_a_suggestion_alone_is_not_worth_an_email():
    digest = org_digest(TeamDigest(id=10, name="Quiet"))
    assert digest.for_user({10}, UserDigestContext(product_suggestion=suggestion(10))).is_empty


def test_render_payload_has_subject_text_and_html_with_every_item():
    context = UserDigestContext(
        recipient_name="Grace",
        product_suggestion=suggestion(10),
        home_url="http://notiflow.test/",
        preferences_url="http://notiflow.test/preferences/",
        unsubscribe_url="http://notiflow.test/unsubscribe/abc/",
    )
    payload = org_digest(busy_team()).for_user({10}, context).render_payload()

    assert payload.subject == "Acme this week: 1 new dashboard, 1 experiment launched and more"
    for part in (payload.text, payload.html):
        assert "Hi Grace," in part
        assert "Feb 24 – Mar 2" in part
        assert "Revenue (by Ada)" in part
        assert "Checkout v2 (started Feb 25)" in part
        assert "New nav (new-nav)" in part
        assert "create one for checkout_error" in part
        assert "http://notiflow.test/unsubscribe/abc/" in part
    assert '<a href="http://x/d/1"' in payload.html
    assert payload.lines == (
        "Web · 1 new dashboard: Revenue (by Ada)",
        "Web · 1 experiment launched: Checkout v2 (started Feb 25)",
        "Web · 1 new feature flag: New nav (new-nav)",
    )


def test_render_escapes_names_in_html_but_not_in_text():
    team = TeamDigest(
        id=10, name="<b>Web</b>", dashboards=(DigestDashboard(id=1, name="<script>x</script>"),)
    )
    payload = org_digest(team, name="A & B").for_user({10}, UserDigestContext()).render_payload()
    assert "<script>" not in payload.html
    assert "&lt;script&gt;x&lt;/script&gt;" in payload.html
    assert "&lt;b&gt;Web&lt;/b&gt;" in payload.html
    assert "A &amp; B" in payload.html
    assert "<script>x</script>" in payload.text
    assert payload.subject.startswith("A & B this week")


def test_long_sections_are_cut_with_a_count_of_the_rest():
    many = tuple(DigestDashboard(id=i, name=f"D{i}") for i in range(MAX_ITEMS_PER_SECTION + 5))
    payload = (
        org_digest(TeamDigest(id=10, name="Web", dashboards=many))
        .for_user({10}, UserDigestContext())
        .render_payload()
    )
    assert f"D{MAX_ITEMS_PER_SECTION - 1}" in payload.html
    assert f"D{MAX_ITEMS_PER_SECTION}<" not in payload.html
    assert "…and 5 more" in payload.html
    assert payload.lines[0].endswith(" and 5 more")
    assert payload.subject == "Acme this week: 15 new dashboards"


def test_items_load_from_rows_with_datetimes_and_extra_columns():
    row = {"id": 2, "name": "Exp", "team_id": 10, "start_date": START, "end_date": None}
    assert DigestExperiment.from_dict(row) == DigestExperiment(
        id=2, name="Exp", start_date="2025-02-24T00:00:00+00:00", end_date=None
    )


def test_suggestion_prefers_a_trigger_on_the_busiest_event_then_a_first_event():
    base = "http://notiflow.test"
    teams = [
        MemberTeamFacts(team_id=2, team_name="App", own_triggers=0, top_event=None),
        MemberTeamFacts(team_id=1, team_name="Web", own_triggers=0, top_event="checkout_error"),
    ]
    first = suggest_product(teams, base_url=base)
    assert first is not None
    assert (first.team_id, first.reason) == (1, SuggestionReason.NO_TRIGGERS)
    assert "create one for checkout_error" in first.reason_text
    assert first.url == f"{base}/triggers/?team=1"

    covered = [MemberTeamFacts(1, "Web", 2, "checkout_error"), teams[0]]
    second = suggest_product(covered, base_url=base)
    assert second is not None
    assert (second.team_id, second.reason) == (2, SuggestionReason.NO_EVENTS)

    assert suggest_product([MemberTeamFacts(1, "Web", 1, "pageview")], base_url=base) is None
    assert DigestProductSuggestion.from_json(first.to_json()) == first
