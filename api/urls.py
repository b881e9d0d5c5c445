from django.db import transaction
from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from api import views
from api.announcements import AnnouncementViewSet
from api.channels import ChannelConfigViewSet
from api.deliveries import DeliveryViewSet
from api.digests import urlpatterns as digest_urls
from api.ingest import IngestView
from api.notifications import NotificationViewSet, UnreadCountView
from api.preferences import DoNotDisturbView, PreferencesView
from api.resources import VIEWSETS
from api.triggers import TriggerViewSet

router = DefaultRouter()
for prefix, viewset in VIEWSETS.items():
    router.register(prefix, viewset, basename=prefix)
router.register("notifications", NotificationViewSet, basename="notifications")
router.register("triggers", TriggerViewSet, basename="triggers")
router.register("channels", ChannelConfigViewSet, basename="channels")
router.register("deliveries", DeliveryViewSet, basename="deliveries")
router.register("announcements", AnnouncementViewSet, basename="announcements")

urlpatterns = [
    # Before the router's notifications/<pk>/ routes; waits outside ATOMIC_REQUESTS.
    path(
        "notifications/unread_count/",
        transaction.non_atomic_requests(UnreadCountView.as_view()),
        name="notifications-unread-count",
    ),
    path("health/", views.HealthView.as_view(), name="health"),
    path("me/", views.MeView.as_view(), name="me"),
    path("teams/", views.TeamsView.as_view(), name="teams"),
    path("preferences/", PreferencesView.as_view(), name="preferences"),
    path("preferences/dnd/", DoNotDisturbView.as_view(), name="dnd"),
    path("ingest/", IngestView.as_view(), name="ingest"),
    *digest_urls,
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    *router.urls,
]
