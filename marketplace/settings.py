"""Settings for the marketplace project.

This is the only module that reads the environment. Read it top to bottom:
every variable has a default that runs the whole app on one machine with no
services (SQLite, console email, the ``local`` payment processor and an
embedded Celery broker on a SQLite file). Production sets ``DEBUG=0`` and the
variables documented in README.md; secrets have no production default.
"""

import base64
import hashlib
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from marketplace.csp import content_security_policy

env = environ.Env()

BASE_DIR = Path(__file__).resolve().parent.parent
# Runtime files of the embedded defaults (SQLite databases, uploads).
VAR_DIR = Path(env.str("VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

# --- Core ----------------------------------------------------------------

DEBUG = env.bool("DEBUG", default=True)

if DEBUG:
    SECRET_KEY = env.str("SECRET_KEY", default="dev-only-insecure-key-do-not-use-in-production")
else:
    try:
        SECRET_KEY = env.str("SECRET_KEY")
    except ImproperlyConfigured as exc:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.") from exc

ALLOWED_HOSTS = env.list(
    "ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"] if DEBUG else []
)
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# A problem (csrf_failed) under /api/, Django's page elsewhere.
CSRF_FAILURE_VIEW = "marketplace.views.errors.csrf_failure"

INSTALLED_APPS = [
    "marketplace.admin_site.OperatorAdminConfig",  # django.contrib.admin, with a dashboard
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_celery_beat",
    "django_countries",
    "django_filters",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "accounts",
    "payments",
    "marketplace",
]

MIDDLEWARE = [
    # First: every answer carries a Request-Id, and every log line of a request has it.
    "marketplace.kernel.request_ids.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    # Last, as django-axes asks: turns a locked-out login into its lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "marketplace.urls"
WSGI_APPLICATION = "marketplace.wsgi.application"
ASGI_APPLICATION = "marketplace.asgi.application"

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
                "accounts.context_processors.roles",
                "marketplace.context_processors.cart",
            ],
        },
    },
]

# --- Database --------------------------------------------------------------

DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web server, the Celery worker and beat share one SQLite file:
    # take the write lock at BEGIN and wait for it instead of failing.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"transaction_mode": "IMMEDIATE", "timeout": 20}
    )
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Accounts ----------------------------------------------------------------

# The covering index on ledger entries stores the amount in the index on PostgreSQL;
# SQLite (development, fast tests) builds it without, which is fine there.
SILENCED_SYSTEM_CHECKS = ["models.W040"]

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    # Refuses a login while its email and address are locked out (django-axes).
    "axes.backends.AxesStandaloneBackend",
    # Django's ModelBackend, reading with the user what every page's header shows (their
    # seller profile, their cart's count): one query a request instead of three.
    "marketplace.auth_backends.ShopUserBackend",
    # Reads the user of sessions signed in before ShopUserBackend (their session names
    # this backend); never asked a password (ShopUserBackend ends every login).
    "django.contrib.auth.backends.ModelBackend",
]
# Login throttling: after AXES_FAILURE_LIMIT wrong passwords for one email from one
# address (site and admin logins alike), that pair is locked out for
# AXES_COOLOFF_MINUTES; a right password before then resets the count. Attempts are
# kept in the database (admin: Axes), so every web process sees them.
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_USERNAME_CALLABLE = "accounts.login_throttling.attempted_email"
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "accounts/locked_out.html"
AXES_SENSITIVE_PARAMETERS = ["password", "password1", "password2", "new_password1"]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "marketplace:home"
LOGOUT_REDIRECT_URL = "marketplace:home"

# Argon2 for new and changed passwords; a PBKDF2 hash from before is upgraded to
# Argon2 the next time its owner logs in.
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Internationalisation ------------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

