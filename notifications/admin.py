from django import forms
from django.contrib import admin
from django.db import transaction

from notifications import enqueue, models
from notifications.channels import registry
from notifications.secrets import encrypt


class TriggerForm(forms.ModelForm):
    """The model checks the config (``Trigger.clean``); channels and delivery are checked
    here by the API's own serializer (``api.triggers.destination_errors``), so the admin
    stores nothing the API would refuse. Each message names its path in the field."""

    def clean(self):
        from api.triggers import destination_errors

        cleaned = super().clean()
        if "channels" in cleaned and "delivery" in cleaned:
            errors = destination_errors(cleaned["channels"], cleaned["delivery"])
            for path, messages in errors.items():
                field = path.split(".")[0].split("[")[0]
                self.add_error(field, [f"{path}: {message}" for message in messages])
        return cleaned


@admin.register(models.Trigger)
class TriggerAdmin(admin.ModelAdmin):
    form = TriggerForm
    list_display = [
        "name",
        "team",
        "kind",
        "event_name",
        "owner",
        "enabled",
        "critical",
        "snoozed_until",
    ]
    list_filter = ["kind", "enabled", "critical", "team__organization", "team"]
    search_fields = ["name", "event_name", "owner__username", "team__name"]
    autocomplete_fields = ["team", "owner", "subscribers"]
    readonly_fields = ["event_name", "created_at", "updated_at"]
    actions = ["disable"]

    @admin.action(description="Disable the selected triggers")
    def disable(self, request, queryset):
        changed = queryset.filter(enabled=True).update(enabled=False)
        self.message_user(request, f"Disabled {changed} trigger(s).")


@admin.register(models.Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ["title", "recipient", "team", "category", "count", "last_seen_at", "read_at"]
    list_filter = ["category", "team", ("read_at", admin.EmptyFieldListFilter)]
    search_fields = ["title", "recipient__username", "actor_name", "event_name"]
    list_select_related = ["recipient", "team"]
    readonly_fields = [
        "dedup_key",
        "event_id",
        "trigger",
        "first_seen_at",
        "last_seen_at",
        "created_at",
    ]
    raw_id_fields = ["recipient", "actor"]


@admin.register(models.Outbox)
class OutboxAdmin(admin.ModelAdmin):
    list_display = ["id", "team_id", "event_id", "created_at", "published_at", "attempts"]
    list_filter = [("published_at", admin.EmptyFieldListFilter)]
    search_fields = ["event_id"]
    readonly_fields = ["event_id", "team_id", "payload", "created_at", "published_at", "attempts"]


@admin.register(models.Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ["id", "channel", "destination", "status", "attempts", "team", "sent_at"]
    list_filter = ["status", "channel", "team"]
    search_fields = [
        "destination",
        "idempotency_key",
        "last_error",
        "reason",
        "recipient__username",
    ]
    list_select_related = ["team"]
    readonly_fields = [
        "idempotency_key",
        "message",
        "attempts",
        "sent_at",
        "created_at",
        "updated_at",
        "rollup",
        "notification",
        "reason",
        "held_until",
        "released_in",
    ]
    raw_id_fields = ["recipient", "trigger"]
    actions = ["retry"]

    @admin.action(description="Retry the selected failed or skipped deliveries")
    def retry(self, request, queryset):
        """Re-queue them from scratch; the tasks are enqueued once the re-queue has
        committed, so a worker never finds the row still failed."""
        ids = list(
            queryset.filter(
                status__in=[models.DeliveryStatus.FAILED, models.DeliveryStatus.SKIPPED]
            ).values_list("id", flat=True)
        )
        models.Delivery.objects.filter(id__in=ids).update(
            status=models.DeliveryStatus.QUEUED, next_retry_at=None, attempts=0
        )
        transaction.on_commit(lambda: enqueue.deliver_all(ids))
        self.message_user(request, f"Queued {len(ids)} deliveries again.")


@admin.register(models.ChannelConfig)
class ChannelConfigAdmin(admin.ModelAdmin):
    """The secret is never shown; it is set through the API (write-only)."""

    list_display = ["name", "type", "organization", "enabled", "consecutive_failures"]
    list_filter = ["type", "enabled", "organization"]
    search_fields = ["name", "organization__name"]
    readonly_fields = ["consecutive_failures", "disabled_reason", "created_at", "updated_at"]
    exclude = ["secret_encrypted"]

    def save_model(self, request, obj, form, change):
        """A secret pasted into ``config`` is encrypted, as the API does, not kept in clear."""
        declared = registry.secret_of(obj.type)
        if declared is not None and isinstance(obj.config, dict) and declared.name in obj.config:
            obj.secret_encrypted = encrypt(str(obj.config.pop(declared.name)))
        super().save_model(request, obj, form, change)


@admin.register(models.RollupWindow)
class RollupWindowAdmin(admin.ModelAdmin):
    list_display = [
        "trigger",
        "channel",
        "destination",
        "status",
        "count",
        "opened_at",
        "closes_at",
    ]
    list_filter = ["status", "channel"]
    search_fields = ["trigger__name", "destination"]
    readonly_fields = [f.name for f in models.RollupWindow._meta.fields]


@admin.register(models.Preference)
class PreferenceAdmin(admin.ModelAdmin):
    list_display = ["user", "digest_cadence", "digest_hour", "updated_at"]
    list_filter = ["digest_cadence"]
    search_fields = ["user__username", "user__email"]
    raw_id_fields = ["user"]


@admin.register(models.Follow)
class FollowAdmin(admin.ModelAdmin):
    list_display = ["user", "resource_type", "resource_id", "team", "last_participated_at"]
    list_filter = ["resource_type", "team"]
    search_fields = ["user__username", "resource_id"]


@admin.register(models.TriggerCheck)
class TriggerCheckAdmin(admin.ModelAdmin):
    list_display = ["trigger", "checked_at", "state", "value"]
    list_filter = ["state"]
    search_fields = ["trigger__name", "error"]
    readonly_fields = [f.name for f in models.TriggerCheck._meta.fields]
