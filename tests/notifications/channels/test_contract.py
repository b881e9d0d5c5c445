"""The channel contract, run against every channel and its local server.

Whatever the provider, a channel answers ``sent`` on success, ``retry`` (with the provider's
delay when it gives one) on rate limits, server errors and timeouts, ``retry`` by its
overall deadline when the server drips its answer byte by byte, ``retry`` when an answer is
cut off mid-way (no verdict), ``failed`` on a permanent error, gets the title and link
across, stays within its provider's size limit (saying how many lines it left out) and
escapes user text for its own markup.
"""

from __future__ import annotations

import re
import time

import pytest

from notifications.channels.base import Message, Result

pytestmark = pytest.mark.integration

USER_TEXT = "Tom <b>& Jerry"


def alert(**fields) -> Message:
    defaults = {
        "title": "checkout_error seen 1,000 times in 5 minutes",
        "body": "Most of them came from the EU payment provider.",
        "url": "https://notiflow.example/notifications/42?team=7&ref=alert",
        "team_name": "Storefront",
        "footer": "Trigger: checkout errors",
    }
    return Message(**{**defaults, **fields})


def test_success_is_sent(harness):
    outcome = harness.channel.send(alert(), harness.destination)

    assert outcome.result is Result.SENT, outcome.detail
    assert harness.received() == 1


def test_rate_limit_is_retried_after_the_providers_delay(harness):
    expected_after = harness.arrange_rate_limit(7)

    outcome = harness.channel.send(alert(), harness.destination)

    assert outcome.result is Result.RETRY, outcome.detail
    assert outcome.retry_after == expected_after
    assert harness.received() <= 1  # the channel itself sent once and did not retry


def test_server_error_is_retried(harness):
    harness.arrange_server_error()

    outcome = harness.channel.send(alert(), harness.destination)

    assert outcome.result is Result.RETRY, outcome.detail


def test_timeout_is_retried(harness):
    harness.arrange_timeout()

    outcome = harness.channel.send(alert(), harness.destination)

    assert outcome.result is Result.RETRY, outcome.detail


def test_an_answer_dripped_byte_by_byte_is_retried_by_the_deadline(harness):
    harness.arrange_drip()
    started = time.monotonic()

    outcome = harness.channel.send(alert(), harness.destination)

    elapsed = time.monotonic() - started
    assert outcome.result is Result.RETRY, outcome.detail
    assert "deadline" in outcome.detail
    assert elapsed < harness.channel.deadline.seconds + 2.0
    assert harness.received() <= 1


def test_an_answer_cut_off_mid_way_is_retried(harness):
    harness.arrange_cut_off()

    outcome = harness.channel.send(alert(), harness.destination)

    assert outcome.result is Result.RETRY, outcome.detail
    assert harness.received() <= 1


def test_permanent_error_fails(harness):
    harness.arrange_permanent_error()

    outcome = harness.channel.send(alert(), harness.destination)

    assert outcome.result is Result.FAILED, outcome.detail
    assert outcome.detail


def test_title_and_url_reach_the_server(harness):
    message = alert()

    outcome = harness.channel.send(message, harness.destination)

    assert outcome.result is Result.SENT, outcome.detail
    content = harness.content()
    assert message.title in content
    assert harness.escape(message.url) in content or message.url in content


def test_long_content_is_truncated_within_the_limit_with_and_n_more(harness):
    lines = [f"sample line {i:04d}: checkout_error from user {i} in /cart" for i in range(1000)]

    outcome = harness.channel.send(alert(lines=lines, count=1000), harness.destination)

    assert outcome.result is Result.SENT, outcome.detail
    harness.assert_within_limits()
    content = harness.content()
    more = re.search(r"and ([\d,]+) more", content)
    assert more, "the channel must say how many lines it left out"
    omitted = int(more.group(1).replace(",", ""))
    shown = set(re.findall(r"sample line \d{4}", content))
    assert shown, "some lines must be shown"
    assert len(shown) + omitted == len(lines)


def test_user_text_is_escaped_for_the_channels_markup(harness):
    message = alert(title=USER_TEXT, body=USER_TEXT, lines=[USER_TEXT])

    outcome = harness.channel.send(message, harness.destination)

    assert outcome.result is Result.SENT, outcome.detail
    markup = harness.markup()
    escaped = harness.escape(USER_TEXT)
    assert escaped in markup
    if escaped != USER_TEXT:
        assert USER_TEXT not in markup
