"""Webhook specifics: the signature, redirects, and refusing private addresses."""

from __future__ import annotations

import hashlib
import hmac
import socket

import pytest

from notifications.channels.base import ChannelNotConfigured, Destination, Message, Result
from notifications.channels.http import HttpTimeouts, non_public_address, parse_retry_after
from notifications.channels.webhook import WebhookChannel
from tests.servers.http_sink import HttpSink

SECRET = "whsec-test"
NOW = 1_760_000_000.0


def channel() -> WebhookChannel:
    return WebhookChannel(timeouts=HttpTimeouts(connect=1.0, read=0.5), clock=lambda: NOW)


def address(ip: str):
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    return (family, (ip, 443))


@pytest.mark.parametrize(
    "ip",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.9",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "::1",
        "fe80::1",
        "fd00::1",
        "::ffff:127.0.0.1",
        "224.0.0.1",
    ],
)
def test_non_public_addresses_are_recognised(ip):
    assert non_public_address([address("93.184.215.14"), address(ip)]) == ip.removeprefix("::ffff:")


def test_public_addresses_pass():
    assert non_public_address([address("93.184.215.14"), address("2606:4700::1111")]) == ""


def test_retry_after_accepts_seconds_and_http_dates():
    assert parse_retry_after("120", now=NOW) == 120.0
    assert parse_retry_after("Thu, 09 Oct 2025 08:54:20 GMT", now=1_760_000_000.0) == 60.0
    assert parse_retry_after("soon", now=NOW) is None


def test_missing_secret_is_not_configured():
    with pytest.raises(ChannelNotConfigured, match="secret"):
        channel().send(Message(title="t"), Destination("https://hooks.example/x"))


@pytest.mark.integration
class TestAgainstTheLocalSink:
    @pytest.fixture(autouse=True)
    def _allow_loopback(self, settings):
        settings.NOTIFLOW_WEBHOOK_ALLOW_PRIVATE = True

    def test_signature_verifies_with_the_secret(self, http_sink):
        outcome = channel().send(
            Message(title="t", body="b"), Destination(f"{http_sink.url}/hook", {"secret": SECRET})
        )

        assert outcome.result is Result.SENT
        request = http_sink.requests[0]
        timestamp = request.header("X-Notiflow-Timestamp")
        assert timestamp == str(int(NOW))
        expected = hmac.new(
            SECRET.encode(), f"{timestamp}.{request.body.decode()}".encode(), hashlib.sha256
        ).hexdigest()
        signature = request.header("X-Notiflow-Signature")
        assert hmac.compare_digest(signature, f"sha256={expected}")
        assert request.header("Content-Type").startswith("application/json")
        assert request.path == "/hook"
        assert request.json()["title"] == "t"

    def test_redirect_is_not_followed(self, http_sink):
        with HttpSink() as elsewhere:
            http_sink.redirect_next(f"{elsewhere.url}/stolen", status=307)

            outcome = channel().send(
                Message(title="t"), Destination(f"{http_sink.url}/hook", {"secret": SECRET})
            )

            assert outcome.result is Result.FAILED
            assert f"307 redirecting to {elsewhere.url}/stolen" in outcome.detail
            assert elsewhere.requests == []
        assert len(http_sink.requests) == 1

    def test_other_client_errors_fail(self, http_sink):
        http_sink.fail_next(410, b"hook deleted")

        outcome = channel().send(
            Message(title="t"), Destination(f"{http_sink.url}/hook", {"secret": SECRET})
        )

        assert outcome.result is Result.FAILED
        assert outcome.detail == "webhook answered 410: hook deleted"


@pytest.mark.integration
@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_loopback_is_refused_unless_allowed(http_sink, settings, host):
    settings.NOTIFLOW_WEBHOOK_ALLOW_PRIVATE = False
    url = f"http://{host}:{http_sink.port}/hook"

    outcome = channel().send(Message(title="t"), Destination(url, {"secret": SECRET}))

    assert outcome.result is Result.FAILED
    assert "resolves to a private address" in outcome.detail
    assert http_sink.requests == []


@pytest.mark.integration
def test_allow_private_setting_lets_loopback_through(http_sink, settings):
    settings.NOTIFLOW_WEBHOOK_ALLOW_PRIVATE = True

    outcome = channel().send(
        Message(title="t"), Destination(f"{http_sink.url}/hook", {"secret": SECRET})
    )

    assert outcome.result is Result.SENT
    assert len(http_sink.requests) == 1


def test_non_http_urls_fail():
    outcome = channel().send(
        Message(title="t"), Destination("file:///etc/passwd", {"secret": SECRET})
    )

    assert outcome.result is Result.FAILED
    assert "not an http(s) URL" in outcome.detail


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:9/with space", "http://a..b/x", "https://:0/", "ftp://x/y"]
)
def test_unusable_urls_fail_instead_of_raising(url, settings):
    settings.NOTIFLOW_WEBHOOK_ALLOW_PRIVATE = True

    outcome = channel().send(Message(title="t"), Destination(url, {"secret": SECRET}))

    assert outcome.result is Result.FAILED, outcome
