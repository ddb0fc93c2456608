"""Copilot's one settings module: every knob comes from the environment.

The embedded default (no variable set but ``DEBUG=1``) needs no server at all: SQLite in WAL
mode, an in-memory channel layer and an in-process Celery worker, all in one process. Setting
``DATABASE_URL`` and ``REDIS_URL`` moves the same code onto PostgreSQL and Redis with separate
Daphne, worker and relay processes. The README's configuration table documents each variable.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP
from kombu import Exchange, Queue

from copilot.env import (
    database_config,
    env_bool,
    env_float,
    env_int,
    env_list,
    env_str,
    env_url,
    origin_of,
    parse_url,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("COPILOT_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DEBUG", False)

SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is required when DEBUG is off: set SECRET_KEY to a long random string "
            "(python -c 'import secrets; print(secrets.token_urlsafe(50))'), or set DEBUG=1 "
            "for local development."
        )
    # Only ever used with DEBUG on, where sessions and signed values are throwaway.
    SECRET_KEY = "django-insecure-local-development-only"  # noqa: S105

# --- Hosts and origins --------------------------------------------------------------------

PUBLIC_BASE_URL = env_url(
    "PUBLIC_BASE_URL",
    "http://127.0.0.1:8000" if DEBUG else "",
    schemes=("http", "https"),
    allow_path=False,
).rstrip("/")

_local_hosts = ["localhost", "127.0.0.1", "[::1]"]
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", _local_hosts if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
for _origin in CSRF_TRUSTED_ORIGINS:
    parse_url("CSRF_TRUSTED_ORIGINS", _origin, schemes=("http", "https"), allow_path=False)
if PUBLIC_BASE_URL:
    # The public URL is where browsers and VideoDB reach us, so it is always a valid host
    # and origin; listing it twice in the environment would only invite drift.
    _public_host = urlsplit(PUBLIC_BASE_URL).hostname or ""
    if _public_host and _public_host not in ALLOWED_HOSTS and "*" not in ALLOWED_HOSTS:
        ALLOWED_HOSTS.append(_public_host)
    if origin_of(PUBLIC_BASE_URL) not in CSRF_TRUSTED_ORIGINS:
        CSRF_TRUSTED_ORIGINS.append(origin_of(PUBLIC_BASE_URL))

# --- Applications ------------------------------------------------------------------------

INSTALLED_APPS = [
    "daphne",  # first, so that runserver serves the ASGI application
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    # Its form templates, so that the project's templates/django/forms/ can override them.
    "django.forms",
    "channels",
    "django_htmx",
    "sessions_app",
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
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "copilot.urls"
ASGI_APPLICATION = "copilot.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.csp",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Forms render through the project's templates (templates/django/forms/): label above the
# field, then help text and errors under it, one layout for every form.
FORM_RENDERER = "django.forms.renderers.TemplatesSetting"

AUTH_USER_MODEL = "sessions_app.User"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Database ----------------------------------------------------------------------------

_database_url = env_str("DATABASE_URL")
if _database_url:
    _default_db = database_config(_database_url)
    if _default_db["ENGINE"] == "django.db.backends.postgresql":
        # A pool instead of a connection per request: under ASGI Django closes connections
        # at the end of every request, and opening one costs more than most of our views.
        _default_db.setdefault("OPTIONS", {})["pool"] = {
            "min_size": 1,
            "max_size": env_int("DATABASE_POOL_SIZE", 20, minimum=2),
            "timeout": 10,
        }
else:
    _default_db = {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": VAR_DIR / "copilot.sqlite3",
    }
if _default_db["ENGINE"] == "django.db.backends.sqlite3":
    # A fresh checkout has no var/ yet; the embedded default must run without any setup.
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    _default_db.setdefault("OPTIONS", {}).update(
        {
            # WAL lets the pages read while the relay and worker write; IMMEDIATE makes a
            # writer take the lock up front instead of failing with "database is locked"
            # when it upgrades from a read half-way through a transaction.
            "init_command": (
                "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;"
            ),
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        }
    )
    # Tests use a file, not SQLite's in-memory database, so that the Daphne and Celery
    # processes they start see the same data.
    _default_db.setdefault("TEST", {}).setdefault("NAME", str(VAR_DIR / "test-copilot.sqlite3"))
DATABASES = {"default": _default_db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: channel layer and Celery broker ----------------------------------------------

REDIS_URL = env_url("REDIS_URL", "", schemes=("redis", "rediss", "unix"))
EMBEDDED = not REDIS_URL  # one process: in-memory layer, in-process Celery worker

# The channel layer may be spread over several Redis servers (CHANNEL_REDIS_URLS, in the same
# order in every process): channels-redis keeps each group on the server its name hashes to
# and each process's inbox on the server its channel prefix hashes to, so a Daphne and a relay
# agree on both without talking to each other (README, "Past one machine"). Unset: REDIS_URL.
CHANNEL_REDIS_URLS = env_list("CHANNEL_REDIS_URLS", [REDIS_URL] if REDIS_URL else [])
for _url in CHANNEL_REDIS_URLS:
    parse_url("CHANNEL_REDIS_URLS", _url, schemes=("redis", "rediss", "unix"))
if len(set(CHANNEL_REDIS_URLS)) != len(CHANNEL_REDIS_URLS):
    # The same server twice would take two shares of the hash ring: never what was meant.
    raise ImproperlyConfigured(
        f"CHANNEL_REDIS_URLS names a server more than once; got {CHANNEL_REDIS_URLS!r}"
    )
if CHANNEL_REDIS_URLS and not REDIS_URL:
    raise ImproperlyConfigured(
        "CHANNEL_REDIS_URLS needs REDIS_URL (the Celery broker, and separate processes): "
        "without it Copilot runs embedded, with an in-memory channel layer"
    )


def _channel_layer_host(address: str) -> dict[str, object]:
    """One channel-layer server, with the connection options every shard shares."""
    return {
        "address": address,
        # channels-redis blocks in BZPOPMIN for up to 5 s per receive; redis-py's own 5 s
        # socket timeout races that and kills idle consumers, so reads get a comfortable
        # margin above the blocking time instead.
        "socket_timeout": 30,
        "socket_connect_timeout": 5,
        "socket_keepalive": True,
        "health_check_interval": 30,
        # redis-py's pool stops at 100 connections; a burst of 1,000 browser sockets joining
        # groups at once needs far more before it settles.
        "max_connections": 5000,
    }


if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [_channel_layer_host(url) for url in CHANNEL_REDIS_URLS],
                "capacity": env_int("CHANNEL_CAPACITY", 1000, minimum=10),
                "expiry": 60,
            },
        }
    }
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels.layers.InMemoryChannelLayer",
            "CONFIG": {"capacity": env_int("CHANNEL_CAPACITY", 1000, minimum=10)},
        }
    }

# Celery reads every CELERY_* setting (see copilot/celery.py).
TASK_QUEUES = ("lifecycle", "intelligence", "indexing")
# Without Redis, kombu's in-memory transport, made stoppable at once (copilot/inprocess_broker.py).
CELERY_BROKER_URL = REDIS_URL or "inprocess://"
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# No result backend: nothing reads a task's result (tasks record what happened in the
# database). Celery still makes a (disabled) backend object per publishing thread unless it
# is marked thread-safe, and under ASGI every request runs on a fresh thread.
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND_THREAD_SAFE = True
# A task is acknowledged only when it finished, and a worker that dies mid-task hands it back:
# every task is idempotent, so running one twice is safe while losing one is not.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 120, minimum=1)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 150, minimum=1)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # With late acks Redis re-delivers a task that is not acknowledged within this window,
    # so it must exceed the longest task plus the longest retry countdown (see celery.py).
    "visibility_timeout": 3600,
    # Publishing while Redis is down fails fast instead of hanging the web request: the
    # reconciler re-enqueues whatever was stored but never published.
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
}
if not REDIS_URL:
    # The in-process broker is polled for tasks; kombu's default of 1 s made every task on the
    # embedded default (a webhook's processing, a brief's refresh) wait up to a second.
    CELERY_BROKER_TRANSPORT_OPTIONS["polling_interval"] = 0.05
# One queue per kind of task, so a slow kind never delays another: a worker started with
# `-Q lifecycle` keeps webhooks moving while generate_text calls queue up on `intelligence`.
# A worker started without -Q consumes all three (the embedded worker, `./dev up`, tests).
#   lifecycle:    webhook deliveries, session re-reads, starting the AI, exports, alert
#                 confirmations, the reconciler
#   intelligence: the live brief (every generate_text call made by a task)
#   indexing:     bulk search work (rebuilding a session's entries); the entry of each new
#                 item is still written as it is stored, not by a task
CELERY_TASK_QUEUES = [Queue(name, Exchange(name), routing_key=name) for name in TASK_QUEUES]
CELERY_TASK_ROUTES = {
    "sessions.*": {"queue": "lifecycle"},
    "intelligence.*": {"queue": "intelligence"},
    "search.*": {"queue": "indexing"},
}
# A task no route names goes here rather than to a queue no worker consumes.
CELERY_TASK_DEFAULT_QUEUE = "lifecycle"
# Longest first retry delay in seconds; each further try doubles it (copilot/celery.py).
TASK_RETRY_BASE_SECONDS = env_int("TASK_RETRY_BASE_SECONDS", 2, minimum=0)
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.1,
    "interval_max": 0.2,
}
CELERY_BEAT_SCHEDULE = {
    "reconcile": {
        "task": "sessions.reconcile",
        "schedule": float(env_int("RECONCILE_INTERVAL_SECONDS", 30, minimum=1)),
    },
}
# The reconciler's clocks (sessions_app/tasks.py): a delivery not processed after this long
# is enqueued again; a live session unchanged for this long is re-read from VideoDB; an AI
# operation claimed this long ago by a worker that never finished is taken over.
RECONCILE_REQUEUE_AFTER_SECONDS = env_int("RECONCILE_REQUEUE_AFTER_SECONDS", 30, minimum=0)
RECONCILE_SESSION_LAG_SECONDS = env_int("RECONCILE_SESSION_LAG_SECONDS", 120, minimum=0)
OPERATION_CLAIM_STALE_SECONDS = env_int("OPERATION_CLAIM_STALE_SECONDS", 300, minimum=1)
# VideoDB exports a stopped session by itself and says so with `capture_session.exported`;
# Copilot asks for the export only when that has not come this long after the stop.
EXPORT_FALLBACK_SECONDS = env_int("EXPORT_FALLBACK_SECONDS", 60, minimum=0)
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- VideoDB -----------------------------------------------------------------------------

VIDEODB_API_KEY = env_str("VIDEODB_API_KEY")
VIDEODB_EMULATOR_API_KEY = "emulator-dev-key"
VIDEODB_USES_EMULATOR = not VIDEODB_API_KEY
VIDEODB_BASE_URL = env_url(
    "VIDEODB_BASE_URL",
    "http://127.0.0.1:8765" if VIDEODB_USES_EMULATOR else "https://api.videodb.io",
    schemes=("http", "https"),
).rstrip("/")
# Relay processes that split the sessions between them (session id % RELAY_SHARDS).
RELAY_SHARDS = env_int("RELAY_SHARDS", 1, minimum=1)
# The live page warns when a channel of an active session has been silent this long.
LIVE_SILENCE_WARNING_SECONDS = env_int("LIVE_SILENCE_WARNING_SECONDS", 20, minimum=1)
# Application-level heartbeat of the browser sockets: the page pings every LIVE_PING_SECONDS,
# replaces a socket it has not heard from in LIVE_STALE_SECONDS, and the server closes one
# that has been silent for LIVE_SOCKET_IDLE_SECONDS (a dead peer never says goodbye).
LIVE_PING_SECONDS = env_int("LIVE_PING_SECONDS", 20, minimum=1)
LIVE_STALE_SECONDS = env_int("LIVE_STALE_SECONDS", 45, minimum=2)
LIVE_SOCKET_IDLE_SECONDS = env_int("LIVE_SOCKET_IDLE_SECONDS", 60, minimum=2)
# Interim transcript text is pushed (never stored) at most this often per stream, the latest
# text winning; the first interim of a quiet stream goes out at once (sessions_app/relay.py).
LIVE_INTERIM_SECONDS = env_float("LIVE_INTERIM_SECONDS", 0.15, minimum=0.0)

# --- inputs bounded before they cost (copilot/bodylimit.py, copilot/throttle.py) ------------

# Request bodies are refused at the socket above these sizes (413), and when they have not
# arrived REQUEST_BODY_SECONDS after their headers (408). Webhooks carry a few KiB.
WEBHOOK_MAX_BODY_BYTES = env_int("WEBHOOK_MAX_BODY_BYTES", 64 * 1024, minimum=1024)
REQUEST_MAX_BODY_BYTES = env_int("REQUEST_MAX_BODY_BYTES", 2_621_440, minimum=64 * 1024)
REQUEST_BODY_SECONDS = env_int("REQUEST_BODY_SECONDS", 30, minimum=1)
# Failed sign-ins (copilot/signin.py): after LOGIN_FAILURE_LIMIT failures for one username,
# or LOGIN_ADDRESS_FAILURE_LIMIT from one address (many people may share one), within
# LOGIN_LOCKOUT_SECONDS, sign-in is refused for them until the window passes.
LOGIN_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 10, minimum=1)
LOGIN_ADDRESS_FAILURE_LIMIT = env_int("LOGIN_ADDRESS_FAILURE_LIMIT", 50, minimum=1)
LOGIN_LOCKOUT_SECONDS = env_int("LOGIN_LOCKOUT_SECONDS", 900, minimum=1)
# Search by meaning: each asks VideoDB up to 13 searches. At most MEANING_SEARCH_LIMIT per
# MEANING_SEARCH_WINDOW_SECONDS per user, and per share link for visitors without an account.
MEANING_SEARCH_LIMIT = env_int("MEANING_SEARCH_LIMIT", 20, minimum=1)
MEANING_SEARCH_WINDOW_SECONDS = env_int("MEANING_SEARCH_WINDOW_SECONDS", 60, minimum=1)
VIDEODB_CLIENT_TOKEN_TTL = env_int("VIDEODB_CLIENT_TOKEN_TTL", 600, minimum=60)
# How fast "Play a simulated meeting" plays its script (1 = real time), emulator only.
SIMULATED_MEETING_SPEED = env_float("SIMULATED_MEETING_SPEED", 1.0, minimum=0.1)
# Meeting intelligence runs on VideoDB's own text generation; this names its model tier
# ("basic", "pro" or "ultra").
VIDEODB_TEXT_MODEL = env_str("VIDEODB_TEXT_MODEL", "basic") or "basic"
# The live brief (sessions_app/intelligence/brief.py): refreshed after BRIEF_MIN_NEW_CHARS of
# new final speech, or BRIEF_MAX_WAIT_SECONDS after the last brief when anything new was said;
# its prompt stays within BRIEF_PROMPT_BUDGET_CHARS (about 6,000 tokens); a generation claimed
# longer ago than BRIEF_CLAIM_STALE_SECONDS by a worker that never finished is taken over.
BRIEF_MIN_NEW_CHARS = env_int("BRIEF_MIN_NEW_CHARS", 400, minimum=1)
BRIEF_MAX_WAIT_SECONDS = env_int("BRIEF_MAX_WAIT_SECONDS", 60, minimum=1)
BRIEF_PROMPT_BUDGET_CHARS = env_int("BRIEF_PROMPT_BUDGET_CHARS", 24_000, minimum=4_000)
BRIEF_CLAIM_STALE_SECONDS = env_int("BRIEF_CLAIM_STALE_SECONDS", 300, minimum=10)
# "Ask the meeting": questions one person (or one share link) may ask per minute, and how
# long the request waits for VideoDB's answer before it stores the question as failed.
ASK_PER_MINUTE = env_int("ASK_PER_MINUTE", 5, minimum=1)
ASK_DEADLINE_SECONDS = env_float("ASK_DEADLINE_SECONDS", 20.0, minimum=1.0)

# --- Static files ------------------------------------------------------------------------

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(VAR_DIR / "static")))
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# --- Security ----------------------------------------------------------------------------

SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0, minimum=0)
if env_bool("SECURE_PROXY_SSL_HEADER", False):
    # Only behind a proxy that always sets (and strips client copies of) this header.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Behind a load balancer every request arrives from the balancer's address, and the sign-in
# limit per address (LOGIN_ADDRESS_FAILURE_LIMIT) would count every user as one. Naming the
# header the balancer sets to the client's address (nginx: X-Real-IP) makes Daphne take the
# client's address from it (copilot/runtime.py). Only behind a proxy that always sets it:
# otherwise a client picks its own address.
FORWARDED_ADDRESS_HEADER = env_str("FORWARDED_ADDRESS_HEADER")
if not all(char.isascii() and (char.isalnum() or char == "-") for char in FORWARDED_ADDRESS_HEADER):
    raise ImproperlyConfigured(
        f"FORWARDED_ADDRESS_HEADER must be a header name such as X-Real-IP; "
        f"got {FORWARDED_ADDRESS_HEADER!r}"
    )

# No CDN and no inline code: scripts, styles and sockets come from this origin only, and the
# few inline <script> tags carry the per-response nonce.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF],
    "media-src": [CSP.SELF, "https:", "blob:"],
    "frame-ancestors": [CSP.NONE],
    "form-action": [CSP.SELF],
    "base-uri": [CSP.NONE],
    "object-src": [CSP.NONE],
}

# --- Internationalisation ----------------------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# --- Logging -----------------------------------------------------------------------------

LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
if LOG_LEVEL not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
    raise ImproperlyConfigured(
        f"LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL; got {LOG_LEVEL!r}"
    )
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    # Webhook URLs carry their secret; Django logs the path of every 4xx (copilot/logredact.py).
    "filters": {"redact_secrets": {"()": "copilot.logredact.RedactWebhookSecrets"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["redact_secrets"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        "daphne": {"level": "WARNING"},
    },
}
