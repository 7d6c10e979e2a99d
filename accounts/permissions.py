"""Who may call what: operators, sellers, and the rest of the signed-in users."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from accounts.roles import is_operator, seller_for


class IsOperator(BasePermission):
    message = "Only operators may do this."

    def has_permission(self, request: Request, view: Any) -> bool:
        return is_operator(request.user)


class IsSellerOrOperator(BasePermission):
    message = "Only sellers and operators may do this."

    def has_permission(self, request: Request, view: Any) -> bool:
        return is_operator(request.user) or seller_for(request.user) is not None


class ReadOnlyOrOperator(BasePermission):
    """Reading for every caller the view lets in; writing for operators."""

    message = "Only operators may change this."

    def has_permission(self, request: Request, view: Any) -> bool:
        return request.method in SAFE_METHODS or is_operator(request.user)
