"""Settings for bo1site, read from the environment with defaults that work on a dev machine."""

import re
from decimal import Decimal
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

# The engine is plain Python (no Django): importing it here has no side effects and no cycle.
from deliberation.engine.providers.base import ROLES as BO1_MODEL_ROLES

BASE_DIR = Path(__file__).resolve().parent.parent


class _Env(environ.Env):
    """django-environ's reader; a value that does not parse names its variable (the stock error
    is a bare "invalid literal for int()" from deep in the settings)."""

    def get_value(self, var, cast=None, default=environ.Env.NOTSET, parse_default=False):  # type: ignore[no-untyped-def]
        try:
            return super().get_value(var, cast=cast, default=default, parse_default=parse_default)
        except (ValueError, TypeError) as exc:
            raise ImproperlyConfigured(
                f"{var}={self.ENVIRON.get(var)!r} cannot be read: {exc}"
            ) from None


env = _Env()

# The "django-insecure-" prefix makes `manage.py check --deploy` flag this key (security.W009).
SECRET_KEY = env.str(
    "DJANGO_SECRET_KEY", default="django-insecure-bo1site-dev-key-change-me-in-production"
)
DEBUG = env.bool("DJANGO_DEBUG", default=True)
ALLOWED_HOSTS = env.list(
    "DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"]
)
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

# HTTPS hardening has its own switches so that DJANGO_DEBUG=0 still serves plain http on localhost.
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=False)
SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = SECURE_HSTS_SECONDS > 0
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "sessions_app",
    "deliberation",
    "dashboard",
    "importer",
    "webhooks",
    "observability",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "sessions_app.middleware.StoreUnavailableMiddleware",
]
# Prometheus metrics of every request (observability/): first, so that it times all the rest.
BO1_METRICS_ENABLED = env.bool("BO1_METRICS_ENABLED", default=True)
if BO1_METRICS_ENABLED:
    MIDDLEWARE.insert(0, "observability.middleware.MetricsMiddleware")
# X-Request-ID used or made, and bound to the request's log lines (observability/logs.py).
MIDDLEWARE.insert(0, "observability.request_context.RequestContextMiddleware")
# When set, GET /metrics (and the worker's endpoint) want `Authorization: Bearer <token>`.
BO1_METRICS_TOKEN = env.str("BO1_METRICS_TOKEN", default="")

ROOT_URLCONF = "bo1site.urls"
WSGI_APPLICATION = "bo1site.wsgi.application"
ASGI_APPLICATION = "bo1site.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
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

# PostgreSQL is the source of truth.
DATABASES = {"default": env.db_url("DATABASE_URL", default="postgres://127.0.0.1:5432/bo1")}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=600)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# The lookups every request (or engine step) runs by a unique key are prepared once per
# connection (bo1site/serving/db/prepared.py); switch off behind a pooler in transaction mode.
DATABASE_PREPARED_STATEMENTS = env.bool("DATABASE_PREPARED_STATEMENTS", default=True)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Django's backend with a health check that needs no round trip (bo1site/serving/db).
    DATABASES["default"]["ENGINE"] = "bo1site.serving.db"
# A PostgreSQL that stops answering without closing the connection (a network partition) must
# not hold a request or a worker step until TCP gives up, which takes many minutes: connecting,
# unacknowledged bytes (tcp_user_timeout) and a silent wait for an answer (keepalives) each fail
# within a few seconds; the request is then a 503 and the worker keeps its write in its outbox.
# The server cancels a statement that runs longer than DATABASE_STATEMENT_TIMEOUT (0: never;
# also 0 behind PgBouncer, which refuses the `options` startup parameter).
_tcp_user_timeout = env.int("DATABASE_TCP_USER_TIMEOUT", default=5)
_statement_timeout = env.int("DATABASE_STATEMENT_TIMEOUT", default=30)
_database_options = {
    "connect_timeout": env.int("DATABASE_CONNECT_TIMEOUT", default=3),
    "keepalives": 1,
    "keepalives_idle": max(1, _tcp_user_timeout // 2),
    "keepalives_interval": 1,
    "keepalives_count": 3,
    "tcp_user_timeout": _tcp_user_timeout * 1000,
}
if _statement_timeout:
    _database_options["options"] = f"-c statement_timeout={_statement_timeout}s"
for _name, _value in _database_options.items():
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault(_name, _value)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Redis holds only hot, expiring state. Errors are logged and swallowed: PostgreSQL answers instead.
REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")
SESSION_CACHE_TTL = env.int("SESSION_CACHE_TTL", default=86400)
REDIS_SOCKET_TIMEOUT = env.float("REDIS_SOCKET_TIMEOUT", default=1.0)
CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "bo1",
        "TIMEOUT": SESSION_CACHE_TTL,
        "OPTIONS": {
            "CLIENT_CLASS": "django_redis.client.DefaultClient",
            "SERIALIZER": "bo1site.serving.jsoncodec.OrjsonCacheSerializer",
            "SOCKET_CONNECT_TIMEOUT": REDIS_SOCKET_TIMEOUT,
            "SOCKET_TIMEOUT": REDIS_SOCKET_TIMEOUT,
            "IGNORE_EXCEPTIONS": True,
            "CONNECTION_POOL_KWARGS": {"health_check_interval": 30},
        },
    }
}
DJANGO_REDIS_IGNORE_EXCEPTIONS = True
DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS = True
DJANGO_REDIS_LOGGER = "sessions_app.cache"

