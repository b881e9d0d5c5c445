"""Settings for the django-notifications-hq baseline of ``bench/run inbox`` (bench only).

``config.settings`` with django-notifications-hq's app appended. Three things differ, each
forced by hq, none by choice:

- hq's Python package is called ``notifications``, like notiflow's app, and its model and
  table are ``notifications.Notification`` / ``notifications_notification``, like ours; its
  ``recipient`` also claims the reverse name ``user.notifications``. The two cannot live in
  one process or one schema. So here hq's copy (``bench/.deps/hq``, installed by
  ``bench/run inbox``) goes first on ``sys.path``; notiflow's apps that import our
  ``notifications`` package (notifications, digests, api, frontend) are left out; and the
  connection's ``search_path`` is the schema ``notifications_hq`` of the same database,
  so hq's tables (and its own auth, sessions, contenttypes) never meet notiflow's.
- hq 1.8.3, the latest release, still declares ``Meta.index_together``, which Django 5.1
  removed (``TypeError: 'class Meta' got invalid attribute(s): index_together``). The shim
  below lets Django accept the name; hq's migration 0008 (``AlterIndexTogether``, still
  supported for old migrations) creates the same (recipient, unread) index as always.
- ``ROOT_URLCONF`` serves hq's URLs only.

Usage: ``DJANGO_SETTINGS_MODULE=bench.settings_notifications_hq .venv/bin/python manage.py
migrate`` (``bench/run inbox`` does it for you).
"""

from __future__ import annotations

import sys

from django.db.models import options

from bench.common import DEPS_DIR
from config.settings import *  # noqa: F403
from config.settings import DATABASES, INSTALLED_APPS

HQ_PATH = str(DEPS_DIR / "hq")
if sys.path[:1] != [HQ_PATH]:
    sys.path.insert(0, HQ_PATH)
if "index_together" not in options.DEFAULT_NAMES:
    options.DEFAULT_NAMES = (*options.DEFAULT_NAMES, "index_together")

HQ_SCHEMA = "notifications_hq"
NOTIFLOW_APPS_USING_OUR_PACKAGE = ("notifications", "digests", "api", "frontend")
INSTALLED_APPS = [app for app in INSTALLED_APPS if app not in NOTIFLOW_APPS_USING_OUR_PACKAGE] + [
    "notifications"
]  # django-notifications-hq's app, from bench/.deps/hq
ROOT_URLCONF = "bench.urls_notifications_hq"
DATABASES = {
    "default": {
        **DATABASES["default"],
        "OPTIONS": {
            **DATABASES["default"].get("OPTIONS", {}),
            "options": f"-c search_path={HQ_SCHEMA}",
        },
    }
}
DJANGO_NOTIFICATIONS_CONFIG = {"USE_JSONFIELD": False, "SOFT_DELETE": False}
