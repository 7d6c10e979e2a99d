from django.urls import path
from rest_framework.routers import SimpleRouter

from payments.api import plans, views
from payments.api.events import EventViewSet
from payments.api.service_fees import CommissionRuleTiersView, ServiceFeeViewSet
from payments.api.webhook_endpoints import WebhookEndpointViewSet

router = SimpleRouter()
router.register("commission-rules", views.CommissionRuleViewSet, basename="commission-rule")
router.register("payout-policies", views.PayoutPolicyViewSet, basename="payout-policy")
router.register("payouts", views.PayoutViewSet, basename="payout")
router.register("payout-runs", views.PayoutRunViewSet, basename="payout-run")
router.register("refund-requests", views.RefundRequestViewSet, basename="refund-request")
router.register("refunds", views.RefundViewSet, basename="refund")
router.register("webhook-endpoints", WebhookEndpointViewSet, basename="webhook-endpoint")
router.register("events", EventViewSet, basename="event")
router.register("ledger-entries", views.LedgerEntryViewSet, basename="ledger-entry")
router.register("service-fees", ServiceFeeViewSet, basename="service-fee")
router.register("seller-plans", plans.SellerPlanViewSet, basename="seller-plan")
router.register("listing-fees", plans.ListingFeeViewSet, basename="listing-fee")

urlpatterns = [
    path("commission-rules/<int:pk>/tiers/", CommissionRuleTiersView.as_view(), name="rule-tiers"),
    path("reports/reconciliation/", views.ReconciliationView.as_view(), name="reconciliation"),
    path("reports/revenue/", views.RevenueReportView.as_view(), name="revenue-report"),
    path("sellers/me/balance/", views.MyBalanceView.as_view(), name="my-balance"),
    path("sellers/me/plan/", plans.MyPlanView.as_view(), name="my-plan"),
    path("sellers/me/plan-charges/", plans.MyPlanChargesView.as_view(), name="my-plan-charges"),
    path("sellers/<str:slug>/plan/", plans.SellerPlanView.as_view(), name="seller-plan-change"),
    path("sellers/me/statement/", views.StatementView.as_view(), name="my-statement"),
    path("sellers/me/statement.csv", views.StatementCsvView.as_view(), name="my-statement-csv"),
    path("sellers/<str:slug>/balance/", views.SellerBalanceView.as_view(), name="seller-balance"),
    path("sellers/<str:slug>/statement/", views.StatementView.as_view(), name="seller-statement"),
    path(
        "sellers/<str:slug>/statement.csv",
        views.StatementCsvView.as_view(),
        name="seller-statement-csv",
    ),
    *router.urls,
]
