"""The in-app channel: the notification store is the channel, so nothing is sent and a
destination names no address (the recipient is the row's owner)."""

from __future__ import annotations

from notifications.channels import base

TYPE = "in_app"

DECLARATION = base.ChannelDeclaration(
    type=TYPE,
    label="In-app",
    noun="in-app notifications",
    sender=None,
    target=None,
    to_people=True,
    to_each_subscriber=True,
)
