"""Money endpoints. Sellers see only their own payouts, balances and ledger (another
seller's is a 404); operators see and run everything. Each write calls one service."""

from __future__ import annotations

from typing import Any

import django_filters
from django.db.models import Prefetch, Q, QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import exceptions, mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import Seller, User
from accounts.permissions import IsOperator, IsSellerOrOperator, ReadOnlyOrOperator
from accounts.roles import is_operator, seller_for
from marketplace.kernel.api.expand import ExpandMixin, expand_parameter
from marketplace.kernel.api.filters import UtcIsoDateTimeFilter, query_values
from marketplace.kernel.api.idempotency import IdempotentMixin
from marketplace.kernel.api.metadata_patch import MetadataPatchMixin, MetadataUpdateSerializer
from payments.api import serializers as s
from payments.collection.refund_requests import refund_request_approve, refund_request_decline
from payments.integrations.metadata import payout_metadata_update, refund_metadata_update
from payments.ledger.balances import seller_balance, seller_currencies
from payments.models import (
    CommissionRule,
    LedgerAccount,
    LedgerEntry,
    LedgerTransaction,
    Payout,
    PayoutEntry,
    PayoutPolicy,
    PayoutRun,
    Refund,
    RefundLine,
    RefundRequest,
    VolumeTier,
)
from payments.payouts.controls import (
    payout_approve,
    payout_cancel,
    payout_hold,
    payout_mark_paid,
    payout_release,
    payout_retry,
)
from payments.payouts.freezes import payout_policy_save
from payments.payouts.runs import run_payouts
from payments.reporting.periods import days_between
from payments.reporting.reconciliation import reconcile
from payments.reporting.revenue import revenue_report
from payments.reporting.statements import seller_statement, statement_csv
from payments.revenue.commission import commission_rule_save


def _operator(request: Request) -> bool:
    return is_operator(request.user)


def _actor(request: Request) -> User:
    """The signed-in user (every view here needs one)."""
    user = request.user
    assert isinstance(user, User)
    return user


class AuditedSettingViewSet(
    IdempotentMixin,
    ExpandMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,  # type: ignore[type-arg]
):
    """A money setting (commission rule, payout policy): writes go through its save
    service with the caller and the optional ``reason``, so every change is recorded."""

    def save_setting(self, instance: Any, reason: str) -> Any:
        raise NotImplementedError

    def perform_create(self, serializer: Any) -> None:
        data = dict(serializer.validated_data)
        reason = data.pop("reason", "")
        model = serializer.Meta.model
        serializer.instance = self.save_setting(model(**data), reason)

    def perform_update(self, serializer: Any) -> None:
        instance, data = serializer.instance, dict(serializer.validated_data)
        reason = data.pop("reason", "")
        for field, value in data.items():
            setattr(instance, field, value)
        serializer.instance = self.save_setting(instance, reason)


class CommissionRuleViewSet(AuditedSettingViewSet):
    """Operators manage commission rules; a seller reads the rules that can apply to
    them (platform default, category rules, their own and their products')."""

    serializer_class = s.CommissionRuleSerializer
    permission_classes = [IsSellerOrOperator, ReadOnlyOrOperator]
    filterset_fields = ["scope", "currency"]

    def get_queryset(self) -> QuerySet[CommissionRule]:
        rules = CommissionRule.objects.select_related("seller").prefetch_related(
            Prefetch("tiers", queryset=VolumeTier.objects.order_by("from_minor"))
        )
        if _operator(self.request):
            return rules
        seller = seller_for(self.request.user)
        return rules.filter(
            Q(scope__in=["default", "category"]) | Q(seller=seller) | Q(product__seller=seller)
        )

    def save_setting(self, instance: Any, reason: str) -> Any:
        return commission_rule_save(
            rule=instance, by=_actor(self.request), reason=reason, via="api"
        )


