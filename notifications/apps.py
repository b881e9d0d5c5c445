from django.apps import AppConfig
from django.db.models.signals import m2m_changed, post_migrate, post_save


class NotificationsConfig(AppConfig):
    name = "notifications"

    def ready(self) -> None:
        from notifications import outbox, schedule
        from notifications.models import Trigger, touch_trigger
        from workspace.models import ActivityLog

        post_save.connect(outbox.on_activity_saved, sender=ActivityLog, dispatch_uid="outbox")
        m2m_changed.connect(
            touch_trigger, sender=Trigger.subscribers.through, dispatch_uid="trigger-subscribers"
        )
        post_migrate.connect(schedule.install, sender=self, dispatch_uid="beat-schedule")
