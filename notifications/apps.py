from django.apps import AppConfig
from django.db.models.signals import post_migrate, post_save


class NotificationsConfig(AppConfig):
    name = "notifications"

    def ready(self) -> None:
        from notifications import outbox, schedule
        from workspace.models import ActivityLog

        post_save.connect(outbox.on_activity_saved, sender=ActivityLog, dispatch_uid="outbox")
        post_migrate.connect(schedule.install, sender=self, dispatch_uid="beat-schedule")
