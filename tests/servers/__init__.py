"""Local servers that speak the providers' protocols, for integration tests.

Each one binds 127.0.0.1 on a free port, records what it receives and can be told how to
answer the next requests (rate limits, server errors, stalls, refusals). The pytest fixtures
in :mod:`tests.servers.fixtures` start one per test and point the settings at it.

* :class:`tests.servers.slack.SlackServer` — ``POST /api/chat.postMessage`` like Slack's Web API.
* :class:`tests.servers.smtp.SMTPServer` — an aiosmtpd server that counts connections.
* :class:`tests.servers.http_sink.HttpSink` — any POST (webhooks, the Telegram Bot API).
"""

from __future__ import annotations

import socket


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
