from django.contrib import admin

from notifications import models


@admin.register(models.Trigger)
class TriggerAdmin(admin.ModelAdmin):
    list_display = ["name", "team", "kind", "event_name", "owner", "enabled", "snoozed_until"]
    list_filter = ["kind", "enabled", "team__organization", "team"]
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
