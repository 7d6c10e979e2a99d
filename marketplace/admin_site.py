"""The operators' admin site: Django's, with a dashboard on its home page.

Installed in place of ``django.contrib.admin`` (settings.INSTALLED_APPS) through
``OperatorAdminConfig``, so every ``@admin.register`` and ``admin.site`` reach it.
Nothing here may import models at module level: the config is loaded before them.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.db import models
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils import timezone


class OperatorAdminSite(admin.AdminSite):
    # The home page's dashboard and app list and the breadcrumbs lead everywhere; the
    # side menu repeated the app list and left wide money tables too little room.
    enable_nav_sidebar = False

    def index(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> TemplateResponse:
        """The app list, with today's and the week's figures
        (payments/reporting/operator_dashboard.py) above it: only those on models the
        operator may open."""
        from payments.reporting.operator_dashboard import operator_dashboard

        def can_view(model: type[models.Model]) -> bool:
            model_admin = self._registry.get(model)
            return model_admin is not None and model_admin.has_view_or_change_permission(request)

        dashboard = operator_dashboard(now=timezone.now(), can_view=can_view)
        return super().index(request, {"dashboard": dashboard, **(extra_context or {})})


class OperatorAdminConfig(AdminConfig):
    default_site = "marketplace.admin_site.OperatorAdminSite"
