"""Channel type → channel: the one place the ``deliver`` task looks a channel up.

``in_app`` is not here: the notification store is the in-app channel, nothing is sent.
"""

from __future__ import annotations

from notifications.channels.base import Channel, ChannelNotConfigured
from notifications.channels.deadline import CALL_DEADLINE, Deadline
from notifications.channels.email import EmailChannel
from notifications.channels.slack import SlackChannel
from notifications.channels.telegram import TelegramChannel
from notifications.channels.webhook import WebhookChannel

CHANNELS: dict[str, type[Channel]] = {
    channel.type: channel
    for channel in (SlackChannel, EmailChannel, WebhookChannel, TelegramChannel)
}


def get_channel(type: str, *, deadline: Deadline = CALL_DEADLINE) -> Channel:
    """A channel with its production defaults (timeouts, limits) for ``type``, each of
    its provider calls bounded by ``deadline``.

    Raises :class:`ChannelNotConfigured` for a type notiflow cannot send to, so the delivery
    is skipped with that reason instead of crashing the task.
    """
    try:
        channel_class = CHANNELS[type]
    except KeyError:
        known = ", ".join(sorted(CHANNELS))
        raise ChannelNotConfigured(
            f"unknown channel type {type!r}; notiflow sends to {known}"
        ) from None
    return channel_class(deadline=deadline)
