"""Rate limits are counted in a cache every web process shares: Redis by default when
DEBUG is off. Two throttles on two Redis clients (two processes) share one count."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.cache.backends.redis import RedisCache
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory
from rest_framework.throttling import SimpleRateThrottle

from marketplace.kernel.api.throttling import AnonRateThrottleFailOpen

BASE_DIR = Path(__file__).resolve().parents[2]


@pytest.mark.redis
def test_two_processes_caches_share_one_count(monkeypatch):
    monkeypatch.setitem(SimpleRateThrottle.THROTTLE_RATES, "anon", "3/min")
    url = settings.CELERY_BROKER_URL.rsplit("/", 1)[0] + "/14"
    # Two clients, as two gunicorn workers have: nothing shared but the Redis.
    first, second = RedisCache(url, {}), RedisCache(url, {})
    request = Request(APIRequestFactory().get("/api/v1/products/", REMOTE_ADDR="192.0.2.7"))
    key = AnonRateThrottleFailOpen().get_cache_key(request, None)
    first.delete(key)

    def allowed(cache):
        throttle = AnonRateThrottleFailOpen()
        throttle.cache = cache
        return throttle.allow_request(request, None)

    try:
        answers = [allowed(first), allowed(second), allowed(first), allowed(second)]
    finally:
        first.delete(key)

    assert answers == [True, True, True, False]


def _settings_cache(**variables):
    env = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "CACHE_URL")}
    env |= {
        "DJANGO_SETTINGS_MODULE": "marketplace.settings",
        "SECRET_KEY": "k3y-" + "x7Gq2Lw9Zr4Tn8Vb1Mc6Hd5Js0Pf3Ky" * 2,
        "ALLOWED_HOSTS": "shop.example.com",
        "WEBHOOK_SECRET_KEYS": "A" * 43 + "=",
        **variables,
    }
    code = (
        "import json, django; django.setup(); from django.conf import settings as s; "
        "print(json.dumps(s.CACHES['default']))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_production_counts_in_redis_unless_told_otherwise(tmp_path):
    production = _settings_cache(DEBUG="0", VAR_DIR=str(tmp_path))
    chosen = _settings_cache(DEBUG="0", VAR_DIR=str(tmp_path), CACHE_URL="redis://cache:6379/3")
    development = _settings_cache(DEBUG="1", VAR_DIR=str(tmp_path))

    assert production["BACKEND"] == "django.core.cache.backends.redis.RedisCache"
    assert production["LOCATION"] == "redis://127.0.0.1:6379/2"
    assert chosen["LOCATION"] == "redis://cache:6379/3"
    assert development["BACKEND"] == "django.core.cache.backends.locmem.LocMemCache"
