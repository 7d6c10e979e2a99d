"""Every page carries a Content-Security-Policy that refuses inline script and style
and scripts from elsewhere; Stripe.js is allowed only with the Stripe processor."""

import re
from pathlib import Path

import pytest
from django.urls import reverse

from marketplace.csp import content_security_policy

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


def directives(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    return {
        name: values
        for name, *values in (part.split() for part in header.split(";") if part.strip())
    }


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/", "/products/", "/accounts/login/", "/admin/login/"])
def test_pages_allow_only_this_site_s_scripts_and_styles(client, url):
    policy = directives(client.get(url))

    assert policy["script-src"] == ["'self'"]
    assert policy["style-src"] == ["'self'"]
    assert policy["default-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["form-action"] == ["'self'"]


@pytest.mark.django_db
def test_the_api_docs_relax_it_for_their_own_inline_set_up_only(client):
    docs = directives(client.get(reverse("api:docs")))

    assert "'unsafe-inline'" in docs["script-src"]
    assert "https://js.stripe.com" not in docs["script-src"]


def test_stripe_js_is_allowed_only_with_the_stripe_processor():
    local = content_security_policy("local")["DIRECTIVES"]
    stripe = content_security_policy("stripe")["DIRECTIVES"]

    assert "https://js.stripe.com" not in str(local)
    assert stripe["script-src"] == ["'self'", "https://js.stripe.com"]
    assert "https://js.stripe.com" in stripe["frame-src"]
    assert "https://api.stripe.com" in stripe["connect-src"]


INLINE = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>|\son[a-z]+=|\sstyle=", re.IGNORECASE)


def test_no_template_has_inline_script_handlers_or_styles():
    offenders = [
        f"{path.relative_to(TEMPLATES)}: {match.group(0).strip()}"
        for path in TEMPLATES.rglob("*.html")
        for match in INLINE.finditer(path.read_text())
    ]
    assert offenders == []
