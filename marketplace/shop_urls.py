from django.urls import path

from marketplace.views import (
    cart,
    checkout,
    refund_requests,
    seller_dashboard,
    seller_orders,
    seller_payouts,
    seller_plan,
    seller_products,
    seller_statements,
    seller_transactions,
    storefront,
)

app_name = "marketplace"

urlpatterns = [
    path("", storefront.home, name="home"),
    path("products/", storefront.product_list, name="product_list"),
    path("products/<slug:slug>/", storefront.product_detail, name="product_detail"),
    path("sellers/<slug:slug>/", storefront.seller_storefront, name="seller_storefront"),
    path("cart/", cart.cart_detail, name="cart"),
    path("cart/add/", cart.cart_add_view, name="cart_add"),
    path("cart/update/", cart.cart_update, name="cart_update"),
    path("checkout/<str:currency>/", checkout.checkout, name="checkout"),
    path("orders/", checkout.order_list, name="order_list"),
    path("orders/<int:pk>/", checkout.order_detail, name="order_detail"),
    path("orders/<int:pk>/pay/", checkout.order_pay, name="order_pay"),
    path("orders/<int:pk>/pay/confirm/", checkout.order_pay_confirm, name="order_pay_confirm"),
    path(
        "orders/<int:pk>/lines/<int:line_pk>/refund-request/",
        refund_requests.refund_request_new,
        name="refund_request_new",
    ),
    path("sell/", seller_dashboard.dashboard, name="seller_dashboard"),
    path("sell/orders/", seller_orders.seller_order_list, name="seller_orders"),
    path("sell/orders/<int:pk>/", seller_orders.seller_order_detail, name="seller_order_detail"),
    path("sell/transactions/", seller_transactions.transactions, name="seller_transactions"),
    path(
        "sell/orders/<int:pk>/ship/", seller_orders.seller_order_ship_view, name="seller_order_ship"
    ),
    path(
        "sell/orders/<int:pk>/deliver/",
        seller_orders.seller_order_deliver_view,
        name="seller_order_deliver",
    ),
    path("sell/refunds/", refund_requests.seller_refund_requests, name="seller_refund_requests"),
    path(
        "sell/refunds/<int:pk>/approve/",
        refund_requests.seller_refund_request_approve,
        name="seller_refund_request_approve",
    ),
    path(
        "sell/refunds/<int:pk>/decline/",
        refund_requests.seller_refund_request_decline,
        name="seller_refund_request_decline",
    ),
    path("sell/payouts/", seller_payouts.payouts_setup, name="seller_payouts"),
    path("sell/plan/", seller_plan.seller_plan, name="seller_plan"),
    path("sell/statement/", seller_statements.statement, name="seller_statement"),
    path("sell/statement.csv", seller_statements.statement_download, name="seller_statement_csv"),
    path("sell/payouts/return/", seller_payouts.payouts_return, name="seller_payouts_return"),
    path("sell/payouts/<int:pk>/", seller_payouts.payout_detail, name="seller_payout_detail"),
    path("sell/products/", seller_products.product_list, name="seller_product_list"),
    path("sell/products/new/", seller_products.product_new, name="seller_product_new"),
    path(
        "sell/products/<slug:slug>/edit/", seller_products.product_edit, name="seller_product_edit"
    ),
    path(
        "sell/products/<slug:slug>/deactivate/",
        seller_products.product_deactivate,
        name="seller_product_deactivate",
    ),
    path(
        "sell/products/<slug:slug>/activate/",
        seller_products.product_activate,
        name="seller_product_activate",
    ),
]