# Celery: Redis broker on its own database number.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="redis://127.0.0.1:6379/1")
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_TIMEOUT = env.float("CELERY_BROKER_CONNECTION_TIMEOUT", default=2.0)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # A message is redelivered when its worker died without acknowledging it.
    "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=3600),
    "socket_connect_timeout": 2,
    "socket_timeout": 5,
}
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]

# The deliberation.
BO1_LLM_PROVIDER = env.str(
    "BO1_LLM_PROVIDER",
    default=(
        "anthropic"
        if env.str("ANTHROPIC_API_KEY", default="")
        else "openai"
        if env.str("OPENAI_API_KEY", default="")
        else "offline"
    ),
)
BO1_MAX_COST_PER_SESSION = Decimal(env.str("BO1_MAX_COST_PER_SESSION", default="1.00"))
BO1_OFFLINE_LATENCY_MS = env.int("BO1_OFFLINE_LATENCY_MS", default=0)
BO1_LLM_TIMEOUT = env.float("BO1_LLM_TIMEOUT", default=60.0)
BO1_LLM_MAX_RETRIES = env.int("BO1_LLM_MAX_RETRIES", default=3)
# Model names per role (BO1_MODEL_PERSONA, BO1_MODEL_SYNTHESIZER, ...); unset roles use defaults.
BO1_MODELS = {
    role: model
    for role in BO1_MODEL_ROLES
    if (model := env.str(f"BO1_MODEL_{role.upper()}", default=""))
}
# A worker holds a per-session lease in Redis and renews it; a lease left to expire means the
# worker died, and the repair pass (deliberation/reconcile.py) requeues the session.
BO1_LEASE_TTL = env.int("BO1_LEASE_TTL", default=30)
# Seconds between two runs of that repair pass in each worker (the name predates the pass).
BO1_REAPER_INTERVAL = env.int("BO1_REAPER_INTERVAL", default=30)
# How long a worker keeps retrying writes PostgreSQL refused before it leaves them to reconcile.
BO1_OUTBOX_PATIENCE = env.int("BO1_OUTBOX_PATIENCE", default=600)

# Retention (manage.py purge_sessions, and the worker's daily pass): sessions whose last write is
# older than BO1_RETENTION_DAYS are deleted for good (empty: kept forever); soft-deleted ones after
# BO1_DELETED_RETENTION_DAYS. A session under legal hold is never deleted.
_retention_days = env.str("BO1_RETENTION_DAYS", default="").strip()
if _retention_days and not (_retention_days.isdigit() and int(_retention_days) >= 1):
    raise ImproperlyConfigured(
        f"BO1_RETENTION_DAYS={_retention_days!r}: a whole number of days of at least 1, or "
        "empty to keep forever"
    )
BO1_RETENTION_DAYS = int(_retention_days) if _retention_days else None
BO1_DELETED_RETENTION_DAYS = env.int("BO1_DELETED_RETENTION_DAYS", default=30)
if BO1_DELETED_RETENTION_DAYS < 1:
    raise ImproperlyConfigured(
        f"BO1_DELETED_RETENTION_DAYS={BO1_DELETED_RETENTION_DAYS}: a whole number of days of at "
        "least 1"
    )
BO1_PURGE_BATCH = env.int("BO1_PURGE_BATCH", default=200)
BO1_PURGE_INTERVAL = env.int("BO1_PURGE_INTERVAL", default=86400)

