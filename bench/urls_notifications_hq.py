"""URLs of the django-notifications-hq baseline process: hq's own views, nothing else."""

from django.urls import include, path

urlpatterns = [
    path("inbox/notifications/", include("notifications.urls", namespace="notifications"))
]
