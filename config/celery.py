"""The Celery app. Tasks live in each app's ``tasks.py``; the beat schedule lives in the
database (django-celery-beat) so operators edit it in the admin."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("notiflow")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
