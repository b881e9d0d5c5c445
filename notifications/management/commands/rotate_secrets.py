"""Re-encrypt every stored channel secret under the first of ``NOTIFLOW_SECRETS_KEYS``.

Rotation: put the new key first in ``NOTIFLOW_SECRETS_KEYS`` (keep the old one after it),
restart, run this, then drop the old key. ``--from-secret-key`` also opens secrets saved
before ``NOTIFLOW_SECRETS_KEYS`` was set (under the key derived from ``DJANGO_SECRET_KEY``).
Each row is written only if it was decrypted; a secret no key opens is left as it is and
named, and the command exits non-zero. Running it twice is harmless.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from notifications.models import ChannelConfig
from notifications.secrets import SecretUnreadable, reencrypt


class Command(BaseCommand):
    help = "Re-encrypt every channel secret under the first key of NOTIFLOW_SECRETS_KEYS."

    def add_arguments(self, parser):
        parser.add_argument(
            "--from-secret-key",
            action="store_true",
            help="also decrypt secrets saved under the key derived from DJANGO_SECRET_KEY",
        )

    def handle(self, *args, from_secret_key: bool = False, **options):
        rotated, unreadable = 0, []
        with transaction.atomic():
            configs = ChannelConfig.objects.select_for_update().exclude(secret_encrypted="")
            for config in configs.order_by("id"):
                try:
                    token = reencrypt(config.secret_encrypted, with_derived=from_secret_key)
                except SecretUnreadable:
                    unreadable.append(config)
                    continue
                ChannelConfig.objects.filter(pk=config.pk).update(secret_encrypted=token)
                rotated += 1
        self.stdout.write(f"re-encrypted {rotated} channel secrets under the first key")
        if unreadable:
            named = ", ".join(f"channel {c.pk} ({c})" for c in unreadable)
            raise CommandError(
                f"{len(unreadable)} secrets no key in NOTIFLOW_SECRETS_KEYS decrypts, left as "
                f"they were: {named}"
            )
