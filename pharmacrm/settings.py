"""Settings: one env-driven module, safe defaults for the embedded (SQLite) mode."""

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent


def env(name: str, default: str | None = None) -> str | None:
    """An environment variable, or the contents of the file named by NAME_FILE."""
    if f"{name}_FILE" in os.environ:
        try:
            return Path(os.environ[f"{name}_FILE"]).read_text().strip()
        except OSError as e:  # a secret that is not mounted: say which one, not a traceback of this module
            raise ImproperlyConfigured(
                f"{name}_FILE: {os.environ[f'{name}_FILE']} cannot be read ({e.strerror or e})."
            ) from None
    return os.environ.get(name, default)


def envbool(name: str, default: bool) -> bool:
    value = env(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def envint(name: str, default: int) -> int:
    value = env(name)
    if value in (None, ""):
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {value!r}.") from None


VAR_DIR = Path(env("PHARMACRM_VAR_DIR", str(BASE_DIR / "var"))).resolve()
# What this process writes — the SQLite database (with the sessions that passed the second factor), uploaded
# documents, mail, logs, backups — is for the account that runs it only, not for every local user
os.umask(0o077)
VAR_DIR.mkdir(parents=True, exist_ok=True)
try:
    VAR_DIR.chmod(0o700)  # files written before this release stay 0644: the closed directory shields them
except OSError:  # a directory owned by another account (a read-only deployment): left as its owner set it
    pass

DEBUG = envbool("DEBUG", False)
# Production is signalled by DATABASE_URL or PHARMACRM_PRODUCTION; then secrets must be given.
PRODUCTION = envbool("PHARMACRM_PRODUCTION", False)


def _local_secret(name: str, nbytes: int = 48) -> str:
    """A secret kept in var/ for the embedded mode, created on first use."""
    import secrets

    path = VAR_DIR / name
    if not path.exists():  # processes starting at once on a new installation share the first one written
        from pharmacrm.core.privatefile import create_once

        create_once(path, secrets.token_urlsafe(nbytes))
    return path.read_text().strip()


SECRET_KEY = env("SECRET_KEY") or _local_secret("secret-key")

ALLOWED_HOSTS = [h for h in (env("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver") or "").split(",") if h]
CSRF_TRUSTED_ORIGINS = [o for o in (env("CSRF_TRUSTED_ORIGINS", "") or "").split(",") if o]

# No django.contrib.admin: it would show every user's TOTP secret (django-otp's device pages) and change roles
# and second factors outside the audit trail; users, roles and enrolment codes are managed on the Users pages.
# Django's form and widget templates rendered by Jinja2 (a third of a form page's CPU time with Django's own)
FORM_RENDERER = "pharmacrm.core.form_renderer.FormRenderer"

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "huey.contrib.djhuey",
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "pharmacrm.core",
    "pharmacrm.customers",
    "pharmacrm.servicedesk",
    "pharmacrm.notify",
    "pharmacrm.engagement",
    "pharmacrm.safety",
    "pharmacrm.sales",
    "pharmacrm.keyaccounts",
    "pharmacrm.reports",
    "pharmacrm.cooperation",
    "pharmacrm.loyalty",
    "pharmacrm.market",
    "pharmacrm.training",
    "pharmacrm.licences",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "pharmacrm.core.middleware.RequestIdMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "pharmacrm.core.middleware.DatabaseBusyMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "pharmacrm.core.middleware.HtmxSignInMiddleware",
    "pharmacrm.core.middleware.SecondFactorMiddleware",
    "pharmacrm.core.middleware.UserLanguageMiddleware",
    "pharmacrm.core.middleware.NulCharacterMiddleware",  # in the reader's language, before any view reads the query
    "pharmacrm.core.idempotency.IdempotencyMiddleware",  # after the user and language are known
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "pharmacrm.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "pharmacrm" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.i18n",
                "pharmacrm.core.context_processors.navigation",
                "pharmacrm.notify.context_processors.bell",
            ],
        },
    },
]

WSGI_APPLICATION = "pharmacrm.wsgi.application"

