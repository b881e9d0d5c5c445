"""Looking channels up by type."""

from __future__ import annotations

import pytest

from notifications.channels.base import ChannelNotConfigured
from notifications.channels.email import EmailChannel
from notifications.channels.registry import get_channel
from notifications.channels.slack import SlackChannel
from notifications.channels.telegram import TelegramChannel
from notifications.channels.webhook import WebhookChannel


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("slack", SlackChannel),
        ("email", EmailChannel),
        ("webhook", WebhookChannel),
        ("telegram", TelegramChannel),
    ],
)
def test_known_types(name, expected):
    channel = get_channel(name)

    assert isinstance(channel, expected)
    assert channel.type == name


@pytest.mark.parametrize("name", ["carrier_pigeon", "in_app", ""])
def test_unknown_type_is_not_configured(name):
    with pytest.raises(ChannelNotConfigured, match="unknown channel type"):
        get_channel(name)
