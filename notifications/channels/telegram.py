"""Telegram channel: ``sendMessage`` through the Bot API, as HTML within 4,096 characters.

The bot token is the organization's secret (``destination.settings["bot_token"]``), the
chat id is the destination's address. The API base URL is an operator setting
(``TELEGRAM_API_BASE_URL``), so unlike the webhook channel it is trusted to be internal in
tests. Errors map like the webhook's; a 429 carries its delay in
``parameters.retry_after``. The token is part of the request path and never appears in an
outcome's detail.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote

from django.conf import settings

from notifications.channels import base
from notifications.channels.base import ChannelNotConfigured, Destination, Message, Outcome
from notifications.channels.http import (
    HttpChannel,
    HttpReply,
    outcome_for_status,
    parse_retry_after,
)
from notifications.channels.text import cut_escaped, shorten

TYPE = "telegram"
CHAT = re.compile(r"-?[0-9]{1,20}|@[A-Za-z][A-Za-z0-9_]{4,31}")
"""A chat id or a public channel's @name, as the Bot API takes it; compare with ``fullmatch``."""
BOT_TOKEN = re.compile(r"[0-9]{3,}:[A-Za-z0-9_-]{20,}")


@dataclass(frozen=True)
class TelegramLimits:
    """Telegram rejects a message text longer than 4,096 characters; ``max_title_chars``
    keeps a runaway title from crowding out everything else."""

    max_chars: int = 4096
    max_title_chars: int = 256


def escape(text: str) -> str:
    """Telegram's HTML parse mode needs ``&``, ``<`` and ``>`` as entities."""
    return html.escape(text, quote=False)


def _fit_lines(items: Sequence[str], budget: int) -> tuple[list[str], int]:
    """As many rendered ``items`` (one per line) as fit in ``budget`` characters together
    with the "…and N more" line that replaces the rest; returns (kept, left out)."""
    if sum(len(item) + 1 for item in items) <= budget:
        return list(items), 0
    budget -= len(f"\n…and {len(items):,} more")
    kept: list[str] = []
    used = 0
    for item in items:
        if used + len(item) + 1 > budget:
            break
        kept.append(item)
        used += len(item) + 1
    return kept, len(items) - len(kept)


def render_text(message: Message, limits: TelegramLimits = TelegramLimits()) -> str:
    """The message as Telegram HTML, never longer than ``limits.max_chars``.

    The title, link and footer always fit; the body is shortened if it must be; summary
    lines fill what is left and the rest is counted in "…and N more".
    """
    head = f"<b>{escape(shorten(message.title, limits.max_title_chars))}</b>"
    tail: list[str] = []
    if message.url:
        tail.append(f'<a href="{html.escape(message.url, quote=True)}">Open in notiflow</a>')
    footer = " · ".join(part for part in (message.team_name, message.footer) if part)
    if footer:
        tail.append(f"<i>{escape(shorten(footer, 512))}</i>")
    tail_text = "\n\n".join(tail)

    def size(*parts: str) -> int:
        return len("\n\n".join(part for part in parts if part))

    body = ""
    if message.body:
        # Leave room for at least the "…and N more" line when there are summary lines.
        reserve = len(f"\n\n…and {len(message.lines):,} more") if message.lines else 0
        room = limits.max_chars - size(head, "x", tail_text) + 1 - reserve
        body = cut_escaped(escape(message.body), room)

    lines_text = ""
    if message.lines:
        room = limits.max_chars - size(head, body, "x", tail_text) + 1
        items = [f"• {escape(shorten(line, 512))}" for line in message.lines]
        kept, omitted = _fit_lines(items, max(0, room))
        rows = [*kept, f"…and {omitted:,} more"] if omitted else kept
        lines_text = "\n".join(rows)
    return "\n\n".join(part for part in (head, body, lines_text, tail_text) if part)


class TelegramChannel(HttpChannel[TelegramLimits]):
    """Send through the Telegram Bot API with a bot token the organization gave us."""

    type = TYPE
    default_limits = TelegramLimits()

    def send(self, message: Message, destination: Destination) -> Outcome:
        token = destination.settings.get("bot_token")
        if not token:
            raise ChannelNotConfigured("Telegram bot token is not set")
        chat_id = destination.address.strip()
        if not chat_id:
            raise ChannelNotConfigured("no Telegram chat id to send to")
        base = settings.TELEGRAM_API_BASE_URL.rstrip("/")
        url = f"{base}/bot{quote(str(token), safe=':')}/sendMessage"
        payload = {
            "chat_id": chat_id,
            "text": render_text(message, self.limits),
            "parse_mode": "HTML",
            "link_preview_options": {"is_disabled": True},
        }
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": "application/json; charset=utf-8"}
        return self.request(url, body, headers, now=self.clock(), allow_private=True)

    def outcome(self, reply: HttpReply, *, now: float) -> Outcome:
        data = reply.json() if reply.complete else None
        if not isinstance(data, dict):
            return outcome_for_status(reply, service="telegram", now=now)
        if 200 <= reply.status < 300 and data.get("ok"):
            result = data.get("result") or {}
            return Outcome.sent(provider_id=str(result.get("message_id", "")))
        description = str(data.get("description") or f"error {reply.status}")
        parameters = data.get("parameters") or {}
        if reply.status == 429:
            after = parse_retry_after(str(parameters.get("retry_after", "")), now=now)
            if after is None:
                after = parse_retry_after(reply.header("Retry-After"), now=now)
            return Outcome.retry(f"telegram: {description}", after=after)
        if reply.status >= 500:
            return Outcome.retry(f"telegram: {description}")
        if 300 <= reply.status < 400:
            return outcome_for_status(reply, service="telegram", now=now)
        if "migrate_to_chat_id" in parameters:
            description += f" (the group is now chat {parameters['migrate_to_chat_id']})"
        return Outcome.failed(f"telegram: {description}")


chat_problem = base.matching(CHAT, "must be a chat id like -1001234567890 or @channel")

DECLARATION = base.ChannelDeclaration(
    type=TYPE,
    label="Telegram",
    noun="Telegram messages",
    sender=TelegramChannel,
    target=base.Target("Telegram chat", "chat id, e.g. -1001234567890", check=chat_problem),
    to_people=True,
    secret=base.Secret(
        "bot_token",
        "bot token",
        check=base.matching(BOT_TOKEN, "must be a Telegram bot token (123456:ABC…)"),
    ),
    settings=(base.Setting("default_target", check=chat_problem),),
)
