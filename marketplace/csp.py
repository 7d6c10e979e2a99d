"""The Content-Security-Policy of every page (django-csp's ``CONTENT_SECURITY_POLICY``).

Scripts, styles, fonts and images come from this site only; no inline script or
style (templates use classes and static/js/app.js), no plugins, no framing, and
forms post only here. Stripe.js (its script, its frames, its API) is allowed only
when Stripe is the processor. The API documentation pages relax it for themselves
(marketplace/api/urls.py).
"""

from __future__ import annotations

from typing import Any

STRIPE_JS = "https://js.stripe.com"


def content_security_policy(processor: str) -> dict[str, Any]:
    stripe = processor == "stripe"
    return {
        "DIRECTIVES": {
            "default-src": ["'self'"],
            "script-src": ["'self'", *([STRIPE_JS] if stripe else [])],
            "style-src": ["'self'"],
            "img-src": ["'self'", "data:"],  # Pico's icons are data: URLs in its CSS
            "font-src": ["'self'"],
            "connect-src": ["'self'", *(["https://api.stripe.com"] if stripe else [])],
            "frame-src": [STRIPE_JS, "https://hooks.stripe.com"] if stripe else ["'none'"],
            "object-src": ["'none'"],
            "base-uri": ["'self'"],
            "form-action": ["'self'"],
            "frame-ancestors": ["'none'"],
        }
    }
