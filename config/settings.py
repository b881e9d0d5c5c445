"""Django settings. Every value that differs between machines comes from ``config.env``."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import dj_database_url
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from config import env

BASE_DIR = env.BASE_DIR
SECRET_KEY = env.SECRET_KEY.get()
DEBUG = env.DEBUG.flag()
if not DEBUG and env.SECRET_KEY.default == SECRET_KEY:
    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY is not set: with DJANGO_DEBUG=0 notiflow will not run on the "
        "development key; set DJANGO_SECRET_KEY to a long random value"
    )


def _secrets_keys(text: str) -> list[str]:
    """The Fernet keys of ``NOTIFLOW_SECRETS_KEYS``, each checked; a bad one is named by its
    position, never printed. None set: the local default (notifications/secrets.py), which
    production refuses."""
    keys = [key.strip() for key in text.split(",") if key.strip()]
    for position, key in enumerate(keys, 1):
        try:
            Fernet(key)
        except ValueError:
            raise ImproperlyConfigured(
                f"NOTIFLOW_SECRETS_KEYS: key {position} of {len(keys)} is not a Fernet key "
                '(32 url-safe base64-encoded bytes; make one with `python -c "from '
                'cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"`)'
            ) from None
    if not keys and not DEBUG:
        raise ImproperlyConfigured(
            "NOTIFLOW_SECRETS_KEYS is not set: with DJANGO_DEBUG=0 channel secrets need keys "
            'of their own (make one with `python -c "from cryptography.fernet import Fernet; '
            'print(Fernet.generate_key().decode())"`; to keep secrets saved before, run '
            "`manage.py rotate_secrets --from-secret-key` once it is set)"
        )
    return keys


# Channel secrets' encryption keys; see notifications/secrets.py.
NOTIFLOW_SECRETS_KEYS = _secrets_keys(env.NOTIFLOW_SECRETS_KEYS.get())
ALLOWED_HOSTS = [h.strip() for h in env.ALLOWED_HOSTS.get().split(",") if h.strip()]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files, served by us rather than a CDN
    "django_celery_beat",
    "axes",
    "workspace",
    "notifications",
    "digests",
    "api",
    "frontend",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "workspace.activity.ActorMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, so it turns a locked-out sign-in (site or admin) into the 429 page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]


def _database(url: str) -> dict[str, Any]:
    try:
        config: dict[str, Any] = dict(dj_database_url.parse(url, conn_max_age=60))
    except (ValueError, KeyError) as exc:
        raise ImproperlyConfigured(
            f"DATABASE_URL={env.redact_url(url)!r} is not a database URL "
            f"(expected sqlite:///path or postgres://user:pass@host:port/name): {exc}"
        ) from exc
    # A resource write, its activity log row and its outbox row commit together.
    config["ATOMIC_REQUESTS"] = True
    if config["ENGINE"] == "django.db.backends.sqlite3":
        # Four processes write at once in the local run: WAL lets readers and one writer
        # overlap, IMMEDIATE takes the write lock up front instead of failing mid-transaction.
        config["CONN_MAX_AGE"] = 0
        config["OPTIONS"] = {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    else:
        config["OPTIONS"] = {"connect_timeout": 5}
    return config


DATABASES = {"default": _database(env.DATABASE_URL.get())}
# The inbox's covering index (INCLUDE columns) is a PostgreSQL feature; SQLite, the local
# default, builds the same index without them.
SILENCED_SYSTEM_CHECKS = ["models.W040"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

# Sign-in throttling (django-axes), for /accounts/login/ and the admin's login alike: after
# AXES_FAILURE_LIMIT wrong passwords for one username from one IP, that pair gets the 429
# page until AXES_COOLOFF_TIME passes with no further attempt (each refused attempt restarts
# it). Only failures count, in the shared Redis cache; a successful sign-in clears them.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_HANDLER = "axes.handlers.cache.AxesCacheHandler"
AXES_FAILURE_LIMIT = 5
AXES_COOLOFF_TIME = timedelta(minutes=15)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = True  # the locked-out page says so
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_VERBOSE = False  # no start-up banner on every manage.py command

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / ".cache" / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": [
        "api.errors.JSONParser",  # DRF's, with deep nesting and lone surrogates as 400s
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_THROTTLE_RATES": {"ingest": "600/min", "health": "120/min"},
    "EXCEPTION_HANDLER": "api.errors.exception_handler",  # JSON 413 over the upload limit
}
SPECTACULAR_SETTINGS = {
    "TITLE": "notiflow API",
    "DESCRIPTION": "Triggers, in-app notifications, preferences, deliveries and digests.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # /api/docs/ loads Swagger UI from our own static files (drf-spectacular-sidecar), so it
    # works without internet access.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "api.errors.document_error_responses",
    ],
    "ENUM_NAME_OVERRIDES": {
        "ChannelEnum": "notifications.channels.registry.CHOICES",
        "RoleEnum": "workspace.models.Role",
        "ChannelConfigTypeEnum": "notifications.channels.registry.ORG_LEVEL_CHOICES",
    },
}

REDIS_URL = env.REDIS_URL.get()
# Shared by every process: throttle counters and cached state must not live per process.
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
}
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Longer than the longest retry countdown (RetryPolicy.max_seconds), so Redis does not
# redeliver a task that is only waiting for its ETA.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 2 * 3600}

KAFKA_BOOTSTRAP_SERVERS = env.KAFKA_BOOTSTRAP_SERVERS.get()
NOTIFLOW_TOPIC_PREFIX = env.NOTIFLOW_TOPIC_PREFIX.get()
NOTIFLOW_TOPIC_PARTITIONS = env.NOTIFLOW_TOPIC_PARTITIONS.integer(low=1, high=1000)
NOTIFLOW_TRIGGER_REFRESH_SECONDS = env.NOTIFLOW_TRIGGER_REFRESH_SECONDS.seconds(low=0, high=3600)
NOTIFLOW_BASE_URL = env.NOTIFLOW_BASE_URL.get().rstrip("/")
SLACK_API_BASE_URL = env.SLACK_API_BASE_URL.get()
TELEGRAM_API_BASE_URL = env.TELEGRAM_API_BASE_URL.get().rstrip("/")
# Webhooks to private, loopback and link-local addresses (off: a tenant's URL must not
# reach the internal network); see notifications/channels/http.py.
NOTIFLOW_WEBHOOK_ALLOW_PRIVATE = env.NOTIFLOW_WEBHOOK_ALLOW_PRIVATE.flag()
NOTIFLOW_INGEST_MAX_EVENTS = env.NOTIFLOW_INGEST_MAX_EVENTS.integer(low=1, high=100_000)
# /api/health/: over any of these it says "degraded" with the reason (api/health.py).
NOTIFLOW_HEALTH_MAX_CONSUMER_LAG = env.NOTIFLOW_HEALTH_MAX_CONSUMER_LAG.integer(
    low=1, high=1_000_000_000
)
NOTIFLOW_HEALTH_MAX_OUTBOX_AGE_SECONDS = env.NOTIFLOW_HEALTH_MAX_OUTBOX_AGE_SECONDS.integer(
    low=1, high=86_400
)
NOTIFLOW_HEALTH_MAX_DELIVERY_WAIT_SECONDS = env.NOTIFLOW_HEALTH_MAX_DELIVERY_WAIT_SECONDS.integer(
    low=1, high=86_400
)
# consume_events serves its counters here (notifications/metrics.py); 0: not at all.
NOTIFLOW_CONSUMER_METRICS_PORT = env.NOTIFLOW_CONSUMER_METRICS_PORT.integer(low=0, high=65_535)
PROMETHEUS_MULTIPROC_DIR = env.PROMETHEUS_MULTIPROC_DIR.directory()


def _email(url: str) -> dict:
    if not url:
        return {"EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend"}
    parts = urlsplit(url)
    if parts.scheme not in {"smtp", "smtps"} or not parts.hostname:
        raise ImproperlyConfigured(
            f"EMAIL_URL={env.redact_url(url)!r} must look like smtp://host:port"
        )
    return {
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": parts.hostname,
        "EMAIL_PORT": parts.port or 25,
        "EMAIL_HOST_USER": parts.username or "",
        "EMAIL_HOST_PASSWORD": parts.password or "",
        "EMAIL_USE_SSL": parts.scheme == "smtps",
        "EMAIL_TIMEOUT": 10,
    }


globals().update(_email(env.EMAIL_URL.get()))
DEFAULT_FROM_EMAIL = "notiflow <notifications@notiflow.local>"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    # Celery's per-task INFO lines about the periodic tasks (beat sends flush_rollups every
    # second) are dropped; see config/logfilters.py.
    "filters": {"quiet_periodic_tasks": {"()": "config.logfilters.QuietPeriodicTasks"}},
    "root": {"handlers": ["console"], "level": "INFO"},
    "loggers": {
        "kafka": {"level": "WARNING"},
        **{
            name: {"filters": ["quiet_periodic_tasks"]}
            for name in ("celery.beat", "celery.worker.strategy", "celery.app.trace")
        },
    },
}
