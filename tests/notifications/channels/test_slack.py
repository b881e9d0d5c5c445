"""Slack specifics: Block Kit limits, error codes, and no sleeping inside slack-sdk."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from notifications.channels.base import ChannelNotConfigured, Destination, Message, Result
from notifications.channels.slack import SlackChannel, render_blocks, render_text
from tests.servers import free_port


def channel() -> SlackChannel:
    return SlackChannel(timeout=1)


def section_texts(blocks):
    return [block["text"]["text"] for block in blocks if block["type"] == "section"]


class TestRendering:
    def test_many_long_lines_stay_within_50_blocks_and_3000_chars(self):
        lines = [f"line {i:04d} " + "x" * 800 for i in range(2000)]

        blocks = render_blocks(Message(title="Digest", body="b" * 10_000, lines=lines))

        assert len(blocks) <= 50
        assert all(len(text) <= 3000 for text in section_texts(blocks))
        assert blocks[0] == {
            "type": "header",
            "text": {"type": "plain_text", "text": "Digest"},
        }

    def test_left_out_lines_are_counted(self):
        lines = [f"item {i}" for i in range(120)]

        blocks = render_blocks(Message(title="Digest", lines=lines))

        shown = sum(text.count("• ") for text in section_texts(blocks))
        more = [b for b in blocks if b["type"] == "context" and "more" in str(b)]
        assert more[0]["elements"][0]["text"] == f"…and {120 - shown} more"

    def test_few_lines_fit_without_a_more_line(self):
        blocks = render_blocks(Message(title="t", lines=["a", "b"]))

        assert "more" not in str(blocks)
        assert section_texts(blocks) == ["• a\n• b"]

    def test_mrkdwn_escapes_user_text_and_header_stays_plain(self):
        message = Message(title="<!channel> & co", body="<https://evil|click> & <@U1>")

        blocks = render_blocks(message)

        assert blocks[0]["text"]["text"] == "<!channel> & co"
        assert section_texts(blocks)[0] == "&lt;https://evil|click&gt; &amp; &lt;@U1&gt;"
        assert render_text(message).startswith("&lt;!channel&gt; &amp; co")

    def test_long_title_is_shortened_for_the_header(self):
        blocks = render_blocks(Message(title="t" * 400))

        assert len(blocks[0]["text"]["text"]) == 150

    def test_button_links_to_the_notification(self):
        blocks = render_blocks(Message(title="t", url="https://n.example/n/1?a=1&b=2"))

        actions = [b for b in blocks if b["type"] == "actions"]
        assert actions[0]["elements"][0]["url"] == "https://n.example/n/1?a=1&b=2"


def test_the_sending_client_has_no_retry_handlers(settings):
    settings.SLACK_API_BASE_URL = "http://127.0.0.1:9/api"

    client = channel().client("xoxb-any")

    assert client.retry_handlers == []
    assert client.base_url == "http://127.0.0.1:9/api/"


def test_default_base_url_is_slack_sdks(settings):
    settings.SLACK_API_BASE_URL = ""

    assert channel().client("xoxb-any").base_url == "https://slack.com/api/"


def test_missing_bot_token_is_not_configured():
    with pytest.raises(ChannelNotConfigured, match="bot token"):
        channel().send(Message(title="t"), Destination("#alerts", {}))


@pytest.mark.integration
class TestAgainstTheLocalSlack:
    def test_posts_channel_text_and_blocks_with_the_bot_token(self, slack_server):
        outcome = channel().send(
            Message(title="Deploy finished", url="https://n.example/1"),
            Destination("#deploys", {"bot_token": slack_server.token}),
        )

        assert outcome.result is Result.SENT
        post = slack_server.posts[0]
        assert post.channel == "#deploys"
        assert post.token == slack_server.token
        assert post.text.startswith("Deploy finished")
        assert outcome.provider_id.endswith(".000001")

    def test_a_huge_digest_is_accepted_by_the_limits_checking_server(self, slack_server):
        lines = [f"entry {i} " + "y" * 900 for i in range(500)]

        outcome = channel().send(
            Message(title="Weekly digest", body="z" * 9000, lines=lines),
            Destination("#digest", {"bot_token": slack_server.token}),
        )

        assert outcome.result is Result.SENT, outcome.detail
        blocks = slack_server.posts[0].blocks
        assert len(blocks) <= 50
        assert all(len(text) <= 3000 for text in section_texts(blocks))

    def test_rate_limit_is_not_retried_inside_the_client(self, slack_server):
        slack_server.rate_limit_next(retry_after=30)

        outcome = channel().send(
            Message(title="t"), Destination("#alerts", {"bot_token": slack_server.token})
        )

        assert outcome.result is Result.RETRY
        assert outcome.retry_after == 30.0
        assert len(slack_server.requests) == 1

    @pytest.mark.parametrize(
        ("arrange", "error"),
        [
            (lambda server: None, "invalid_auth"),
            (lambda server: server.not_in_channels.add("#alerts"), "not_in_channel"),
            (lambda server: server.missing_channels.add("#alerts"), "channel_not_found"),
        ],
    )
    def test_permanent_api_errors_fail_naming_the_error(self, slack_server, arrange, error):
        arrange(slack_server)
        token = "xoxb-wrong" if error == "invalid_auth" else slack_server.token

        outcome = channel().send(Message(title="t"), Destination("#alerts", {"bot_token": token}))

        assert outcome.result is Result.FAILED
        assert outcome.detail == f"slack: {error}"

    def test_nothing_listening_is_retried(self, settings):
        settings.SLACK_API_BASE_URL = f"http://127.0.0.1:{free_port()}/api/"

        outcome = channel().send(Message(title="t"), Destination("#a", {"bot_token": "xoxb"}))

        assert outcome.result is Result.RETRY
        assert "connection failed" in outcome.detail


@given(
    title=st.text(max_size=400),
    body=st.text(max_size=5000),
    lines=st.lists(st.text(max_size=900), max_size=300),
)
@hypothesis_settings(max_examples=60, deadline=None)
def test_any_message_stays_within_block_kit_limits(title, body, lines):
    blocks = render_blocks(Message(title=title, body=body, lines=lines, url="https://n.example"))

    assert len(blocks) <= 50
    assert all(len(text) <= 3000 for text in section_texts(blocks))
    assert len(blocks[0]["text"]["text"]) <= 150
