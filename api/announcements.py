"""``/api/announcements/``: "what's new" notes.

An organization admin posts one for their organization; staff may post for any
organization, or with ``organization: null`` for everyone. Posting puts one
``announcement`` notification in the center of every member (see
:func:`notifications.services.notification_announce`), so each person sees it once.
``GET`` lists the announcements the caller can see: those to everyone and those to their
organizations, newest first. Others' organizations' announcements do not exist (404).
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, permissions, serializers, status, viewsets
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response

from api.errors import FIELD_ERRORS, FlatErrorsMixin
from api.pagination import KeysetPagination
from api.permissions import (
    CallerOrganizationField,
    admin_organizations_of,
    announcements_for,
    is_org_admin,
)
from notifications import services
from notifications.models import Announcement

FORBIDDEN = OpenApiResponse(
    description="Only the organization's admins (or staff, for everyone) can announce."
)


class AnnouncementSerializer(serializers.ModelSerializer):
    organization = CallerOrganizationField(
        staff_sees_all=True, allow_null=True, help_text="null: everyone (staff only)."
    )
    author_name = serializers.SerializerMethodField()

    class Meta:
        model = Announcement
        fields = ["id", "organization", "title", "body", "author", "author_name", "created_at"]
        read_only_fields = ["author", "created_at"]

    def get_author_name(self, announcement: Announcement) -> str:
        author = announcement.author
        return (author.get_full_name() or author.get_username()) if author else ""


class AnnouncementCreatedSerializer(AnnouncementSerializer):
    notified = serializers.IntegerField(
        read_only=True, help_text="How many people got it in their notification center."
    )

    class Meta(AnnouncementSerializer.Meta):
        fields = [*AnnouncementSerializer.Meta.fields, "notified"]


class CanAnnounce(permissions.BasePermission):
    """Creating needs staff, or admin of at least one organization; the body's
    organization is checked once it is validated."""

    message = FORBIDDEN.description

    def has_permission(self, request, view):
        if request.method in permissions.SAFE_METHODS:
            return True
        return request.user.is_staff or admin_organizations_of(request.user).exists()


class NewestFirst(KeysetPagination):
    ordering = ("-created_at", "-id")
    page_size = 50


@extend_schema_view(
    create=extend_schema(
        responses={201: AnnouncementCreatedSerializer, 400: FIELD_ERRORS, 403: FORBIDDEN}
    ),
)
class AnnouncementViewSet(
    FlatErrorsMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    viewsets.GenericViewSet,
):
    """Announcements the caller can see, and posting one; see the module docstring."""

    serializer_class = AnnouncementSerializer
    pagination_class = NewestFirst
    permission_classes = [permissions.IsAuthenticated, CanAnnounce]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no user
            return Announcement.objects.none()
        return announcements_for(self.request.user).select_related("author")

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        organization = serializer.validated_data.get("organization")
        user = request.user
        if organization is None and not user.is_staff:
            raise PermissionDenied("Only staff can announce to everyone; choose an organization.")
        if organization is not None and not (user.is_staff or is_org_admin(user, organization.pk)):
            raise PermissionDenied(FORBIDDEN.description)
        announcement, notified = services.notification_announce(
            user=user,
            organization_id=organization.pk if organization else None,
            title=serializer.validated_data["title"],
            body=serializer.validated_data.get("body", ""),
        )
        data = {**self.get_serializer(announcement).data, "notified": notified}
        return Response(data, status=status.HTTP_201_CREATED)
