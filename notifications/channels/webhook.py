"""Webhook channel: one signed JSON POST of the message to an organization's URL.

The receiver verifies a delivery by recomputing
``HMAC-SHA256(secret, f"{X-Notiflow-Timestamp}.{raw body}")`` and comparing it with the hex
digest in ``X-Notiflow-Signature: sha256=<hex>``; the timestamp lets it refuse replays.

The URL comes from a user, so the request goes through :mod:`notifications.channels.http`'s
address check (private addresses only with ``settings.NOTIFLOW_WEBHOOK_ALLOW_PRIVATE``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator

from notifications.channels import base
from notifications.channels.base import ChannelNotConfigured, Destination, Message, Outcome
from notifications.channels.http import HttpChannel, allow_private_addresses, saved_url_refusal

TYPE = "webhook"
USER_AGENT = "notiflow-webhook/1"
MIN_SECRET_CHARS = 16


@dataclass(frozen=True)
class WebhookLimits:
    """How much of a summary goes into one payload; the rest is counted, not sent."""

    max_lines: int = 100


def sign(secret: str, timestamp: str, body: str) -> str:
    """The ``X-Notiflow-Signature`` value for a body sent at ``timestamp``."""
    digest = hmac.new(
        secret.encode("utf-8"), f"{timestamp}.{body}".encode(), hashlib.sha256
    ).hexdigest()
    return f"sha256={digest}"


def render_payload(message: Message, limits: WebhookLimits) -> dict[str, Any]:
    """The JSON document a receiver gets: the message's fields verbatim (JSON needs no
    escaping beyond its own), at most ``limits.max_lines`` lines plus how many were left out,
    and a plain-text ``text`` for receivers that only show one string."""
    shown = list(message.lines[: limits.max_lines])
    omitted = len(message.lines) - len(shown)
    text_parts = [message.title]
    if message.body:
        text_parts.append(message.body)
    if shown:
        text_parts.append("\n".join(f"• {line}" for line in shown))
    if omitted:
        text_parts.append(f"…and {omitted:,} more")
    if message.url:
        text_parts.append(message.url)
    return {
        "type": "notification",
        "version": 1,
        "title": message.title,
        "body": message.body,
        "url": message.url,
        "count": message.count,
        "team": message.team_name,
        "footer": message.footer,
        "lines": shown,
        "lines_omitted": omitted,
        "text": "\n\n".join(text_parts),
    }


class WebhookChannel(HttpChannel[WebhookLimits]):
    """POST the message as signed JSON to ``destination.address``.

    ``destination.settings["secret"]`` signs the body; without it (or without a URL) the
    channel is not configured.
    """

    type = TYPE
    default_limits = WebhookLimits()

    def send(self, message: Message, destination: Destination) -> Outcome:
        url = destination.address.strip()
        if not url:
            raise ChannelNotConfigured("webhook has no URL")
        secret = destination.settings.get("secret")
        if not secret:
            raise ChannelNotConfigured("webhook has no signing secret")

        now = self.clock()
        timestamp = str(int(now))
        body = json.dumps(
            render_payload(message, self.limits), ensure_ascii=False, separators=(",", ":")
        )
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": USER_AGENT,
            "X-Notiflow-Timestamp": timestamp,
            "X-Notiflow-Signature": sign(str(secret), timestamp, body),
        }
        return self.request(
            url, body.encode("utf-8"), headers, now=now, allow_private=allow_private_addresses()
        )


def url_problem(url: str) -> str | None:
    """An http(s) URL whose host does not resolve to a private address (unless
    ``NOTIFLOW_WEBHOOK_ALLOW_PRIVATE``), as the channel itself checks before each send."""
    try:
        URLValidator(schemes=["http", "https"])(url)
    except ValidationError:
        return f"{url!r} is not an http(s) URL with a host"
    return saved_url_refusal(url)


def secret_problem(secret: str) -> str | None:
    if len(secret) < MIN_SECRET_CHARS:
        return f"must be at least {MIN_SECRET_CHARS} characters"
    return None


def generate_secret() -> str:
    return secrets.token_urlsafe(32)


DECLARATION = base.ChannelDeclaration(
    type=TYPE,
    label="Webhook",
    noun="webhook calls",
    sender=WebhookChannel,
    target=base.Target("Webhook URL", "https://example.com/hooks/notiflow", check=url_problem),
    secret=base.Secret("secret", "signing secret", check=secret_problem, generate=generate_secret),
    settings=(
        base.Setting(
            "url",
            check=url_problem,
            stored_as="default_target",
            required="a webhook needs an http(s) URL",
        ),
    ),
)
