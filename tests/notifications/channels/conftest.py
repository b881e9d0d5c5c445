"""One harness per channel, so one contract suite (``test_contract.py``) runs against all.

A harness knows how to make its local server misbehave in the ways the contract names and
how to read back what reached the server as the recipient would see it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from notifications.channels.base import Channel, Destination
from notifications.channels.deadline import Deadline
from notifications.channels.email import EmailChannel
from notifications.channels.http import HttpTimeouts
from notifications.channels.slack import SlackChannel
from notifications.channels.slack import escape as slack_escape
from notifications.channels.telegram import TelegramChannel
from notifications.channels.telegram import escape as telegram_escape
from notifications.channels.webhook import WebhookChannel
from tests.servers.http_sink import HttpSink, Reply
from tests.servers.slack import SlackServer
from tests.servers.smtp import SMTPServer

# Short timeouts so a stalled server shows up as a timeout within a second; a deadline
# short enough that a dripping server (each byte well within the read timeout) hits it.
TEST_TIMEOUTS = HttpTimeouts(connect=1.0, read=0.5)
TEST_DEADLINE = Deadline(1.5)
STALL_SECONDS = 3.0
DRIP_SECONDS = 0.2  # per byte: an HTTP answer of ~200 bytes takes ~40 s


@dataclass
class SlackHarness:
    server: SlackServer
    name: str = "slack"
    channel: Channel = field(
        default_factory=lambda: SlackChannel(timeout=1, deadline=TEST_DEADLINE)
    )

    @property
    def destination(self) -> Destination:
        return Destination("#alerts", {"bot_token": self.server.token})

    def received(self) -> int:
        return len(self.server.posts)

    def arrange_rate_limit(self, seconds: int) -> float | None:
        self.server.rate_limit_next(retry_after=seconds)
        return float(seconds)

    def arrange_server_error(self) -> None:
        self.server.fail_next(500)

    def arrange_timeout(self) -> None:
        self.server.stall_next(STALL_SECONDS)

    def arrange_drip(self) -> None:
        self.server.drip_next(DRIP_SECONDS)

    def arrange_cut_off(self) -> None:
        # Slack's verdict is in the body ({"ok": true}); the body stops after 8 bytes.
        self.server.cut_next(8, announce_length=False)

    def arrange_permanent_error(self) -> None:
        self.server.missing_channels.add(self.destination.address)

    def _mrkdwn(self) -> list[str]:
        post = self.server.posts[-1]
        texts = [post.text]
        for block in post.blocks:
            if block["type"] == "section":
                texts.append(block["text"]["text"])
            elif block["type"] == "context":
                texts.extend(element["text"] for element in block["elements"])
        return texts

    def content(self) -> str:
        post = self.server.posts[-1]
        return "\n".join([*self._mrkdwn(), json.dumps(post.blocks, ensure_ascii=False)])

    def markup(self) -> str:
        return "\n".join(self._mrkdwn())

    def escape(self, raw: str) -> str:
        return slack_escape(raw)

    def assert_within_limits(self) -> None:
        blocks = self.server.posts[-1].blocks
        assert len(blocks) <= 50
        for block in blocks:
            if block["type"] == "section":
                assert len(block["text"]["text"]) <= 3000


@dataclass
class EmailHarness:
    server: SMTPServer
    name: str = "email"
    channel: Channel = field(default_factory=lambda: EmailChannel(deadline=TEST_DEADLINE))

    @property
    def destination(self) -> Destination:
        return Destination("ada@example.com")

    def received(self) -> int:
        return len(self.server.messages)

    def arrange_rate_limit(self, seconds: int) -> float | None:
        # SMTP's "slow down" is 421 and carries no delay: the caller's back-off decides.
        self.server.answer_next("421 4.7.0 Too many messages, try again later")
        return None

    def arrange_server_error(self) -> None:
        self.server.answer_next("451 4.3.0 Local error in processing")

    def arrange_timeout(self) -> None:
        self.server.stall_next(STALL_SECONDS)

    def arrange_drip(self) -> None:
        self.server.drip_next(DRIP_SECONDS / 4)  # SMTP says more: greeting, EHLO, …

    def arrange_cut_off(self) -> None:
        self.server.cut_next()

    def arrange_permanent_error(self) -> None:
        self.server.refuse(self.destination.address)

    def content(self) -> str:
        mail = self.server.messages[-1]
        return "\n".join(
            [str(mail.message["Subject"]), mail.part("text/plain"), mail.part("text/html")]
        )

    def markup(self) -> str:
        return self.server.messages[-1].part("text/html")

    def escape(self, raw: str) -> str:
        from django.utils.html import escape

        return str(escape(raw))

    def assert_within_limits(self) -> None:
        html = self.markup()
        assert html.count("<li>") <= 100


@dataclass
class WebhookHarness:
    server: HttpSink
    name: str = "webhook"
    channel: Channel = field(
        default_factory=lambda: WebhookChannel(timeouts=TEST_TIMEOUTS, deadline=TEST_DEADLINE)
    )

    @property
    def destination(self) -> Destination:
        return Destination(f"{self.server.url}/hooks/notiflow", {"secret": "s3cret"})

    def received(self) -> int:
        return len(self.server.requests)

    def payload(self) -> dict[str, Any]:
        return self.server.requests[-1].json()

    def arrange_rate_limit(self, seconds: int) -> float | None:
        self.server.fail_next(429, b"slow down", {"Retry-After": str(seconds)})
        return float(seconds)

    def arrange_server_error(self) -> None:
        self.server.fail_next(503, b"maintenance")

    def arrange_timeout(self) -> None:
        self.server.stall_next(STALL_SECONDS)

    def arrange_drip(self) -> None:
        self.server.drip_next(DRIP_SECONDS)

    def arrange_cut_off(self) -> None:
        self.server.answer_next(Reply(404, b"no such hook", cut_after=4))

    def arrange_permanent_error(self) -> None:
        self.server.fail_next(404, b"no such hook")

    def content(self) -> str:
        return json.dumps(self.payload(), ensure_ascii=False)

    def markup(self) -> str:
        payload = self.payload()
        return "\n".join([payload["title"], payload["body"], *payload["lines"]])

    def escape(self, raw: str) -> str:
        return raw  # JSON carries the text verbatim; the receiver escapes for its display

    def assert_within_limits(self) -> None:
        payload = self.payload()
        assert len(payload["lines"]) <= 100
        assert payload["lines_omitted"] == 1000 - len(payload["lines"])


@dataclass
class TelegramHarness:
    server: HttpSink
    name: str = "telegram"
    channel: Channel = field(
        default_factory=lambda: TelegramChannel(timeouts=TEST_TIMEOUTS, deadline=TEST_DEADLINE)
    )

    @property
    def destination(self) -> Destination:
        return Destination("-100123456", {"bot_token": "123456:TEST-token"})

    def received(self) -> int:
        return len(self.server.requests)

    def arrange_rate_limit(self, seconds: int) -> float | None:
        self.server.fail_next(
            429,
            {
                "ok": False,
                "error_code": 429,
                "description": f"Too Many Requests: retry after {seconds}",
                "parameters": {"retry_after": seconds},
            },
        )
        return float(seconds)

    def arrange_server_error(self) -> None:
        self.server.fail_next(502, {"ok": False, "error_code": 502, "description": "Bad Gateway"})

    def arrange_timeout(self) -> None:
        self.server.stall_next(STALL_SECONDS)

    def arrange_drip(self) -> None:
        self.server.drip_next(DRIP_SECONDS)

    def arrange_cut_off(self) -> None:
        self.server.answer_next(
            Reply(
                400,
                {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"},
                cut_after=12,
            )
        )

    def arrange_permanent_error(self) -> None:
        self.server.answer_next(
            Reply(
                400, {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"}
            )
        )

    def content(self) -> str:
        return str(self.server.requests[-1].json()["text"])

    def markup(self) -> str:
        return self.content()

    def escape(self, raw: str) -> str:
        return telegram_escape(raw)

    def assert_within_limits(self) -> None:
        assert len(self.content()) <= 4096


CHANNEL_NAMES = ["slack", "email", "webhook", "telegram"]


@pytest.fixture(params=CHANNEL_NAMES)
def harness(request, settings):
    """Each channel with its local server, ready to send."""
    if request.param == "slack":
        return SlackHarness(request.getfixturevalue("slack_server"))
    if request.param == "email":
        return EmailHarness(request.getfixturevalue("smtp_server"))
    if request.param == "webhook":
        settings.NOTIFLOW_WEBHOOK_ALLOW_PRIVATE = True
        return WebhookHarness(request.getfixturevalue("http_sink"))
    return TelegramHarness(request.getfixturevalue("telegram_server"))