class PayoutPolicyViewSet(AuditedSettingViewSet):
    """Payout policies (operators): the platform default has no seller."""

    serializer_class = s.PayoutPolicySerializer
    permission_classes = [IsOperator]
    queryset = PayoutPolicy.objects.select_related("seller").order_by("id")
    filterset_fields = ["schedule", "method", "frozen"]

    def save_setting(self, instance: Any, reason: str) -> Any:
        return payout_policy_save(
            policy=instance, by=_actor(self.request), reason=reason, via="api"
        )


class PayoutFilter(django_filters.FilterSet):
    seller = django_filters.CharFilter(field_name="seller__slug", max_length=80)
    created_after = UtcIsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = UtcIsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Payout
        fields = ["status", "currency", "method", "seller", "run"]


def _payout_entry_ids() -> Prefetch[Any]:
    return Prefetch("breakdown", queryset=PayoutEntry.objects.only("id", "payout_id", "entry_id"))


def _payout_entries() -> Prefetch[Any]:
    return Prefetch("breakdown", queryset=PayoutEntry.objects.select_related("entry__transaction"))


PAYOUT_EXPAND = expand_parameter("entries")


@extend_schema_view(
    list=extend_schema(parameters=[PAYOUT_EXPAND]),
    retrieve=extend_schema(parameters=[PAYOUT_EXPAND]),
)
class PayoutViewSet(
    IdempotentMixin,
    MetadataPatchMixin,
    ExpandMixin,
    viewsets.ReadOnlyModelViewSet,  # type: ignore[type-arg]
):
    """Payouts with the ledger entries they pay (``entries``: ids, or whole with
    ``expand[]=entries``; the detail also has them whole as ``breakdown``). Sellers:
    their own. Operators: all, the actions of the admin (approve, hold, release,
    cancel, retry, mark paid), and PATCH of ``metadata``."""

    permission_classes = [IsSellerOrOperator]
    filterset_class = PayoutFilter
    expandable = {"entries": (_payout_entry_ids, _payout_entries)}

    def get_queryset(self) -> QuerySet[Payout]:
        payouts = Payout.objects.select_related("seller")
        if self.action == "retrieve":
            self.expansions()  # still refuse an unknown name
            payouts = payouts.prefetch_related(_payout_entries())
        else:
            payouts = self.with_expansions(payouts)
        if _operator(self.request):
            return payouts
        return payouts.filter(seller=seller_for(self.request.user))

    def get_serializer_class(self) -> Any:
        return s.PayoutDetailSerializer if self.action == "retrieve" else s.PayoutSerializer

    def get_permissions(self) -> Any:
        if self.action == "partial_update":
            return [IsOperator()]
        return super().get_permissions()

    @extend_schema(request=MetadataUpdateSerializer, responses=s.PayoutSerializer)
    def partial_update(self, request: Request, pk: str) -> Response:
        """Change the payout's ``metadata`` (operators): keys merge in; an empty string
        removes a key. Nothing else about the payout changes."""
        return super().partial_update(request, pk)

    def metadata_save(self, request: Request, obj: Any, metadata: dict[str, str]) -> None:
        payout_metadata_update(payout=obj, by=_actor(request), metadata=metadata, via="api")

    def _act(self, request: Request, service: Any, **extra: Any) -> Response:
        if not _operator(request):
            raise exceptions.PermissionDenied("Only operators may do this.")
        payout = self.get_object()
        result = service(payout=payout, by=_actor(request), via="api", **extra)
        return Response(s.PayoutSerializer(result).data)

    def _reason(self, request: Request) -> str:
        body = s.PayoutActionRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        return str(body.validated_data["reason"])

    @extend_schema(request=None, responses=s.PayoutSerializer)
    @action(detail=True, methods=["post"])
    def approve(self, request: Request, pk: str) -> Response:
        """Approve a payout awaiting approval (not one you created)."""
        return self._act(request, payout_approve)

    @extend_schema(request=s.PayoutActionRequestSerializer, responses=s.PayoutSerializer)
    @action(detail=True, methods=["post"])
    def hold(self, request: Request, pk: str) -> Response:
        return self._act(request, payout_hold, reason=self._reason(request))

    @extend_schema(request=s.PayoutActionRequestSerializer, responses=s.PayoutSerializer)
    @action(detail=True, methods=["post"])
    def release(self, request: Request, pk: str) -> Response:
        return self._act(request, payout_release, reason=self._reason(request))

    @extend_schema(request=s.PayoutActionRequestSerializer, responses=s.PayoutSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str) -> Response:
        return self._act(request, payout_cancel, reason=self._reason(request))

    @extend_schema(request=s.PayoutActionRequestSerializer, responses=s.PayoutSerializer)
    @action(detail=True, methods=["post"])
    def retry(self, request: Request, pk: str) -> Response:
        """Pay a failed payout's seller again now (a new payout is returned)."""
        return self._act(request, payout_retry, reason=self._reason(request))

    @extend_schema(request=s.MarkPaidRequestSerializer, responses=s.PayoutSerializer)
    @action(detail=True, methods=["post"], url_path="mark-paid")
    def mark_paid(self, request: Request, pk: str) -> Response:
        """A manual payout was paid by bank transfer; safe to repeat."""
        body = s.MarkPaidRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        return self._act(
            request, payout_mark_paid, bank_reference=body.validated_data["bank_reference"]
        )