# --- Database: SQLite (WAL) under var/ by default, PostgreSQL when DATABASE_URL is set.
DATABASE_URL = env("DATABASE_URL")
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=envint("CONN_MAX_AGE", 60))}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": env("SQLITE_PATH", str(VAR_DIR / "pharmacrm.sqlite3")),
            "OPTIONS": {
                # IMMEDIATE serialises writers up front instead of failing mid-transaction with
                # "database is locked"; WAL lets readers go on while one writer works.
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
                # Python keeps this many prepared statements per connection (128 by default); an import's look-ups
                # of up to 30,000 codes each are statements of their own, each holding its memory: 128 of them took
                # an order import of a shuffled 1 M-line file to 507 MiB, 32 to 382 MiB (docs/benchmarks.md)
                "cached_statements": envint("SQLITE_CACHED_STATEMENTS", 32),
                # Page cache per connection (anonymous memory) and memory-mapped reads (file pages, which
                # count in a worker's RSS too): sized so a web worker stays under 200 MB at a million
                # people (docs/benchmarks.md); raise them on a machine with memory to spare.
                "init_command": (
                    "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
                    f"PRAGMA foreign_keys=ON; PRAGMA cache_size=-{envint('SQLITE_CACHE_MB', 32) * 1024}; "
                    f"PRAGMA temp_store=MEMORY; PRAGMA mmap_size={envint('SQLITE_MMAP_MB', 0) * 2**20};"
                ),
            },
            "TEST": {"NAME": env("SQLITE_TEST_PATH")} if env("SQLITE_TEST_PATH") else {},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "core.User"