# --- Static and uploaded files -------------------------------------------------

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(VAR_DIR / "staticfiles")))
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(VAR_DIR / "media")))
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
# Largest product image a seller may upload, in bytes.
PRODUCT_IMAGE_MAX_BYTES = env.int("PRODUCT_IMAGE_MAX_BYTES", default=5 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440

# --- Email ---------------------------------------------------------------------

# EMAIL_URL sets EMAIL_BACKEND, EMAIL_HOST, EMAIL_PORT, EMAIL_HOST_USER, ...
# (django-environ's documented way of spreading it into settings).
globals().update(env.email_url("EMAIL_URL", default="consolemail://"))
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Marketplace <no-reply@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- Security (production) -----------------------------------------------------

if not DEBUG:
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    # Load balancers and supervisors probe over plain HTTP inside the network.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^livez$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
    if env.bool("USE_X_FORWARDED_PROTO", default=False):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
# Sessions are written only when they change (Django's default, kept on purpose: never
# SESSION_SAVE_EVERY_REQUEST). Where the cache is shared (Redis), they are read from it
# and written through to the database (marketplace/sessions.py): no session query a
# request. Development's local-memory cache is per process, so there they stay in the
# database alone.
SESSION_SAVE_EVERY_REQUEST = False

# --- Payments --------------------------------------------------------------------

PAYMENTS_PROCESSORS = ("local", "stripe")
PAYMENTS_PROCESSOR = env.str("PAYMENTS_PROCESSOR", default="local")
if PAYMENTS_PROCESSOR not in PAYMENTS_PROCESSORS:
    raise ImproperlyConfigured(
        f"PAYMENTS_PROCESSOR must be one of {', '.join(PAYMENTS_PROCESSORS)}; "
        f"got {PAYMENTS_PROCESSOR!r}."
    )

# Content-Security-Policy (django-csp) on every page; Stripe.js only with Stripe.
CONTENT_SECURITY_POLICY = content_security_policy(PAYMENTS_PROCESSOR)

STRIPE_SECRET_KEY = env.str("STRIPE_SECRET_KEY", default="")
STRIPE_PUBLISHABLE_KEY = env.str("STRIPE_PUBLISHABLE_KEY", default="")
STRIPE_WEBHOOK_SECRET = env.str("STRIPE_WEBHOOK_SECRET", default="")
# The Connect endpoint (events of connected accounts) has its own signing secret.
STRIPE_CONNECT_WEBHOOK_SECRET = env.str("STRIPE_CONNECT_WEBHOOK_SECRET", default="")
STRIPE_API_BASE = env.str("STRIPE_API_BASE", default="https://api.stripe.com")
if PAYMENTS_PROCESSOR == "stripe":
    _missing = [
        name
        for name in ("STRIPE_SECRET_KEY", "STRIPE_PUBLISHABLE_KEY", "STRIPE_WEBHOOK_SECRET")
        if not globals()[name]
    ]
    if _missing:
        raise ImproperlyConfigured(
            f"PAYMENTS_PROCESSOR=stripe needs {', '.join(_missing)} to be set."
        )

# Money policies (docs/money.md). The hold settings are the platform default
# payout policy until an operator saves one (docs/payouts.md).
PAYMENTS_HOLD_DAYS = env.int("PAYMENTS_HOLD_DAYS", default=7)
PAYMENTS_RELEASE_ON_DELIVERY = env.bool("PAYMENTS_RELEASE_ON_DELIVERY", default=False)
PAYMENTS_REFUND_COMMISSION = env.bool("PAYMENTS_REFUND_COMMISSION", default=True)
# Tax included in the commission (e.g. VAT), in basis points; shown on statements.
PAYMENTS_COMMISSION_TAX_BPS = env.int("PAYMENTS_COMMISSION_TAX_BPS", default=0)
PAYMENTS_PROCESSOR_FEE_PAYER = env.str("PAYMENTS_PROCESSOR_FEE_PAYER", default="platform")
if PAYMENTS_PROCESSOR_FEE_PAYER not in ("platform", "sellers"):
    raise ImproperlyConfigured("PAYMENTS_PROCESSOR_FEE_PAYER must be 'platform' or 'sellers'.")
# Shards per platform ledger account: a posting adds to one of them, chosen by its
# idempotency key, so concurrent postings do not queue on one row (docs/decisions/0004).
LEDGER_BALANCE_SHARDS = env.int("LEDGER_BALANCE_SHARDS", default=16)
if not 1 <= LEDGER_BALANCE_SHARDS <= 1024:
    raise ImproperlyConfigured("LEDGER_BALANCE_SHARDS must be from 1 to 1024.")
# Fault injection for the local processor, for tests only: operation name to
# "timeout_before", "timeout_after" or "unavailable".
PAYMENTS_LOCAL_FAULTS: dict[str, str] = {}
# Unpaid orders are cancelled (and their stock released) after this long.
PAYMENTS_ORDER_EXPIRY_MINUTES = env.int("PAYMENTS_ORDER_EXPIRY_MINUTES", default=30)
# The hour (site time zone) the scheduled payout run goes (its beat schedule, editable
# in the admin, is 06:00 by default): sellers' expected payout days assume it.
PAYMENTS_PAYOUT_RUN_HOUR = env.int("PAYMENTS_PAYOUT_RUN_HOUR", default=6)
# Payout sends per second per worker (Celery rate limit syntax).
PAYMENTS_PAYOUT_RATE_LIMIT = env.str("PAYMENTS_PAYOUT_RATE_LIMIT", default="10/s")
# Sellers per chunk of a payout run: each chunk is one Celery task and one transaction.
PAYOUT_RUN_CHUNK_SIZE = env.int("PAYOUT_RUN_CHUNK_SIZE", default=500)
if PAYOUT_RUN_CHUNK_SIZE < 1:
    raise ImproperlyConfigured("PAYOUT_RUN_CHUNK_SIZE must be 1 or more.")
# Processor writes a second a payout run's sends are spread over, whatever the number of
# workers (Stripe allows 100 a second in live mode and 25 in test mode; a payout is two).
PAYMENTS_PROCESSOR_WRITES_PER_SECOND = env.int("PAYMENTS_PROCESSOR_WRITES_PER_SECOND", default=20)
if PAYMENTS_PROCESSOR_WRITES_PER_SECOND < 1:
    raise ImproperlyConfigured("PAYMENTS_PROCESSOR_WRITES_PER_SECOND must be 1 or more.")
# One processor call of a payout is under way at a time; after this long without an
# answer (a killed worker), the next attempt looks up what it did first.
PAYMENTS_PROCESSOR_CALL_LEASE_SECONDS = env.int(
    "PAYMENTS_PROCESSOR_CALL_LEASE_SECONDS", default=300
)
# A payout not through this long after it was sent stops for an operator (Stripe forgets
# idempotency keys after 24 hours).
PAYMENTS_PAYOUT_ATTENTION_HOURS = env.int("PAYMENTS_PAYOUT_ATTENTION_HOURS", default=23)
# Operators emailed about payouts that need them ("Name <email>, ..." or "email, ...").
ADMINS = [
    (address.split("<")[0].strip() or address.strip(), address.split("<")[-1].strip(" >"))
    for address in env.list("PAYMENTS_OPERATOR_EMAILS", default=[])
]
# Most units of one product in one order.
ORDER_MAX_QUANTITY = 1000
# The local processor's bank debits (test IBANs) settle after this many simulated days,
# each PAYMENTS_LOCAL_DAY_SECONDS long (a demo may make a day a few seconds).
PAYMENTS_LOCAL_DEBIT_DAYS = env.int("PAYMENTS_LOCAL_DEBIT_DAYS", default=3)
PAYMENTS_LOCAL_DAY_SECONDS = env.int("PAYMENTS_LOCAL_DAY_SECONDS", default=86400)
if PAYMENTS_LOCAL_DEBIT_DAYS < 0 or PAYMENTS_LOCAL_DAY_SECONDS < 1:
    raise ImproperlyConfigured(
        "PAYMENTS_LOCAL_DEBIT_DAYS must be 0 or more and PAYMENTS_LOCAL_DAY_SECONDS 1 or more."
    )

# Webhooks to integrators may go to plain HTTP and private addresses (dev and tests only).
OUTBOUND_WEBHOOKS_ALLOW_LOCAL = env.bool("OUTBOUND_WEBHOOKS_ALLOW_LOCAL", default=False)
# Fernet keys encrypting webhook endpoint secrets at rest (payments/webhook_secrets.py):
# the first encrypts, all decrypt. In development a key is derived from SECRET_KEY.
WEBHOOK_SECRET_KEYS = env.list("WEBHOOK_SECRET_KEYS", default=[])
if not WEBHOOK_SECRET_KEYS:
    if not DEBUG:
        raise ImproperlyConfigured("WEBHOOK_SECRET_KEYS must be set when DEBUG is off.")
    WEBHOOK_SECRET_KEYS = [
        base64.urlsafe_b64encode(
            hashlib.sha256(b"marketplace webhook secrets\0" + SECRET_KEY.encode()).digest()
        ).decode()
    ]
for _key in WEBHOOK_SECRET_KEYS:
    try:
        _valid = len(base64.urlsafe_b64decode(_key.encode())) == 32
    except ValueError:
        _valid = False
    if not _valid:
        raise ImproperlyConfigured(
            "WEBHOOK_SECRET_KEYS must be Fernet keys (32 bytes in url-safe base64)."
        )

# --- REST API (docs/api.md) --------------------------------------------------------

# The API's rate-limit counters live in the cache, which every web process must share
# or each one counts its own: Redis (CACHE_URL) by default when DEBUG is off. With
# DEBUG on (one development process), local memory.
CACHES = {
    "default": env.cache_url(
        "CACHE_URL", default="locmemcache://" if DEBUG else "redis://127.0.0.1:6379/2"
    )
}
if CACHES["default"]["BACKEND"].endswith("RedisCache"):
    # A cache that is down or unreachable costs a request at most a second per call
    # (the API's rate limits then fail open), never the kernel's two-minute timeout.
    CACHES["default"].setdefault("OPTIONS", {}).update(
        {"socket_connect_timeout": 1, "socket_timeout": 1}
    )
if CACHES["default"]["BACKEND"].endswith("RedisCache"):
    # Sessions read from the shared cache (see SESSION_SAVE_EVERY_REQUEST above).
    SESSION_ENGINE = "marketplace.sessions"
# The shop's pages run their reads (and writes) in one transaction a request: one commit
# instead of one per autocommit query. Not on SQLite, whose transactions take the write
# lock at BEGIN (IMMEDIATE, above): there a page would wait for the worker's writes.
SHOP_REQUEST_IN_ONE_TRANSACTION = DATABASES["default"]["ENGINE"] != "django.db.backends.sqlite3"
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.api_auth.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["marketplace.kernel.api.parsers.JSONParser"],
    # django-filter's, refusing an empty filter value (?status=) with a 400.
    "DEFAULT_FILTER_BACKENDS": ["marketplace.kernel.api.filters.StrictDjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "marketplace.kernel.api.pagination.CursorPagination",
    "DEFAULT_THROTTLE_CLASSES": [
        "marketplace.kernel.api.throttling.AnonRateThrottleFailOpen",
        "marketplace.kernel.api.throttling.UserRateThrottleFailOpen",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env.str("API_THROTTLE_ANON", default="120/min"),
        "user": env.str("API_THROTTLE_USER", default="1200/min"),
    },
    "EXCEPTION_HANDLER": "marketplace.kernel.api.errors.problem_exception_handler",
    # No serializer has this field: a 201's Location is never a field's value (a webhook
    # endpoint's receiver URL was); marketplace/kernel/api/locations.py sets it.
    "URL_FIELD_NAME": "api_url",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Marketplace API",
    "DESCRIPTION": "Shop, orders, commission rules, payouts, balances and the ledger. "
    "Amounts are integers in the currency's minor units (cents; yen). Errors are "
    "RFC 9457 problem details with a machine-readable `code`. POSTs that create or "
    "move money accept an `Idempotency-Key` header.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "marketplace.kernel.api.schema.add_problem_responses",
    ],
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "ENUM_NAME_OVERRIDES": {
        "OrderStatusEnum": "marketplace.models.orders.Order.Status",
        "SellerOrderStatusEnum": "marketplace.models.orders.SellerOrder.Status",
        "PayoutStatusEnum": "payments.models.payouts.Payout.Status",
        "RefundRequestStatusEnum": "payments.models.refund_requests.RefundRequest.Status",
    },
}

