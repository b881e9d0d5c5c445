"""Telegram specifics: the Bot API request, its 4,096-character limit and its errors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from notifications.channels.base import ChannelNotConfigured, Destination, Message, Result
from notifications.channels.http import HttpTimeouts
from notifications.channels.telegram import TelegramChannel, render_text
from tests.servers.http_sink import Reply

TOKEN = "123456:AAH-secret-token"


def channel() -> TelegramChannel:
    return TelegramChannel(timeouts=HttpTimeouts(connect=1.0, read=0.5))


def test_html_is_escaped_and_the_link_is_an_anchor():
    text = render_text(
        Message(title="a < b", body="x & y", url='https://n.example/?q="1"&r=2', footer="f")
    )

    assert text == (
        "<b>a &lt; b</b>\n\nx &amp; y\n\n"
        '<a href="https://n.example/?q=&quot;1&quot;&amp;r=2">Open in notiflow</a>\n\n<i>f</i>'
    )


def test_a_huge_body_and_many_lines_stay_within_4096_characters():
    text = render_text(
        Message(title="t", body="&" * 5000, lines=[f"l{i}" for i in range(10)], url="https://u")
    )

    assert len(text) <= 4096
    assert text.endswith('<a href="https://u">Open in notiflow</a>')
    assert "&am…" not in text and "&a…" not in text and "& …" not in text


def test_missing_token_is_not_configured():
    with pytest.raises(ChannelNotConfigured, match="bot token"):
        channel().send(Message(title="t"), Destination("42", {}))


@pytest.mark.integration
class TestAgainstTheLocalBotAPI:
    def test_send_message_request(self, telegram_server):
        outcome = channel().send(Message(title="hi"), Destination("-1001", {"bot_token": TOKEN}))

        assert outcome.result is Result.SENT
        assert outcome.provider_id == "4242"
        request = telegram_server.requests[0]
        assert request.path == f"/bot{TOKEN}/sendMessage"
        body = request.json()
        assert body["chat_id"] == "-1001"
        assert body["parse_mode"] == "HTML"
        assert body["text"] == "<b>hi</b>"

    def test_blocked_bot_fails_with_telegrams_description_and_no_token(self, telegram_server):
        telegram_server.answer_next(
            Reply(
                403,
                {
                    "ok": False,
                    "error_code": 403,
                    "description": "Forbidden: bot was blocked by the user",
                },
            )
        )

        outcome = channel().send(Message(title="hi"), Destination("7", {"bot_token": TOKEN}))

        assert outcome.result is Result.FAILED
        assert outcome.detail == "telegram: Forbidden: bot was blocked by the user"
        assert TOKEN not in outcome.detail

    def test_timeout_detail_does_not_leak_the_token(self, telegram_server):
        telegram_server.stall_next(3)

        outcome = channel().send(Message(title="hi"), Destination("7", {"bot_token": TOKEN}))

        assert outcome.result is Result.RETRY
        assert TOKEN not in outcome.detail


@given(
    title=st.text(max_size=600),
    body=st.text(max_size=6000),
    lines=st.lists(st.text(max_size=700), max_size=60),
    footer=st.text(max_size=100),
)
@hypothesis_settings(max_examples=60, deadline=None)
def test_any_message_fits_in_4096_characters(title, body, lines, footer):
    text = render_text(
        Message(title=title, body=body, lines=lines, footer=footer, url="https://n.example/1")
    )

    assert len(text) <= 4096
