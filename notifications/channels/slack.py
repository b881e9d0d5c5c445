"""Slack channel: ``chat.postMessage`` with Block Kit, through slack-sdk's ``WebClient``.

Retries belong to the caller, so the client is built with ``retry_handlers=[]``:

* slack-sdk's ``WebClient`` installs ``default_retry_handlers()`` when given none, which is
  ``[ConnectionErrorRetryHandler()]``: on a connection reset / ``URLError`` it sleeps (an
  exponential back-off, ``time.sleep`` inside ``prepare_for_next_attempt``) and tries once
  more, inside our call.
* ``RateLimitErrorRetryHandler`` (opt-in, also in ``all_builtin_retry_handlers()``) answers
  an HTTP 429 by sleeping ``Retry-After`` seconds (plus up to one second of jitter) in the
  calling thread and sending again. A Slack ``Retry-After`` can be a minute; that would park
  a Celery worker and hide the rate limit from the delivery record.

With no handlers, the first answer or error comes straight back and :func:`outcome_for`
turns it into an :class:`Outcome`: 429 → retry after ``Retry-After`` (capped); 5xx,
connection errors and timeouts → retry; Slack's permanent errors (``invalid_auth``,
``channel_not_found``, ``not_in_channel``, ``account_inactive``…) → failed. An answer that
carries no Slack error code — a body cut off mid-way, which slack-sdk reports as "a
response in a non-JSON format", or a proxy's HTML page — is no verdict from Slack: retry.
The ``deliver`` task then schedules the retry without holding a worker.

slack-sdk's ``timeout`` counts per socket operation (urllib), so a server dripping its
answer byte by byte would never trip it: the call runs under the channel's overall
:class:`~notifications.channels.deadline.Deadline`, which shuts the socket urllib opened
when time is up.
"""

from __future__ import annotations

import http.client
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from django.conf import settings
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from notifications.channels import base
from notifications.channels.base import ChannelNotConfigured, Destination, Message, Outcome
from notifications.channels.deadline import CALL_DEADLINE, Deadline, DeadlineExceeded
from notifications.channels.http import parse_retry_after
from notifications.channels.text import cut_escaped, shorten

# Slack error codes worth sending again later; everything else an API call can answer
# (invalid_auth, channel_not_found, not_in_channel, account_inactive, is_archived,
# msg_too_long, invalid_blocks, …) will fail the same way next time.
TRANSIENT_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)
# What a Slack error code looks like; any other ``error`` was made up by slack-sdk for an
# answer it could not read.
SLACK_ERROR_CODE = re.compile(r"[a-z][a-z0-9_]*")

TARGET = re.compile(r"#[a-z0-9][a-z0-9._-]{0,79}|[CG][A-Z0-9]{6,}")
"""Where a Slack message may go, as the API accepts it (a trigger's target, a channel's
``default_target``): a channel name or a channel id. Compare with ``fullmatch``."""
TARGET_FORMAT = "slack needs a channel like '#alerts' or a channel id like 'C0123ABC'"
BOT_TOKEN = re.compile(r"xox[a-z]-[A-Za-z0-9-]+")

TYPE = "slack"


@dataclass(frozen=True)
class SlackLimits:
    """Block Kit limits (``max_blocks``, ``max_section_chars``, ``max_header_chars``,
    ``max_button_url_chars`` are Slack's) and ours: a summary shows at most ``max_lines``
    lines, and the plain-text fallback stays short because Slack shows it in
    notifications."""

    max_blocks: int = 50
    max_section_chars: int = 3000
    max_header_chars: int = 150
    max_button_url_chars: int = 3000
    max_lines: int = 50
    max_line_chars: int = 500
    max_text_chars: int = 3000


