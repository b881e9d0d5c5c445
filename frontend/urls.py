from django.urls import path

from frontend import views

urlpatterns = [
    path("", views.notification_center, name="notification-center"),
    path("unsubscribe/<str:token>/", views.unsubscribe, name="unsubscribe"),
]
