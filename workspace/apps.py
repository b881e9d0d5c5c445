from django.apps import AppConfig
from django.db.models.signals import post_delete, post_init, post_save


class WorkspaceConfig(AppConfig):
    name = "workspace"
    verbose_name = "Workspace (host product)"

    def ready(self) -> None:
        from workspace import activity

        post_init.connect(activity.on_resource_init, dispatch_uid="activity-init")
        post_save.connect(activity.on_resource_saved, dispatch_uid="activity-save")
        post_delete.connect(activity.on_resource_deleted, dispatch_uid="activity-delete")
