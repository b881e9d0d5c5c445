"""Every channel notiflow knows, and everything derived from their declarations.

Each channel module declares what it is (:class:`~notifications.channels.base.ChannelDeclaration`);
this module lists the declarations, once, and answers every question about channel types:
which exist and in what order (:data:`TYPES`, :data:`CHOICES`, the models' ``choices``),
which are organization-level (:data:`ORG_LEVEL`, a ``ChannelConfig`` with a secret), which
reach a person (:data:`TO_PEOPLE`, :data:`PUSH`), which a trigger sends to each subscriber
and where their address is (:func:`to_each_subscriber`, :func:`address_field`), what a
target or a channel config must look like, and which class sends (:func:`get_channel`).
Adding a channel is one module and one entry in :data:`DECLARATIONS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from notifications.channels import email, in_app, slack, telegram, webhook
from notifications.channels.base import Channel, ChannelDeclaration, ChannelNotConfigured, Secret
from notifications.channels.deadline import CALL_DEADLINE, Deadline
from notifications.events import NUL

DECLARATIONS: tuple[ChannelDeclaration, ...] = (
    in_app.DECLARATION,
    email.DECLARATION,
    slack.DECLARATION,
    webhook.DECLARATION,
    telegram.DECLARATION,
)
"""In the order the API, the pages and the schema list them."""

BY_TYPE: Mapping[str, ChannelDeclaration] = {d.type: d for d in DECLARATIONS}
TYPES: tuple[str, ...] = tuple(BY_TYPE)
CHOICES: list[tuple[str, str]] = [(d.type, d.label) for d in DECLARATIONS]
ORG_LEVEL: tuple[str, ...] = tuple(d.type for d in DECLARATIONS if d.org_level)
ORG_LEVEL_CHOICES: list[tuple[str, str]] = [(d.type, d.label) for d in DECLARATIONS if d.org_level]
TO_PEOPLE: tuple[str, ...] = tuple(d.type for d in DECLARATIONS if d.to_people)
"""Channels a person can receive: the columns of their preferences."""
PUSH: frozenset[str] = frozenset(
    d.type for d in DECLARATIONS if d.to_people and d.sender is not None
)
"""Channels that push to a person: a delivery on one with a recipient waits for their quiet
hours and do-not-disturb. In-app and team destinations (a trigger's Slack channel, a
webhook, a fixed address) are never held."""


def to_each_subscriber(type: str, target: str) -> bool:
    """A trigger's ``type`` channel with ``target`` goes to each subscriber: the channel
    declares so and no target was given (or it takes none, like in-app)."""
    declaration = BY_TYPE.get(type)
    if declaration is None or not declaration.to_each_subscriber:
        return False
    return not target or declaration.target is None


def address_field(type: str) -> str:
    """The user field holding a person's address on ``type``; empty when the channel needs
    none (the person is the destination) or is not one that goes to each subscriber."""
    declaration = BY_TYPE.get(type)
    return declaration.address_field if declaration and declaration.to_each_subscriber else ""


def channel_choices() -> list[tuple[str, str]]:
    """``choices`` of a model field that stores a channel type (a callable, so adding a
    channel needs no migration)."""
    return CHOICES


def org_level_choices() -> list[tuple[str, str]]:
    """``choices`` of ``ChannelConfig.type``."""
    return ORG_LEVEL_CHOICES


def find(type: str) -> ChannelDeclaration | None:
    return BY_TYPE.get(type)


def secret_of(type: str) -> Secret | None:
    """The secret an organization-level ``type`` keeps encrypted in ``ChannelConfig``; None
    for a personal type (or one notiflow does not know)."""
    declaration = BY_TYPE.get(type)
    return declaration.secret if declaration else None


def label(type: str) -> str:
    """The channel's label, or "?" for a type notiflow does not know (an old stored row)."""
    declaration = BY_TYPE.get(type)
    return declaration.label if declaration else "?"


def target_problem(type: str, target: str | None) -> str | None:
    """What is wrong with ``target`` as a destination of a ``type`` channel (a trigger's),
    or None."""
    declaration = BY_TYPE[type]
    if declaration.target is None:
        return f"{type} has no target" if target else None
    if not target:
        return declaration.target.required or None
    return declaration.target.problem(target)


def config_problems(type: str, config: Mapping[str, Any]) -> dict[str, str]:
    """What is wrong with a ``type`` channel's non-secret ``config``, by key; empty when
    it may be saved. Keys it does not declare are refused, and a setting given under both
    its names must say the same under each."""
    declaration = BY_TYPE[type]
    allowed = declaration.config_keys
    problems = {
        key: f"unknown setting for {type}; use " + ", ".join(allowed)
        for key in config
        if key not in allowed
    }
    for setting in declaration.settings:
        given = [key for key in (setting.name, setting.stored_as) if key and key in config]
        if not given:
            if setting.required:
                problems[setting.name] = setting.required
            continue
        value = config[given[0]]
        if not isinstance(value, str):
            problems[setting.name] = setting.required or "must be a string"
        elif "\x00" in value:  # PostgreSQL's jsonb stores none
            problems[setting.name] = NUL
        elif len(given) > 1 and config[given[1]] != value:
            problems[setting.stored_as] = f"must equal {setting.name} (or be left out)"
        elif not value:
            if setting.required:
                problems[setting.name] = setting.required
        elif setting.check is not None and (problem := setting.check(value)):
            problems[setting.name] = problem
    return problems


def config_stored(type: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` as it is saved: each setting under its stored name."""
    stored = dict(config)
    for setting in BY_TYPE[type].settings:
        if setting.stored_as and setting.name in stored:
            stored[setting.stored_as] = stored.pop(setting.name)
    return stored


def config_shown(type: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """A saved ``config`` as the API shows it: a setting stored under another name under
    both."""
    shown = dict(config)
    declaration = BY_TYPE.get(type)
    for setting in declaration.settings if declaration else ():
        if setting.stored_as and setting.stored_as in shown:
            shown[setting.name] = shown[setting.stored_as]
    return shown


def get_channel(type: str, *, deadline: Deadline = CALL_DEADLINE) -> Channel:
    """A channel with its production defaults (timeouts, limits) for ``type``, each of
    its provider calls bounded by ``deadline``.

    Raises :class:`ChannelNotConfigured` for a type notiflow cannot send to (``in_app``
    sends nothing), so the delivery is skipped with that reason instead of crashing the task.
    """
    declaration = BY_TYPE.get(type)
    if declaration is None or declaration.sender is None:
        known = ", ".join(sorted(d.type for d in DECLARATIONS if d.sender is not None))
        raise ChannelNotConfigured(f"unknown channel type {type!r}; notiflow sends to {known}")
    return declaration.sender(deadline=deadline)
