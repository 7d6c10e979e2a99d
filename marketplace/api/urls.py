"""``/api/v1/``: the schema, its docs (vendored Swagger UI and Redoc), and every resource."""

from csp.decorators import csp_update
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework.routers import SimpleRouter

from marketplace.api import payment_views as pay
from marketplace.api import views

router = SimpleRouter()
router.register("categories", views.CategoryViewSet, basename="category")
router.register("products", views.ProductViewSet, basename="product")
router.register("orders", views.OrderViewSet, basename="order")
router.register("seller-orders", views.SellerOrderViewSet, basename="seller-order")

app_name = "api"

# The documentation pages' own templates carry an inline script and style (their set-up),
# and Redoc renders in a worker made from a blob: URL. They show no user content.
docs_csp = csp_update(
    {"script-src": ["'unsafe-inline'"], "style-src": ["'unsafe-inline'"], "worker-src": ["blob:"]}
)

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", docs_csp(SpectacularSwaggerView.as_view(url_name="api:schema")), name="docs"),
    path("redoc/", docs_csp(SpectacularRedocView.as_view(url_name="api:schema")), name="redoc"),
    path("cart/", views.CartView.as_view(), name="cart"),
    path("cart/items/", views.CartItemsView.as_view(), name="cart-items"),
    path("cart/checkout/", views.CartCheckoutView.as_view(), name="cart-checkout"),
    path("orders/<int:pk>/payment/", pay.OrderPaymentView.as_view(), name="order-payment"),
    path(
        "orders/<int:pk>/payment/confirm/",
        pay.OrderPaymentConfirmView.as_view(),
        name="order-payment-confirm",
    ),
    path(
        "orders/<int:pk>/payment/authenticate/",
        pay.OrderPaymentAuthenticateView.as_view(),
        name="order-payment-authenticate",
    ),
    path("", include("payments.api.urls")),
    *router.urls,
    re_path(r"", views.api_not_found),
]
