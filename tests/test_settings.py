"""Settings are read from the environment once, at start-up, so each case runs
Django in a fresh process with exactly the variables it names."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parent.parent
SETTINGS_VARS = {
    "DEBUG",
    "WEBHOOK_SECRET_KEYS",
    "SECRET_KEY",
    "ALLOWED_HOSTS",
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "CELERY_RESULT_BACKEND",
    "EMAIL_URL",
    "PAYMENTS_PROCESSOR",
    "STRIPE_SECRET_KEY",
    "STRIPE_PUBLISHABLE_KEY",
    "STRIPE_WEBHOOK_SECRET",
    "STRIPE_API_BASE",
    "VAR_DIR",
    "DJANGO_SETTINGS_MODULE",
}
PRODUCTION = {
    "DEBUG": "0",
    "SECRET_KEY": "k3y-" + "x7Gq2Lw9Zr4Tn8Vb1Mc6Hd5Js0Pf3Ky" * 2,
    "ALLOWED_HOSTS": "shop.example.com",
    "WEBHOOK_SECRET_KEYS": "zR4bQm9sV0kq3VYwqvN1aM3Yc2pHjz5X8tWbE6uL0dA=",
}
DUMP = """
import json, django
django.setup()
from django.conf import settings as s
db = s.DATABASES["default"]
print(json.dumps({
    "DEBUG": s.DEBUG,
    "ENGINE": db["ENGINE"], "NAME": str(db["NAME"]), "HOST": db.get("HOST", ""),
    "EMAIL_BACKEND": s.EMAIL_BACKEND, "EMAIL_HOST": s.EMAIL_HOST,
    "PAYMENTS_PROCESSOR": s.PAYMENTS_PROCESSOR, "STRIPE_API_BASE": s.STRIPE_API_BASE,
    "CELERY_BROKER_URL": s.CELERY_BROKER_URL, "ALLOWED_HOSTS": s.ALLOWED_HOSTS,
    "STATICFILES": s.STORAGES["staticfiles"]["BACKEND"],
}))
"""


def run(args, tmp_path, **variables):
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS_VARS}
    env |= {"DJANGO_SETTINGS_MODULE": "marketplace.settings", "VAR_DIR": str(tmp_path)}
    env |= variables
    return subprocess.run(
        [sys.executable, *args],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def dump(tmp_path, **variables):
    result = run(["-c", DUMP], tmp_path, **variables)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_with_nothing_set_everything_is_embedded(tmp_path):
    values = dump(tmp_path)

    assert values["DEBUG"] is True
    assert values["ENGINE"] == "django.db.backends.sqlite3"
    assert values["NAME"] == str(tmp_path / "db.sqlite3")
    assert values["EMAIL_BACKEND"] == "django.core.mail.backends.console.EmailBackend"
    assert values["PAYMENTS_PROCESSOR"] == "local"
    assert values["CELERY_BROKER_URL"] == f"sqla+sqlite:///{tmp_path}/celery-broker.sqlite3"
    assert values["ALLOWED_HOSTS"] == ["127.0.0.1", "localhost", "[::1]"]
    assert values["STRIPE_API_BASE"] == "https://api.stripe.com"


def test_service_urls_are_read_from_the_environment(tmp_path):
    values = dump(
        tmp_path,
        DATABASE_URL="postgres://shop:pw@db.internal:5432/shop",
        EMAIL_URL="smtp+tls://mailer:pw@smtp.example.com:587",
        CELERY_BROKER_URL="redis://cache.internal:6379/0",
        STRIPE_API_BASE="http://127.0.0.1:12111",
    )

    assert (values["ENGINE"], values["NAME"], values["HOST"]) == (
        "django.db.backends.postgresql",
        "shop",
        "db.internal",
    )
    assert values["EMAIL_BACKEND"] == "django.core.mail.backends.smtp.EmailBackend"
    assert values["EMAIL_HOST"] == "smtp.example.com"
    assert values["CELERY_BROKER_URL"] == "redis://cache.internal:6379/0"
    assert values["STRIPE_API_BASE"] == "http://127.0.0.1:12111"


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    result = run(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"], tmp_path, **PRODUCTION
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout
    assert dump(tmp_path, **PRODUCTION)["STATICFILES"] == (
        "whitenoise.storage.CompressedManifestStaticFilesStorage"
    )


def test_production_without_a_secret_key_refuses_to_start(tmp_path):
    result = run(["manage.py", "check"], tmp_path, DEBUG="0", ALLOWED_HOSTS="shop.example.com")

    assert result.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off." in result.stderr


def test_an_unknown_processor_refuses_to_start(tmp_path):
    result = run(["manage.py", "check"], tmp_path, PAYMENTS_PROCESSOR="paypal")

    assert result.returncode != 0
    assert "PAYMENTS_PROCESSOR must be one of local, stripe; got 'paypal'." in result.stderr


def test_stripe_needs_its_keys(tmp_path):
    result = run(
        ["manage.py", "check"], tmp_path, PAYMENTS_PROCESSOR="stripe", STRIPE_SECRET_KEY="sk_test_1"
    )
    assert result.returncode != 0
    assert "needs STRIPE_PUBLISHABLE_KEY, STRIPE_WEBHOOK_SECRET" in result.stderr

    values = dump(
        tmp_path,
        PAYMENTS_PROCESSOR="stripe",
        STRIPE_SECRET_KEY="sk_test_1",
        STRIPE_PUBLISHABLE_KEY="pk_test_1",
        STRIPE_WEBHOOK_SECRET="whsec_1",
    )
    assert values["PAYMENTS_PROCESSOR"] == "stripe"


@pytest.mark.django_db
def test_no_model_change_is_missing_a_migration():
    from django.core.management import call_command

    call_command("makemigrations", "--check", "--dry-run", verbosity=0)