# --- Celery ----------------------------------------------------------------------
# The embedded defaults keep queued tasks and results in SQLite files through
# SQLAlchemy, so a worker and beat run with no broker server.

CELERY_BROKER_URL = env.str(
    "CELERY_BROKER_URL", default=f"sqla+sqlite:///{VAR_DIR / 'celery-broker.sqlite3'}"
)
CELERY_RESULT_BACKEND = env.str(
    "CELERY_RESULT_BACKEND", default=f"db+sqlite:///{VAR_DIR / 'celery-results.sqlite3'}"
)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_TASK_DEFAULT_QUEUE", default="celery")
CELERY_TASK_ALWAYS_EAGER = False
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_EXPIRES = 24 * 3600
# Nothing reads task results, and keeping one makes every publish subscribe to the
# result backend first, which, on a Redis that is down, hangs ~20 s and then raises
# (past the code that keeps refused tasks). Tasks that need a result say so.
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# On Redis, a task taken by a worker that died (SIGKILL, a lost machine) goes back to the
# queue after this many seconds unacknowledged. Keep it above the longest task (the
# payout run); tasks are idempotent, so a redelivery of a task still running is safe.
if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    _visibility_timeout = env.int("CELERY_VISIBILITY_TIMEOUT", default=3600)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": _visibility_timeout,
        # Look for such tasks every few seconds (one cheap sorted-set range query).
        "unacked_restore_interval": max(1, min(10, _visibility_timeout // 5)),
        "unacked_restore_throttle": 1,
        "socket_connect_timeout": 3,
        "socket_timeout": 5,  # a Redis that accepts but never answers
    }
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"

# --- Logging ---------------------------------------------------------------------

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"},
    },
    "filters": {"request_id": {"()": "marketplace.kernel.request_ids.RequestIdLogFilter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["request_id"],
        },
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}
