from django.contrib import admin

from workspace import models


class MembershipInline(admin.TabularInline):
    model = models.Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(models.Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}


@admin.register(models.Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["name", "organization", "created_at"]
    list_filter = ["organization"]
    search_fields = ["name", "organization__name"]
    readonly_fields = ["api_token", "created_at"]
    inlines = [MembershipInline]


@admin.register(models.Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "team", "role", "joined_at"]
    list_filter = ["role", "team__organization", "team"]
    search_fields = ["user__username", "user__email", "team__name"]
    autocomplete_fields = ["user", "team"]


@admin.register(models.UserProfile)
class UserProfileAdmin(admin.ModelAdmin):
    list_display = ["user", "timezone"]
    list_filter = ["timezone"]
    search_fields = ["user__username", "user__email"]


class ResourceAdmin(admin.ModelAdmin):
    """Shared columns for everything people own; subclasses add their own fields."""

    list_display = ["name", "team", "created_by", "updated_at"]
    list_filter = ["team__organization", "team"]
    search_fields = ["name", "created_by__username", "team__name"]
    readonly_fields = ["created_at", "updated_at"]
    list_select_related = ["team", "created_by"]
    autocomplete_fields = ["team", "created_by"]


admin.site.register(models.Dashboard, ResourceAdmin)
admin.site.register(models.EventDefinition, ResourceAdmin)
admin.site.register(models.Cohort, ResourceAdmin)


@admin.register(models.Insight)
class InsightAdmin(ResourceAdmin):
    list_display = [*ResourceAdmin.list_display, "last_value"]


@admin.register(models.FeatureFlag)
class FeatureFlagAdmin(ResourceAdmin):
    list_display = ["key", "name", "team", "active", "rollout_percentage", "created_by"]
    list_filter = ["active", *ResourceAdmin.list_filter]
    search_fields = ["key", *ResourceAdmin.search_fields]


@admin.register(models.Experiment)
class ExperimentAdmin(ResourceAdmin):
    list_display = [*ResourceAdmin.list_display, "status", "significance"]
    list_filter = ["status", *ResourceAdmin.list_filter]


@admin.register(models.Survey)
class SurveyAdmin(ResourceAdmin):
    list_display = [*ResourceAdmin.list_display, "status", "launched_at"]
    list_filter = ["status", *ResourceAdmin.list_filter]


@admin.register(models.Subscription)
class SubscriptionAdmin(ResourceAdmin):
    list_display = [*ResourceAdmin.list_display, "target_type", "frequency", "last_sent_at"]
    list_filter = ["target_type", "frequency", *ResourceAdmin.list_filter]


@admin.register(models.ActivityLog)
class ActivityLogAdmin(admin.ModelAdmin):
    list_display = ["created_at", "actor_name", "action", "resource_type", "resource_name", "team"]
    list_filter = ["action", "resource_type", "team"]
    search_fields = ["resource_name", "actor_name", "resource_id"]
    readonly_fields = [f.name for f in models.ActivityLog._meta.fields]
