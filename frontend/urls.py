from django.urls import path

from frontend import views

urlpatterns = [
    path("", views.notification_center, name="notification-center"),
    path("triggers/", views.trigger_list, name="trigger-list"),
    path("triggers/new/", views.trigger_new, name="trigger-new"),
    path("triggers/<int:trigger_id>/", views.trigger_edit, name="trigger-edit"),
    path("preferences/", views.preferences, name="preferences"),
    path("unsubscribe/<str:token>/", views.unsubscribe, name="unsubscribe"),
]
