"""Encryption of channel secrets at rest, with keys of their own.

``settings.NOTIFLOW_SECRETS_KEYS`` lists Fernet keys: the first encrypts, every one
decrypts (:class:`~cryptography.fernet.MultiFernet`), so a key is rotated by putting a new
one first, running ``manage.py rotate_secrets`` (:func:`reencrypt`), then dropping the old
one. The keys are separate from Django's ``SECRET_KEY``, which rotates on its own schedule.
An empty list — a local run that sets no keys; production refuses to start without them —
means the one key earlier versions derived from ``SECRET_KEY`` (:func:`derived_key`), so the
secrets a local database already holds still decrypt.

A secret that no key decrypts raises :class:`SecretUnreadable`, whose message tells the
operator what to fix; it is never taken for "no secret".
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

from notifications.channels.base import ChannelNotConfigured


class SecretUnreadable(ChannelNotConfigured):
    """A stored secret that none of ``NOTIFLOW_SECRETS_KEYS`` decrypts (encrypted under a
    key since dropped, or another deployment's). A :class:`ChannelNotConfigured`, so every
    path that cannot use a channel hears why; delivery fails on it rather than skipping."""

    def __init__(self) -> None:
        super().__init__(
            "the channel's secret cannot be decrypted with NOTIFLOW_SECRETS_KEYS (was the key "
            "it was saved under removed?): put that key back or save the secret again"
        )


def derived_key(secret_key: str) -> bytes:
    """The Fernet key derived from ``secret_key``: what encrypted secrets before
    ``NOTIFLOW_SECRETS_KEYS`` existed, and the local default."""
    digest = hashlib.sha256(f"notiflow-channel-secrets:{secret_key}".encode()).digest()
    return base64.urlsafe_b64encode(digest)


def keys(*, with_derived: bool = False) -> MultiFernet:
    """The configured keys, read at call time; ``with_derived`` adds the key derived from
    ``SECRET_KEY`` last, to decrypt what was saved before the keys were set."""
    configured = [key.encode() for key in settings.NOTIFLOW_SECRETS_KEYS]
    derived = derived_key(settings.SECRET_KEY)
    if not configured or (with_derived and derived not in configured):
        configured.append(derived)
    return MultiFernet([Fernet(key) for key in configured])


def encrypt(plain: str) -> str:
    return keys().encrypt(plain.encode()).decode() if plain else ""


def decrypt(token: str) -> str:
    """The secret, or "" when none was saved; :class:`SecretUnreadable` when no key opens it."""
    if not token:
        return ""
    try:
        return keys().decrypt(token.encode()).decode()
    except InvalidToken:
        raise SecretUnreadable() from None


def reencrypt(token: str, *, with_derived: bool = False) -> str:
    """``token`` encrypted again under the first key (unchanged if it already is, apart from
    its timestamp); :class:`SecretUnreadable` when no key opens it."""
    try:
        return keys(with_derived=with_derived).rotate(token.encode()).decode()
    except InvalidToken:
        raise SecretUnreadable() from None