class PayoutRunViewSet(
    IdempotentMixin,
    ExpandMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,  # type: ignore[type-arg]
):
    """Payout runs (operators). POST runs payouts now; ``dry_run`` reports and writes nothing."""

    permission_classes = [IsOperator]
    queryset = PayoutRun.objects.select_related("started_by").order_by("-started_at", "-id")
    serializer_class = s.PayoutRunSerializer
    filterset_fields = ["trigger"]

    @extend_schema(
        request=s.PayoutRunRequestSerializer,
        responses={201: s.PayoutRunReportSerializer, 200: s.PayoutRunReportSerializer},
    )
    def create(self, request: Request) -> Response:
        body = s.PayoutRunRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        slugs = body.validated_data["sellers"]
        sellers = None
        if slugs:
            sellers = list(Seller.objects.filter(slug__in=slugs))
            missing = sorted(set(slugs) - {seller.slug for seller in sellers})
            if missing:
                raise exceptions.ValidationError(
                    {"sellers": [f"No seller with slug {', '.join(missing)}."]}
                )
        report = run_payouts(
            sellers=sellers,
            dry_run=body.validated_data["dry_run"],
            started_by=_actor(request),
            trigger=PayoutRun.Trigger.API,
        )
        code = status.HTTP_200_OK if report.run is None else status.HTTP_201_CREATED
        return Response(s.PayoutRunReportSerializer(report).data, status=code)


def _balances(seller: Seller) -> list[dict[str, Any]]:
    return [
        s.BalanceSerializer(seller_balance(seller=seller, currency=c)).data
        for c in seller_currencies(seller)
    ]


class MyBalanceView(APIView):
    """The signed-in seller's balances, one per currency."""

    permission_classes = [IsSellerOrOperator]

    @extend_schema(responses=s.BalanceSerializer(many=True))
    def get(self, request: Request) -> Response:
        seller = seller_for(request.user)
        if seller is None:
            raise exceptions.NotFound("You have no shop.")
        return Response(_balances(seller))


class SellerBalanceView(APIView):
    """Any seller's balances (operators)."""

    permission_classes = [IsOperator]

    @extend_schema(responses=s.BalanceSerializer(many=True))
    def get(self, request: Request, slug: str) -> Response:
        return Response(_balances(get_object_or_404(Seller, slug=slug)))