# The cache holds the API's throttle counters (20 token requests a minute per address): in the database, so
# that every web process counts the same requests (a per-process memory cache let 4 gunicorn workers take
# 80). Created by migration core 0007; nothing else in the application caches.
CACHES = {"default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "pharmacrm_cache"}}
# look-ups by a whole phone number or e-mail address an hour, per user who sees personal data masked
# (customers.search.check_contact_look_up): enough to find each caller, too few to unmask a number by trying
PHARMACRM_CONTACT_LOOK_UPS_PER_HOUR = envint("PHARMACRM_CONTACT_LOOK_UPS_PER_HOUR", 60)

# --- Background work: Huey on SQLite by default, Redis when REDIS_URL is set.
HUEY_IMMEDIATE = envbool("HUEY_IMMEDIATE", False)
if env("REDIS_URL"):
    HUEY = {"huey_class": "huey.RedisHuey", "name": "pharmacrm", "url": env("REDIS_URL"), "immediate": HUEY_IMMEDIATE}
else:
    HUEY = {
        "huey_class": "huey.SqliteHuey",
        "name": "pharmacrm",
        "filename": str(VAR_DIR / "huey.sqlite3"),
        "immediate": HUEY_IMMEDIATE,
    }
HUEY["consumer"] = {"workers": envint("HUEY_WORKERS", 2), "worker_type": "thread"}

# --- Passwords and login
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    # Django's similarity check, and no password containing the user name (agentagent, agent2026agent2026)
    {"NAME": "pharmacrm.core.passwords.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    "pharmacrm.core.backends.LockoutBackend",  # django-axes' lockout, telling a locked account from a wrong password
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = envint("LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = envint("LOGIN_COOLOFF_MINUTES", 15) / 60  # hours
# Lock by user name, not IP: hospitals and call centres share one outgoing address, and a
# per-IP lockout would lock a whole office out after one person's typos.
AXES_LOCKOUT_PARAMETERS = ["username"]
SILENCED_SYSTEM_CHECKS = ["axes.W006"]
# Failures are cleared once a sign-in is complete, not at the password step: for the roles with a second factor
# that is after the one-time code (core.signals.forget_failed_sign_ins), else re-entering the password would
# clear the wrong codes counted so far and they could never reach the limit.
AXES_RESET_ON_SUCCESS = False
AXES_LOCKOUT_CALLABLE = "pharmacrm.core.views.lockout"
# a name that is no account's is counted and kept as a keyed digest, never as typed (it may be a password typed into
# the user-name field): core.signals.lockout_username
AXES_USERNAME_CALLABLE = "pharmacrm.core.signals.lockout_username"
# Axes keeps each failed attempt's form data in its table; besides the user name and the password it masks
# by default, the forms whose failures count as failed sign-ins hold secrets too: the present and the new
# password (password change), a mistyped enrolment code (one character away from a still valid one) and the
# one-time codes.
AXES_SENSITIVE_PARAMETERS = [
    "username", "ip_address", "old_password", "new_password1", "new_password2", "enrolment_code", "code", "otp",
]  # fmt: skip
AXES_VERBOSE = False
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
OTP_TOTP_ISSUER = "PharmaCRM"
# How long a second-factor enrolment code issued by an administrator stays valid.
OTP_ENROLMENT_HOURS = envint("OTP_ENROLMENT_HOURS", 72)

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = envint("SESSION_COOKIE_AGE", 8 * 3600)
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
CSRF_COOKIE_HTTPONLY = False  # htmx reads it from the cookie-less header template tag, not JS
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
CSRF_FAILURE_VIEW = "pharmacrm.core.views.csrf_failure"  # the product's 403 page, translated
if PRODUCTION:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- i18n: Simplified Chinese first
LANGUAGE_CODE = "zh-hans"
LANGUAGES = [("zh-hans", "简体中文"), ("en", "English"), ("zh-hant", "繁體中文")]
LOCALE_PATHS = [BASE_DIR / "pharmacrm" / "locale"]
USE_I18N = True
USE_TZ = True
TIME_ZONE = "Asia/Shanghai"

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "pharmacrm" / "static"]
MEDIA_ROOT = VAR_DIR / "files"  # never under the web root; served only through access checks
FILE_UPLOAD_PERMISSIONS = 0o600  # Django's default, 0o644, would let every local user read prescriptions
FILE_UPLOAD_DIRECTORY_PERMISSIONS = 0o700
STORAGES = {
    # no location of its own: the documents live in MEDIA_ROOT, the directory backups archive (core.backup)
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
IMPORT_MAX_BYTES = envint("IMPORT_MAX_BYTES", 50 * 1024 * 1024)

# --- Personal-data encryption key ring (AES-GCM) and blind-index key (HMAC-SHA256).
# PHARMACRM_KEYRING (or _FILE) holds JSON: {"active": "k1", "keys": {"k1": "<b64 32 bytes>"}, "index_key": "<b64>"}
PHARMACRM_KEYRING_PATH = Path(env("PHARMACRM_KEYRING_PATH", str(VAR_DIR / "keyring.json")))

# --- API
REST_FRAMEWORK = {
    "VIEW_NAME_FUNCTION": "pharmacrm.core.api_utils.view_name",  # translated endpoint names (OPTIONS)
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "pharmacrm.core.api_auth.TokenAuthentication",
        "pharmacrm.core.api_auth.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "pharmacrm.core.api_utils.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "pharmacrm.core.api_utils.StableOrdering",  # unknown fields refused; ties in id order
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "pharmacrm.core.api_utils.exception_handler",
    "DEFAULT_PARSER_CLASSES": [
        "pharmacrm.core.parsers.JSONParser",  # refuses JSON nested too deep instead of failing with a 500
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_THROTTLE_RATES": {"token": "20/min"},
}
API_TOKEN_LIFETIME_HOURS = envint("API_TOKEN_LIFETIME_HOURS", 12)
SPECTACULAR_SETTINGS = {
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "pharmacrm.core.api_schema.document_errors",  # the 400 shape and {"detail"} on every operation
    ],
    "TITLE": "PharmaCRM API",
    "DESCRIPTION": "Customer master data, search, consents, audit trail and administration.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # choice sets used under several field names (or names used by several sets) get one component each
    "ENUM_NAME_OVERRIDES": {
        "TicketChannelEnum": "pharmacrm.servicedesk.choices.Channel",
        "StageActionKindEnum": "pharmacrm.engagement.models.StageActionKind",
        "TicketStatusEnum": "pharmacrm.servicedesk.choices.Status",
        "TicketPriorityEnum": "pharmacrm.servicedesk.choices.Priority",
        "TicketComplexityEnum": "pharmacrm.servicedesk.choices.Complexity",
        "SlaUnitEnum": "pharmacrm.servicedesk.models.SlaPolicy.Unit",
        "CustomerTierEnum": "pharmacrm.customers.choices.Tier",
        "ActionStatusEnum": "pharmacrm.servicedesk.choices.ActionStatus",
        "SurveyChannelEnum": "pharmacrm.servicedesk.choices.SurveyChannel",
        "LowScoreEnum": "pharmacrm.servicedesk.choices.LowScore",
        "ComplaintImpactEnum": "pharmacrm.servicedesk.choices.Impact",
        "NotifyDeliveryStatusEnum": "pharmacrm.notify.models.Delivery.Status",
        "NotifyDeliveryChannelEnum": "pharmacrm.notify.models.Delivery.Channel",
        "WebhookFormatEnum": "pharmacrm.notify.models.WebhookEndpoint.Format",
        "CooperationAgreementTypeEnum": "pharmacrm.cooperation.models.AgreementType",
        "CooperationAgreementStatusEnum": "pharmacrm.cooperation.models.AgreementStatus",
        "CooperationProjectStatusEnum": "pharmacrm.cooperation.models.ProjectStatus",
        "CooperationTaskStatusEnum": "pharmacrm.cooperation.models.TaskStatus",
        "CooperationSettlementStatusEnum": "pharmacrm.cooperation.models.SettlementStatus",
        "LicenceKindEnum": "pharmacrm.licences.models.LicenceKind",
        "LicenceScopeEnum": "pharmacrm.licences.models.Scope",
        "LoyaltyLevelEnum": "pharmacrm.loyalty.models.Level",
        "LoyaltyMemberStatusEnum": "pharmacrm.loyalty.models.MemberStatus",
        "LoyaltyEntryKindEnum": "pharmacrm.loyalty.models.EntryKind",
        "LoyaltyRewardKindEnum": "pharmacrm.loyalty.models.RewardKind",
        "LoyaltyRedemptionStatusEnum": "pharmacrm.loyalty.models.RedemptionStatus",
        "LoyaltyReferralStatusEnum": "pharmacrm.loyalty.models.ReferralStatus",
        "MarketVbpStatusEnum": "pharmacrm.market.models.VbpStatus",
        "MarketSourceEnum": "pharmacrm.market.models.Source",
        "SourceEnum": "pharmacrm.customers.choices.Source",  # its name before the market's `source` came
        "MarketIntelKindEnum": "pharmacrm.market.models.IntelKind",
        "MarketImportanceEnum": "pharmacrm.market.models.Importance",
        "TrainingCourseStatusEnum": "pharmacrm.training.models.CourseStatus",
        "TrainingQuestionKindEnum": "pharmacrm.training.models.QuestionKind",
        "StageEnum": "pharmacrm.customers.choices.Stage",  # a customer's lifecycle stage, named as before opportunities'
        "OpportunityStageEnum": "pharmacrm.sales.models.Opportunity.Stage",
        # a user's interface language and an answer template's (the languages by their own names), and the language
        # a customer is written to (a person's preferred one, a ticket's requester's: named in the reader's language)
        "LanguageEnum": "pharmacrm.settings.LANGUAGES",
        "PreferredLanguageEnum": "pharmacrm.customers.choices.PreferredLanguage",
        "AmendmentStateEnum": "pharmacrm.core.amendments.STATES",  # an agreement amendment's: applied, waiting, lapsed
    },
}

# --- E-mail: replies and notifications go out by SMTP; the worker polls an IMAP mailbox for new mail.
EMAIL_BACKEND = env("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env("EMAIL_HOST", "127.0.0.1")
EMAIL_PORT = envint("EMAIL_PORT", 25)
EMAIL_HOST_USER = env("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = envbool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = envbool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = envint("EMAIL_TIMEOUT", 20)
EMAIL_FILE_PATH = env("EMAIL_FILE_PATH", str(VAR_DIR / "mail"))  # for the file-based backend (`make run`)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", "PharmaCRM <service@pharmacrm.localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
# the service mailbox (empty IMAP_HOST: no polling)
SERVICEDESK_IMAP_HOST = env("SERVICEDESK_IMAP_HOST", "")
SERVICEDESK_IMAP_PORT = envint("SERVICEDESK_IMAP_PORT", 993)
SERVICEDESK_IMAP_SSL = envbool("SERVICEDESK_IMAP_SSL", True)
SERVICEDESK_IMAP_USER = env("SERVICEDESK_IMAP_USER", "")
SERVICEDESK_IMAP_PASSWORD = env("SERVICEDESK_IMAP_PASSWORD", "")
SERVICEDESK_IMAP_FOLDER = env("SERVICEDESK_IMAP_FOLDER", "INBOX")
SERVICEDESK_MAIL_FROM = env("SERVICEDESK_MAIL_FROM", DEFAULT_FROM_EMAIL)
# a new mail's answers go to its Reply-To when it has one (docs/servicedesk.md, mail policies); off: always to From
SERVICEDESK_MAIL_USE_REPLY_TO = envbool("SERVICEDESK_MAIL_USE_REPLY_TO", True)
# the address links in e-mails point at (status links, surveys)
PUBLIC_BASE_URL = env("PUBLIC_BASE_URL", "http://127.0.0.1:8000")

# --- Notifications: e-mail and webhook deliveries are retried 1, 2, 4 … minutes apart (at most an hour)
NOTIFY_MAX_ATTEMPTS = envint("NOTIFY_MAX_ATTEMPTS", 8)
NOTIFY_WEBHOOK_TIMEOUT = envint("NOTIFY_WEBHOOK_TIMEOUT", 10)
NOTIFY_MAIL_FROM = env("NOTIFY_MAIL_FROM", DEFAULT_FROM_EMAIL)

# --- Ticket attachments (stored under MEDIA_ROOT, served only through access checks)
ATTACHMENT_MAX_BYTES = envint("ATTACHMENT_MAX_BYTES", 20 * 1024 * 1024)
ATTACHMENT_TYPES = {
    "application/pdf": (".pdf",),
    "image/jpeg": (".jpg", ".jpeg"),
    "image/png": (".png",),
    "text/plain": (".txt",),
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": (".docx",),
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": (".xlsx",),
}

# --- Public web form: submissions per client address per hour
SERVICEDESK_WEB_FORM_PER_HOUR = envint("SERVICEDESK_WEB_FORM_PER_HOUR", 5)
SERVICEDESK_SURVEY_DAYS = envint("SERVICEDESK_SURVEY_DAYS", 14)
# a survey campaign does not ask a person who answered any survey (a revisit or a campaign's) in these last days
SERVICEDESK_CAMPAIGN_QUIET_DAYS = envint("SERVICEDESK_CAMPAIGN_QUIET_DAYS", 30)
# a survey campaign's contact who has not answered this many days after the mail is reminded once (0: never)
SERVICEDESK_CAMPAIGN_REMINDER_DAYS = envint("SERVICEDESK_CAMPAIGN_REMINDER_DAYS", 7)
# behind a reverse proxy that sets X-Forwarded-For, the rate limit counts the address it forwards
SERVICEDESK_TRUST_X_FORWARDED_FOR = envbool("SERVICEDESK_TRUST_X_FORWARDED_FOR", False)

# --- Key-account programme: the review is cross-department (seed 001 §3.1). Besides marketing's own opinion,
# a proposal needs those of at least this many other departments (sales, service, QA, R&D; 0–4) before it
# goes to leadership.
KEYACCOUNTS_REVIEW_OTHER_DEPARTMENTS = envint("KEYACCOUNTS_REVIEW_OTHER_DEPARTMENTS", 1)

# --- Purchases: a line without a payment due date (应付款日期) falls due this many days after its order date
# (overdue amounts, ageing, lateness; docs/purchases.md)
PHARMACRM_DEFAULT_PAYMENT_TERM_DAYS = envint("PHARMACRM_DEFAULT_PAYMENT_TERM_DAYS", 90)
# cooperation agreements: the owner is reminded this many days before an agreement in force ends (docs/cooperation.md)
COOPERATION_RENEWAL_NOTICE_DAYS = envint("COOPERATION_RENEWAL_NOTICE_DAYS", 30)
# customers' licences (docs/licences.md): the owner is told this many days before a licence ends; the licences each
# customer type must hold (a verified one in force) before it is sold to — GSP's check of the buyer's qualification
LICENCE_NOTICE_DAYS = envint("LICENCE_NOTICE_DAYS", 60)
LICENCES_REQUIRED = {
    "pharmacy": ("business", "drug_trading"),
    "distributor": ("business", "drug_trading"),
    "hospital": ("medical_practice",),
    "clinic": ("medical_practice",),
    "township": ("medical_practice",),
    "community": ("medical_practice",),
}
# --- Loyalty programme (docs/loyalty.md): who may join (institution types; never individual people — rewards to
# hospitals and their staff are a bribery risk), whether a first paid purchase joins an eligible customer by itself,
# points per ¥100 paid, the levels' thresholds on the last 12 months' purchases (yuan), when points expire, what a
# converted referral earns
LOYALTY_ELIGIBLE_TYPES = [t.strip() for t in (env("LOYALTY_ELIGIBLE_TYPES") or "pharmacy,distributor,clinic").split(",")
                          if t.strip()]  # fmt: skip
LOYALTY_AUTO_JOIN = envbool("LOYALTY_AUTO_JOIN", False)
LOYALTY_POINTS_PER_100_YUAN = envint("LOYALTY_POINTS_PER_100_YUAN", 1)
LOYALTY_SILVER_YUAN = envint("LOYALTY_SILVER_YUAN", 100_000)
LOYALTY_GOLD_YUAN = envint("LOYALTY_GOLD_YUAN", 500_000)
LOYALTY_PLATINUM_YUAN = envint("LOYALTY_PLATINUM_YUAN", 2_000_000)
LOYALTY_POINTS_EXPIRE_MONTHS = envint("LOYALTY_POINTS_EXPIRE_MONTHS", 24)
LOYALTY_REFERRAL_POINTS = envint("LOYALTY_REFERRAL_POINTS", 500)
# the customer lifecycle: a customer entering a stage again within this many days gets its earlier stage tasks back
# (docs/lifecycle.md); customer lifetime value: the 12-month retention when none is measured, the monthly discount
# rate (docs/clv.md)
LIFECYCLE_REENTRY_DAYS = envint("LIFECYCLE_REENTRY_DAYS", 30)
CLV_RETENTION = env("CLV_RETENTION", "0.8")
CLV_MONTHLY_DISCOUNT = env("CLV_MONTHLY_DISCOUNT", "0.008")
# --- Purchases: an overdue total this small (in fen: 100 = ¥1.00) that is also under 0.1 % of the customer's
# purchases in the window (a rounding difference the ERP left open) does not make the credit status or the
# evaluation's credit measure worse; the arrears figures still show it exactly (docs/purchases.md)
PHARMACRM_CREDIT_MATERIALITY_FEN = envint("PHARMACRM_CREDIT_MATERIALITY_FEN", 100)

# --- Backups
BACKUP_DIR = Path(env("PHARMACRM_BACKUP_DIR", str(VAR_DIR / "backups")))
BACKUP_KEEP_DAILY = envint("BACKUP_KEEP_DAILY", 14)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "filters": {
        "client_errors": {"()": "pharmacrm.core.logfilters.ClientErrorsWithoutTraceback"},
        "mask_addresses": {"()": "pharmacrm.core.logfilters.MaskAddresses"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain",
                             "filters": ["client_errors", "mask_addresses"]}},  # fmt: skip
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "WARNING")},
    "loggers": {"pharmacrm": {"level": env("LOG_LEVEL", "INFO")}},
}

# Stop strings marked for translation in settings from being flagged unused.
_ = _

# --- safety (E2B(R3) sender and receiver, PDF font) ---
# The company as it appears on key-account service agreements (PDF): names in Chinese and English, credit code, address.
PHARMACRM_COMPANY_NAME = env("PHARMACRM_COMPANY_NAME", "")
PHARMACRM_COMPANY_NAME_EN = env("PHARMACRM_COMPANY_NAME_EN", "")
PHARMACRM_COMPANY_CREDIT_CODE = env("PHARMACRM_COMPANY_CREDIT_CODE", "")
PHARMACRM_COMPANY_ADDRESS = env("PHARMACRM_COMPANY_ADDRESS", "")
SAFETY_SENDER_ORGANISATION = env("SAFETY_SENDER_ORGANISATION", "")  # C.3.2; empty: the demo company's name
SAFETY_SENDER_ORG_CODE = env("SAFETY_SENDER_ORG_CODE", "")  # the company part of C.1.1
SAFETY_SENDER_ID = env("SAFETY_SENDER_ID", "")  # N.1.3
SAFETY_RECEIVER_ID = env("SAFETY_RECEIVER_ID", "")  # N.1.4
SAFETY_PARTNER_RECEIVER_ID = env("SAFETY_PARTNER_RECEIVER_ID", "")  # N.1.4 of an ICSR for a licensing partner
# the largest E2B(R3) file taken in (an ICSR batch, an acknowledgement: the import page, the API, the command line)
# and released by the export (a batch that carries copies of articles): one limit, so what one PharmaCRM exports
# another imports
ICSR_MAX_BYTES = envint("ICSR_MAX_BYTES", 50 * 1024 * 1024)
PHARMACRM_PDF_FONT = env("PHARMACRM_PDF_FONT", "")