# Server-Sent Events: a keep-alive comment this often, and PostgreSQL polled this often while
# Redis cannot be read.
BO1_STREAM_KEEPALIVE_SECONDS = env.float("BO1_STREAM_KEEPALIVE_SECONDS", default=15.0)
BO1_STREAM_POLL_SECONDS = env.float("BO1_STREAM_POLL_SECONDS", default=1.0)

# Webhooks (webhooks/): retries after a failed attempt (seconds, jittered by ±20%), then failed.
BO1_WEBHOOK_RETRY_SCHEDULE = [
    float(seconds)
    for seconds in env.list(
        "BO1_WEBHOOK_RETRY_SCHEDULE", default=["5", "60", "300", "1800", "7200", "28800", "86400"]
    )
]
if any(seconds < 0 for seconds in BO1_WEBHOOK_RETRY_SCHEDULE):
    raise ImproperlyConfigured("BO1_WEBHOOK_RETRY_SCHEDULE must list seconds, e.g. 5,60,300")
# Targets on loopback, private, link-local or multicast addresses are refused unless this is set.
BO1_WEBHOOK_ALLOW_PRIVATE = env.bool("BO1_WEBHOOK_ALLOW_PRIVATE", default=False)
BO1_WEBHOOK_TIMEOUT = env.float("BO1_WEBHOOK_TIMEOUT", default=10.0)
# An endpoint whose deliveries all fail for this long is disabled (3 days).
BO1_WEBHOOK_DISABLE_AFTER = env.int("BO1_WEBHOOK_DISABLE_AFTER", default=3 * 86400)
# How often each worker looks for deliveries recorded but not sent (and retries that are due).
BO1_WEBHOOK_SWEEP_INTERVAL = env.float("BO1_WEBHOOK_SWEEP_INTERVAL", default=5.0)
# The service's public address, for the links in webhook bodies.
BO1_PUBLIC_URL = env.str("BO1_PUBLIC_URL", default="http://127.0.0.1:8000")

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
# The API's bodies are small; anything past this is refused before it is parsed.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DJANGO_MAX_BODY_BYTES", default=256 * 1024)


def throttle_rate(variable: str, default: str) -> str:
    """A DRF rate such as "60/min" ("" switches the limit off); a typo fails at startup."""
    value = env.str(variable, default=default).strip()
    if value and not re.fullmatch(r"\d+/[smhd][a-z]*", value):
        raise ImproperlyConfigured(f"{variable} must look like 60/min or 1000/hour, not {value!r}")
    return value


REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "bo1site.serving.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["bo1site.serving.jsoncodec.OrjsonRenderer"],
    # DRF's negotiation with the plain JSON case answered at once (bo1site/serving).
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "bo1site.serving.negotiation.ContentNegotiation",
    "DEFAULT_PARSER_CLASSES": ["sessions_app.api.parsers.SafeJSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "sessions_app.api.exceptions.api_exception_handler",
    # Per user, counted in Redis (sessions_app/api/throttles.py); an empty value turns one off.
    "DEFAULT_THROTTLE_RATES": {
        "session_create": throttle_rate("BO1_THROTTLE_CREATE", "60/min"),
        "session_start": throttle_rate("BO1_THROTTLE_START", "30/min"),
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Board of One API",
    "DESCRIPTION": "Durable deliberation sessions: create, list, follow and control them.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "COMPONENT_SPLIT_REQUEST": True,
    # A webhook delivery's status is not a session's: each enum keeps its own name.
    "ENUM_NAME_OVERRIDES": {
        "StatusEnum": "sessions_app.models.Status.values",
        "DeliveryStatusEnum": "webhooks.models.DeliveryStatus",
        "WebhookEventTypeEnum": "webhooks.models.EventType",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "sessions_app.api.openapi.blank_query_values_mean_absent",
        "sessions_app.api.openapi.validation_errors_map_fields_to_messages",
    ],
}

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
# `json`: one JSON object per line, with request_id, session_id and user_id where known.
BO1_LOG_FORMAT = env.str("BO1_LOG_FORMAT", default="plain").strip().lower()
if BO1_LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"BO1_LOG_FORMAT must be plain or json, not {BO1_LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "observability.logs.JsonFormatter"},
    },
    "filters": {"context": {"()": "observability.logs.ContextFilter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": BO1_LOG_FORMAT,
            "filters": ["context"],
        }
    },
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "sessions_app": {"level": LOG_LEVEL},
        "deliberation": {"level": LOG_LEVEL},
        "bo1site": {"level": LOG_LEVEL},
        "importer": {"level": LOG_LEVEL},
        "webhooks": {"level": LOG_LEVEL},
        "observability": {"level": LOG_LEVEL},
    },
}
