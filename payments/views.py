"""HTTP entry points of the payments app: webhooks and the local processor's pages."""

from __future__ import annotations

import logging

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from payments.collection.webhooks import webhook_receive
from payments.processors.base import InvalidProcessorRequest, WebhookSignatureError
from payments.processors.local import LocalProcessor

logger = logging.getLogger(__name__)

PROCESSORS = ("local", "stripe")


@csrf_exempt
@require_POST
def webhook(request: HttpRequest, processor: str, endpoint: str = "platform") -> HttpResponse:
    """Verify, store once and queue; answer 2xx fast. A bad signature stores nothing."""
    if processor not in PROCESSORS or processor != settings.PAYMENTS_PROCESSOR:
        return JsonResponse({"error": "unknown processor"}, status=404)
    try:
        stored = webhook_receive(
            processor_name=processor,
            payload=request.body,
            headers=dict(request.headers),
            endpoint=endpoint,
        )
    except WebhookSignatureError as exc:
        logger.warning("Refused a %s webhook: %s", processor, exc.message)
        return JsonResponse({"error": "invalid signature"}, status=400)
    return JsonResponse({"received": stored.event_id, "status": stored.status})


@require_http_methods(["GET", "POST"])
def local_onboarding(request: HttpRequest, account_id: str) -> HttpResponse:
    """The local processor's hosted onboarding form (Stripe's, simulated)."""
    if settings.PAYMENTS_PROCESSOR != "local":
        return render(request, "404.html", status=404)
    return_url = request.GET.get("return_url", "/")
    if not url_has_allowed_host_and_scheme(return_url, allowed_hosts={request.get_host()}):
        return HttpResponseBadRequest("Bad return URL.")
    processor = LocalProcessor()
    try:
        account = processor.account_get(account_id=account_id)
    except InvalidProcessorRequest:
        return render(request, "404.html", status=404)
    if request.method == "POST":
        processor.account_complete_onboarding(account_id=account_id)
        return redirect(return_url)
    return render(
        request,
        "payments/local_onboarding.html",
        {"account": account, "return_url": return_url},
    )