class StatementView(APIView):
    """A seller's statement for a date range: opening and closing balance and every
    movement between (payments/reporting/statements.py); ``statement.csv`` is the same as CSV."""

    permission_classes = [IsSellerOrOperator]

    def _seller(self, request: Request, slug: str | None) -> Seller:
        if slug is None:
            seller = seller_for(request.user)
            if seller is None:
                raise exceptions.NotFound("You have no shop.")
            return seller
        if not _operator(request):
            raise exceptions.PermissionDenied("Only operators may read other sellers' statements.")
        return get_object_or_404(Seller, slug=slug)

    @extend_schema(
        parameters=[s.StatementQuerySerializer],
        responses={200: s.StatementSerializer},
    )
    def get(self, request: Request, slug: str | None = None) -> Response:
        query = s.StatementQuerySerializer(data=query_values(request))
        query.is_valid(raise_exception=True)
        statement = seller_statement(seller=self._seller(request, slug), **query.validated_data)
        return Response(s.StatementSerializer(statement).data)


class StatementCsvView(StatementView):
    """The same statement as a CSV file (amounts in minor units)."""

    @extend_schema(
        parameters=[s.StatementQuerySerializer],
        responses={(200, "text/csv"): str},
    )
    def get(self, request: Request, slug: str | None = None) -> Any:
        from django.http import HttpResponse

        query = s.StatementQuerySerializer(data=query_values(request))
        query.is_valid(raise_exception=True)
        statement = seller_statement(seller=self._seller(request, slug), **query.validated_data)
        response = HttpResponse(statement_csv(statement), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = (
            f'attachment; filename="statement-{statement.seller.slug}-{statement.start}.csv"'
        )
        return response


class RevenueReportView(APIView):
    """Platform revenue per day, week or month and currency (operators): sales, refunds,
    commission, processor fees and net, from the ledger (the admin's revenue report)."""

    permission_classes = [IsOperator]

    @extend_schema(
        parameters=[s.RevenueQuerySerializer], responses=s.RevenueRowSerializer(many=True)
    )
    def get(self, request: Request) -> Response:
        query = s.RevenueQuerySerializer(data=query_values(request))
        query.is_valid(raise_exception=True)
        data = query.validated_data
        since, until = days_between(data.get("start"), data.get("end"))
        rows = revenue_report(period=data["period"], start=since, end=until)
        return Response(s.RevenueRowSerializer(rows, many=True).data)


class ReconciliationView(APIView):
    """Our ledger's cash at the processor against its balance transactions (operators)."""

    permission_classes = [IsOperator]

    @extend_schema(
        parameters=[s.ReconciliationQuerySerializer], responses=s.ReconciliationSerializer
    )
    def get(self, request: Request) -> Response:

        query = s.ReconciliationQuerySerializer(data=query_values(request))
        query.is_valid(raise_exception=True)
        since, until = days_between(query.validated_data["start"], query.validated_data["end"])
        assert since is not None and until is not None  # both are required
        report = reconcile(since=since, until=until)
        return Response(s.ReconciliationSerializer(report).data)


class LedgerEntryFilter(django_filters.FilterSet):
    seller = django_filters.CharFilter(field_name="account__seller__slug", max_length=80)
    account_kind = django_filters.ChoiceFilter(
        field_name="account__kind", choices=LedgerAccount.Kind.choices
    )
    kind = django_filters.ChoiceFilter(
        field_name="transaction__kind", choices=LedgerTransaction.Kind.choices
    )
    created_after = UtcIsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = UtcIsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = LedgerEntry
        fields = ["currency", "seller", "account_kind", "kind"]


class LedgerEntryViewSet(ExpandMixin, viewsets.ReadOnlyModelViewSet):  # type: ignore[type-arg]
    """Ledger entries, newest first, by cursor. Sellers: entries of their own accounts."""

    permission_classes = [IsSellerOrOperator]
    serializer_class = s.LedgerEntrySerializer
    filterset_class = LedgerEntryFilter

    def get_queryset(self) -> QuerySet[LedgerEntry]:
        entries = LedgerEntry.objects.select_related("transaction", "account__seller")
        if _operator(self.request):
            return entries
        return entries.filter(account__seller=seller_for(self.request.user))


class RefundRequestViewSet(IdempotentMixin, ExpandMixin, viewsets.ReadOnlyModelViewSet):  # type: ignore[type-arg]
    """Customers' refund requests: the line's seller or an operator approves (the
    refund is sent to the processor at once) or declines."""

    serializer_class = s.RefundRequestSerializer
    permission_classes = [IsSellerOrOperator]
    filterset_fields = ["status"]

    def get_queryset(self) -> QuerySet[RefundRequest]:
        requests = RefundRequest.objects.select_related(
            "order_line__order", "order_line__seller_order__seller"
        )
        if _operator(self.request):
            return requests
        return requests.filter(order_line__seller_order__seller=seller_for(self.request.user))

    @extend_schema(request=None, responses=s.RefundRequestSerializer)
    @action(detail=True, methods=["post"])
    def approve(self, request: Request, pk: str) -> Response:
        refund_request_approve(request=self.get_object(), by=_actor(request))
        return Response(s.RefundRequestSerializer(self.get_queryset().get(pk=pk)).data)

    @extend_schema(request=s.RefundDecisionSerializer, responses=s.RefundRequestSerializer)
    @action(detail=True, methods=["post"])
    def decline(self, request: Request, pk: str) -> Response:
        body = s.RefundDecisionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        refund_request_decline(
            request=self.get_object(),
            by=_actor(request),
            note=body.validated_data["note"],
        )
        return Response(s.RefundRequestSerializer(self.get_queryset().get(pk=pk)).data)


def _refund_line_ids() -> Prefetch[Any]:
    return Prefetch("lines", queryset=RefundLine.objects.only("id", "refund_id"))


def _refund_lines() -> Prefetch[Any]:
    return Prefetch("lines", queryset=RefundLine.objects.all())


REFUND_EXPAND = expand_parameter("lines")


@extend_schema_view(
    list=extend_schema(parameters=[REFUND_EXPAND]),
    retrieve=extend_schema(parameters=[REFUND_EXPAND]),
)
class RefundViewSet(
    MetadataPatchMixin,
    ExpandMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,  # type: ignore[type-arg]
):
    """Refunds (operators): what was sent back to the customer, per order line
    (``lines``: ids, or whole with ``expand[]=lines``). PATCH changes ``metadata``.
    Sellers see their part of refunds through refund requests and their ledger."""

    permission_classes = [IsOperator]
    serializer_class = s.RefundSerializer
    queryset = Refund.objects.none()  # for the schema
    filterset_fields = ["status", "currency", "order"]
    expandable = {"lines": (_refund_line_ids, _refund_lines)}

    def get_queryset(self) -> QuerySet[Refund]:
        return self.with_expansions(Refund.objects.all())

    @extend_schema(request=MetadataUpdateSerializer, responses=s.RefundSerializer)
    def partial_update(self, request: Request, pk: str) -> Response:
        """Change the refund's ``metadata``: keys merge in; an empty string removes a key."""
        return super().partial_update(request, pk)

    def metadata_save(self, request: Request, obj: Any, metadata: dict[str, str]) -> None:
        refund_metadata_update(refund=obj, by=_actor(request), metadata=metadata, via="api")


__all__ = [
    "CommissionRuleViewSet",
    "LedgerEntryViewSet",
    "MyBalanceView",
    "PayoutPolicyViewSet",
    "PayoutRunViewSet",
    "PayoutViewSet",
    "ReconciliationView",
    "RefundRequestViewSet",
    "RefundViewSet",
    "RevenueReportView",
    "SellerBalanceView",
    "StatementCsvView",
    "StatementView",
]
