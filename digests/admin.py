from django.contrib import admin

from digests import models


class DigestItemInline(admin.TabularInline):
    model = models.DigestItem
    extra = 0
    raw_id_fields = ["notification"]
    readonly_fields = ["created_at"]


@admin.register(models.Digest)
class DigestAdmin(admin.ModelAdmin):
    list_display = [
        "digest_key",
        "user",
        "channel",
        "period",
        "window_start",
        "status",
        "item_count",
        "attempts",
        "sent_at",
    ]
    list_filter = ["status", "channel", "period"]
    search_fields = ["digest_key", "user__username", "user__email"]
    list_select_related = ["user"]
    raw_id_fields = ["user"]
    readonly_fields = ["digest_key", "created_at", "updated_at", "provider_id"]
    inlines = [DigestItemInline]


@admin.register(models.DigestTarget)
class DigestTargetAdmin(admin.ModelAdmin):
    list_display = ["user", "channel", "organization", "address", "enabled"]
    list_filter = ["channel", "enabled"]
    search_fields = ["user__username", "address"]
    raw_id_fields = ["user"]
