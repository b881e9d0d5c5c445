from django.apps import AppConfig
from django.db.models.signals import m2m_changed, post_migrate, post_save, pre_delete, pre_save


class NotificationsConfig(AppConfig):
    name = "notifications"

    def ready(self) -> None:
        from notifications import outbox, schedule, tasks  # noqa: F401  (registers the tasks)
        from notifications.models import Trigger, trigger_changed
        from workspace.models import ActivityLog

        post_save.connect(outbox.on_activity_saved, sender=ActivityLog, dispatch_uid="outbox")
        pre_save.connect(trigger_changed, sender=Trigger, dispatch_uid="trigger-saved")
        pre_delete.connect(trigger_changed, sender=Trigger, dispatch_uid="trigger-deleted")
        m2m_changed.connect(
            trigger_changed, sender=Trigger.subscribers.through, dispatch_uid="trigger-subscribers"
        )
        # A deleted user's subscriptions go by cascade, which sends no m2m_changed.
        pre_delete.connect(
            trigger_changed, sender=Trigger.subscribers.through, dispatch_uid="subscriber-deleted"
        )
        post_migrate.connect(schedule.install, sender=self, dispatch_uid="beat-schedule")
