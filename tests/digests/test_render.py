"""What a digest says (pure; no database)."""

from datetime import UTC, datetime, timedelta

from digests.render import Context, Item, ShortForm, build_view, plain_text, to_message
from digests.windows import Period, due_at, next_window, window_containing

T0 = datetime(2026, 3, 29, 10, tzinfo=UTC)
WINDOW = window_containing(Period.DAILY, T0, "Europe/Berlin")
CONTEXT = Context(
    window=WINDOW,
    base_url="https://notiflow.example",
    next_digest_at=due_at(next_window(WINDOW), 9),
    unsubscribe_url="https://notiflow.example/unsubscribe/x/",
    digest_key="7:email:daily:2026-03-28T23:00:00Z",
)


def edit(i, *, team="Growth", name="Revenue", unread=True, url="/dashboards/1/", minutes=0):
    return Item(
        notification_id=i,
        team_id=1 if team == "Growth" else 2,
        team_name=team,
        category="activity",
        title=f"Person {i} edited dashboard “{name}”",
        url=f"https://notiflow.example{url}",
        event_name="activity.dashboard.updated",
        unread=unread,
        created_at=T0 + timedelta(minutes=minutes),
    )


def alert(i, *, count=1, team="Growth"):
    return Item(
        notification_id=i,
        team_id=1,
        team_name=team,
        category="alert",
        title=f"Checkout errors: checkout_error #{i}",
        event_name="checkout_error",
        trigger_id=42,
        trigger_name="Checkout errors",
        count=count,
        created_at=T0,
    )


def test_items_group_by_team_then_resource_then_kind():
    view = build_view(
        [
            edit(1),
            edit(2, unread=False),
            edit(3),
            alert(4, count=10),
            alert(5, count=5),
            edit(6, team="Apps", name="Onboarding", url="/dashboards/2/"),
        ],
        CONTEXT,
    )
    assert [s.team_name for s in view.sections] == ["Apps", "Growth"]
    assert view.group_lines() == [
        "Apps — Person 6 edited dashboard “Onboarding” (unread)",
        "Growth — Checkout errors: 15 × checkout_error (2 unread)",
        "Growth — 3 edits to Revenue dashboard (2 unread)",
    ]
    assert (view.item_count, view.unread_count) == (6, 5)


def test_different_kinds_on_one_resource_are_separate_groups():
    deleted = Item(
        notification_id=9,
        team_id=1,
        team_name="Growth",
        category="activity",
        title="Person 9 deleted dashboard “Revenue”",
        url="https://notiflow.example/dashboards/1/",
        event_name="activity.dashboard.deleted",
        created_at=T0,
    )
    view = build_view([edit(1), edit(2), deleted], CONTEXT)
    assert sorted(view.group_lines()) == [
        "Growth — 2 edits to Revenue dashboard (2 unread)",
        "Growth — Person 9 deleted dashboard “Revenue” (unread)",
    ]


def test_the_email_is_long_and_links_to_inbox_preferences_and_next_digest():
    view = build_view([edit(i, minutes=i) for i in range(1, 13)], CONTEXT)
    message = to_message(view, "email")
    assert message.title == "Your daily digest: 12 updates in 1 team"
    assert message.url == "https://notiflow.example/"
    assert "12 edits to Revenue dashboard (12 unread)" in message.body
    assert "Person 12 edited dashboard “Revenue” (unread)" in message.body  # newest first
    assert "…and 2 more" in message.body  # 10 items listed per group
    assert "Next digest: Tue 31 Mar 2026, 09:00 (Europe/Berlin)" in message.body
    assert "Digest settings: https://notiflow.example/preferences/" in message.body
    assert "Sun 29 Mar 2026 (Europe/Berlin), 12 still unread." in message.body
    assert message.headers == {"X-Notiflow-Digest": CONTEXT.digest_key}
    assert message.unsubscribe_url == CONTEXT.unsubscribe_url
    assert message.text.startswith(message.body)
    assert message.text.endswith(f"Unsubscribe from all digest emails: {CONTEXT.unsubscribe_url}\n")
    assert "<h2" in message.html and "Growth</h2>" in message.html
    assert message.html.count(">unread</span>") == 10
    assert "…and 2 more" in message.html
    assert 'href="https://notiflow.example/preferences/"' in message.html


def test_the_html_email_escapes_what_people_typed():
    hostile = Item(
        notification_id=1,
        team_id=1,
        team_name="<b>Growth</b>",
        category="alert",
        title="<script>alert(1)</script>",
        url="https://notiflow.example/x?a=1&b=2",
        created_at=T0,
    )
    html = to_message(build_view([hostile, hostile], CONTEXT), "email").html
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "&lt;b&gt;Growth&lt;/b&gt;" in html
    assert 'href="https://notiflow.example/x?a=1&amp;b=2"' in html


def test_slack_and_telegram_get_the_top_lines_and_a_count_of_the_rest():
    items = [edit(i, name=f"Board {i}", url=f"/dashboards/{i}/") for i in range(1, 21)]
    message = to_message(build_view(items, CONTEXT), "telegram", short=ShortForm(max_lines=5))
    assert len(message.lines) == 5
    assert message.lines[-1] == "…and 16 more"
    assert message.footer == "Digest settings: https://notiflow.example/preferences/"
    assert "Next digest: Tue 31 Mar 2026, 09:00 (Europe/Berlin)" in message.body
    text = plain_text(message)
    assert text.startswith("Your daily digest: 20 updates in 1 team")
    assert "Inbox: https://notiflow.example/" in text


def test_items_read_since_the_build_are_not_marked_unread():
    view = build_view([edit(1, unread=False)], CONTEXT)
    assert view.group_lines() == ["Growth — Person 1 edited dashboard “Revenue”"]
    assert "still unread" not in view.summary_line()


def test_an_empty_view_is_empty():
    assert build_view([], CONTEXT).is_empty
