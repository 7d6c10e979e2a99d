"""``/healthz``: the load balancer's question, answered in JSON; ``/livez``: is the
process serving at all."""

from dataclasses import asdict

from django.http import HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from marketplace.health import health_check


@never_cache
@require_GET
def healthz(request):
    """200 while the database answers (``ok``, or ``degraded`` without the broker);
    503 when it does not."""
    health = health_check()
    return JsonResponse(
        {
            "status": health.status,
            "checks": {name: asdict(check) for name, check in health.checks.items()},
        },
        status=503 if health.status == "fail" else 200,
    )


@never_cache
@require_GET
def livez(request):
    """200 whenever this process answers, touching nothing else: a liveness probe (a
    restart is the cure only when this fails), and the benchmarks' static baseline."""
    return HttpResponse("ok", content_type="text/plain")