def escape(text: str) -> str:
    """Slack mrkdwn treats ``&``, ``<`` and ``>`` as control characters (links, mentions)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def _pack(items: list[str], limit: int) -> list[str]:
    """Join items one per line into as few texts of at most ``limit`` characters as possible."""
    chunks: list[str] = []
    current = ""
    for item in items:
        candidate = f"{current}\n{item}" if current else item
        if len(candidate) <= limit:
            current = candidate
        else:
            chunks.append(current)
            current = item
    if current:
        chunks.append(current)
    return chunks


def render_blocks(message: Message, limits: SlackLimits = SlackLimits()) -> list[dict[str, Any]]:
    """The message as Block Kit within Slack's limits.

    Header (plain text, the title), body section, the summary lines packed into sections,
    "…and N more" when lines had to be left out, a button to the notification, and a
    context line with the team and footer. Every user string in mrkdwn is escaped.
    """
    head: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": shorten(message.title.strip() or "Notification", limits.max_header_chars),
            },
        }
    ]
    if message.body:
        head.append(_section(cut_escaped(escape(message.body), limits.max_section_chars)))

    tail: list[dict[str, Any]] = []
    if message.url and len(message.url) <= limits.max_button_url_chars:
        tail.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Open in notiflow"},
                        "url": message.url,
                    }
                ],
            }
        )
    footer = " · ".join(escape(part) for part in (message.team_name, message.footer) if part)
    if footer:
        tail.append(_context(cut_escaped(footer, limits.max_section_chars)))

    items = [
        f"• {cut_escaped(escape(' '.join(line.split())), limits.max_line_chars)}"
        for line in message.lines[: limits.max_lines]
    ]
    sections = _pack(items, limits.max_section_chars)
    room = limits.max_blocks - len(head) - len(tail)
    shown = len(items)
    if len(sections) > room or shown < len(message.lines):
        sections = sections[: max(0, room - 1)]
        shown = sum(section.count("\n") + 1 for section in sections)
    omitted = len(message.lines) - shown
    middle = [_section(text) for text in sections]
    if omitted:
        middle.append(_context(f"…and {omitted:,} more"))
    return head + middle + tail


def render_text(message: Message, limits: SlackLimits = SlackLimits()) -> str:
    """The plain-text fallback Slack shows in notifications and to clients without blocks.
    It is mrkdwn as well, so it is escaped too."""
    parts = [escape(message.title)]
    if message.body:
        parts.append(escape(message.body))
    if message.lines:
        parts.append(f"({len(message.lines):,} items)")
    if message.url:
        parts.append(escape(message.url))
    return cut_escaped("\n".join(parts), limits.max_text_chars)


def _header(headers: Mapping[str, Any], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name.lower():
            return str(value[0] if isinstance(value, list | tuple) else value)
    return ""


def outcome_for(exc: Exception) -> Outcome:
    """Map what ``chat_postMessage`` raised to an :class:`Outcome` (see the module doc)."""
    if isinstance(exc, DeadlineExceeded):
        return Outcome.retry(f"slack: {exc}")
    if isinstance(exc, SlackApiError):
        response = exc.response
        status = response.status_code
        error = str(response.get("error", "") or f"HTTP {status}")
        if status == 429 or error == "ratelimited":
            after = parse_retry_after(_header(response.headers, "Retry-After"), now=time.time())
            return Outcome.retry(f"slack: rate limited ({error})", after=after)
        if status >= 500 or error in TRANSIENT_ERRORS:
            return Outcome.retry(f"slack: HTTP {status} {error}")
        if not SLACK_ERROR_CODE.fullmatch(error):
            return Outcome.retry(f"slack: HTTP {status} without a Slack answer ({error})")
        return Outcome.failed(f"slack: {error}")
    if isinstance(exc, SlackClientError):
        return Outcome.failed(f"slack: {exc}")
    if isinstance(exc, TimeoutError):
        return Outcome.retry("slack: no answer before the client timeout")
    if isinstance(exc, OSError | http.client.HTTPException):
        return Outcome.retry(f"slack: connection failed ({type(exc).__name__}: {exc})")
    raise exc


class SlackChannel:
    """Post to a Slack channel (``destination.address``, a ``#name`` or id) as the
    organization's bot (``destination.settings["bot_token"]``). ``timeout`` bounds each
    socket operation, ``deadline`` the whole call."""

    type: ClassVar[str] = TYPE

    def __init__(
        self,
        *,
        timeout: int = 10,
        deadline: Deadline = CALL_DEADLINE,
        limits: SlackLimits = SlackLimits(),
    ) -> None:
        self.timeout = timeout
        self.deadline = deadline
        self.limits = limits

    def client(self, token: str) -> WebClient:
        """A client that sends once: no retry handlers, so nothing sleeps (module doc)."""
        base_url = settings.SLACK_API_BASE_URL or WebClient.BASE_URL
        if not base_url.endswith("/"):
            base_url += "/"
        return WebClient(token=token, base_url=base_url, timeout=self.timeout, retry_handlers=[])

    def send(self, message: Message, destination: Destination) -> Outcome:
        token = destination.settings.get("bot_token")
        if not token:
            raise ChannelNotConfigured("Slack bot token is not set")
        channel = destination.address.strip()
        if not channel:
            raise ChannelNotConfigured("no Slack channel to post to")
        client = self.client(str(token))
        text, blocks = render_text(message, self.limits), render_blocks(message, self.limits)
        try:
            with self.deadline.enforce():
                response = client.chat_postMessage(channel=channel, text=text, blocks=blocks)
        except Exception as exc:
            return outcome_for(exc)
        return Outcome.sent(provider_id=str(response.get("ts", "")))


target_problem = base.matching(TARGET, TARGET_FORMAT)

DECLARATION = base.ChannelDeclaration(
    type=TYPE,
    label="Slack",
    noun="Slack messages",
    sender=SlackChannel,
    target=base.Target("Slack channel", "#alerts", check=target_problem, required=TARGET_FORMAT),
    to_people=True,
    secret=base.Secret(
        "bot_token",
        "bot token",
        check=base.matching(BOT_TOKEN, "must be a Slack bot token (xoxb-…)"),
    ),
    settings=(base.Setting("default_target", check=target_problem),),
)
