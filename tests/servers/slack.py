"""A local stand-in for Slack's Web API ``chat.postMessage``.

It answers the way Slack does: HTTP 200 with ``{"ok": false, "error": …}`` for API errors
(``invalid_auth``, ``channel_not_found``, ``not_in_channel``, ``invalid_blocks``,
``no_text``), HTTP 429 with ``Retry-After`` and ``{"ok": false, "error": "ratelimited"}`` when
rate limited, and ``{"ok": true, "channel": …, "ts": …}`` on success. Point
``SLACK_API_BASE_URL`` at :attr:`SlackServer.api_url`.
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from tests.servers.http_sink import RecordedRequest, RecordingHTTPServer, Reply

MAX_BLOCKS = 50
MAX_SECTION_CHARS = 3000


@dataclass(frozen=True)
class SlackPost:
    """What one ``chat.postMessage`` call carried."""

    channel: str
    text: str
    blocks: list[dict[str, Any]]
    token: str


def parse_post(request: RecordedRequest) -> SlackPost:
    if "json" in request.header("Content-Type"):
        params: dict[str, Any] = request.json() if request.body else {}
    else:
        params = {k: v[0] for k, v in parse_qs(request.body.decode("utf-8")).items()}
    blocks = params.get("blocks") or []
    if isinstance(blocks, str):
        blocks = json.loads(blocks)
    auth = request.header("Authorization")
    token = (
        auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else str(params.get("token", ""))
    )
    return SlackPost(
        channel=str(params.get("channel", "")),
        text=str(params.get("text", "")),
        blocks=list(blocks),
        token=token,
    )


def _blocks_error(blocks: list[dict[str, Any]]) -> str:
    if len(blocks) > MAX_BLOCKS:
        return f"no more than {MAX_BLOCKS} items allowed [json-pointer:/blocks]"
    for index, block in enumerate(blocks):
        text = (block.get("text") or {}).get("text", "")
        if block.get("type") == "section" and len(text) > MAX_SECTION_CHARS:
            return f"must be less than 3001 characters [json-pointer:/blocks/{index}/text]"
    return ""


class SlackServer(RecordingHTTPServer):
    """``token`` is the only bot token accepted; posts to ``missing_channels`` answer
    ``channel_not_found`` and to ``not_in_channels`` ``not_in_channel``."""

    def __init__(self, token: str = "xoxb-notiflow-test") -> None:
        super().__init__()
        self.token = token
        self.missing_channels: set[str] = {"#does-not-exist"}
        self.not_in_channels: set[str] = set()
        self._ts = itertools.count(1)

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    @property
    def posts(self) -> list[SlackPost]:
        """Every ``chat.postMessage`` received, including those answered with an error."""
        return [
            parse_post(r) for r in self.requests if r.path.rstrip("/") == "/api/chat.postMessage"
        ]

    def rate_limit_next(self, retry_after: int = 30, times: int = 1) -> None:
        self.answer_next(
            Reply(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(retry_after)}),
            times,
        )

    def fail_next(self, status: int = 500, times: int = 1) -> None:
        self.answer_next(Reply(status, b"<html>upstream error</html>"), times)

    def respond(self, request: RecordedRequest) -> Reply:
        if request.path.rstrip("/") != "/api/chat.postMessage":
            return Reply(404, {"ok": False, "error": "unknown_method"})
        post = parse_post(request)
        error = ""
        if post.token != self.token:
            error = "invalid_auth" if post.token else "not_authed"
        elif not post.channel or post.channel in self.missing_channels:
            error = "channel_not_found"
        elif post.channel in self.not_in_channels:
            error = "not_in_channel"
        elif not post.text and not post.blocks:
            error = "no_text"
        elif detail := _blocks_error(post.blocks):
            return Reply(200, {"ok": False, "error": "invalid_blocks", "errors": [detail]})
        if error:
            return Reply(200, {"ok": False, "error": error})
        ts = f"{int(time.time())}.{next(self._ts):06d}"
        return Reply(
            200,
            {
                "ok": True,
                "channel": "C0NOTIFLOW",
                "ts": ts,
                "message": {"type": "message", "text": post.text, "blocks": post.blocks, "ts": ts},
            },
        )
