"""Text shortening shared by channels with hard length limits (Slack, Telegram)."""

from __future__ import annotations


def shorten(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, ending in "…" when it was longer."""
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"


def cut_escaped(escaped: str, limit: int) -> str:
    """Shorten already-escaped text (HTML or Slack mrkdwn) to ``limit`` characters without
    splitting an entity such as ``&amp;``."""
    if len(escaped) <= limit:
        return escaped
    cut = escaped[: max(0, limit - 1)]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + "…"
