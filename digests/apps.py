from django.apps import AppConfig
from django.db.models.signals import post_migrate


class DigestsConfig(AppConfig):
    name = "digests"

    def ready(self) -> None:
        from digests import beat
        from digests.weekly import tasks as weekly_tasks  # noqa: F401  (registers the canvas)

        post_migrate.connect(beat.install, sender=self, dispatch_uid="digests-beat-schedule")
