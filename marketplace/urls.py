"""Root URL configuration."""

from django.conf import settings
from django.conf.urls.static import static
from django.contrib import admin
from django.urls import include, path

from marketplace.views import errors, health

admin.site.site_header = "Marketplace operations"
admin.site.site_title = "Marketplace admin"
admin.site.index_title = "Run the marketplace"

handler500 = "marketplace.views.errors.server_error"

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("livez", health.livez, name="livez"),
    path("admin/", admin.site.urls),
    path("accounts/", include("accounts.urls")),
    path("payments/", include("payments.urls")),
    path("api/v1/errors/", errors.api_error_codes, name="api-error-codes"),
    path("api/v1/", include("marketplace.api.urls")),
    path("", include("marketplace.shop_urls")),
]

if settings.DEBUG:
    # Uploaded product images in development; production serves MEDIA_ROOT
    # from the web server or object storage (docs/operations.md).
    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
