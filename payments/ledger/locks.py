"""Row locks of the money services, taken in one order by every service.

The order (docs/money.md, "Locks"):

1. the order;
2. its refunds and disputes (the refund or dispute being changed);
3. its seller orders, ids ascending;
4. its order lines, ids ascending;
5. payouts, ids ascending;
6. the sellers' money locks (their ``accounts_seller`` rows), ids ascending;
7. ledger accounts, ids ascending (taken by ``ledger_post`` itself).

A service takes only the steps it needs, but never an earlier step after a
later one, so two money services cannot wait on each other in a circle.

Every lock here is ``FOR NO KEY UPDATE`` on the named table only (``of``):
the lock an UPDATE takes. It does not conflict with the ``KEY SHARE`` locks
that inserting a row with a foreign key takes on the row it points to (a
ledger entry naming its order line, a payout naming its seller), so writing
children of a locked row never waits on the lock, and joined tables are never
locked by accident.

The seller's money lock serializes everything that changes what a seller may
be paid: their available balance and what is claimed against it (open
payouts, pending refunds of released sales). A payout is checked against
what is payable under this lock, and every change to those figures waits for
it, so the check cannot be overtaken.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import QuerySet

from accounts.models import Seller
from marketplace.models import OrderLine, SellerOrder

# Step 1, the order, is locked beside the orders (they cancel unpaid ones below the money).
from marketplace.orders import order_lock as order_lock
from payments.models import Payout


def seller_orders_lock(queryset: QuerySet[SellerOrder]) -> list[SellerOrder]:
    """Step 3: these seller orders, ids ascending."""
    return list(queryset.select_for_update(no_key=True, of=("self",)).order_by("pk"))


def order_lines_lock(queryset: QuerySet[OrderLine]) -> list[OrderLine]:
    """Step 4: these order lines, ids ascending (joined rows are read, not locked)."""
    return list(queryset.select_for_update(no_key=True, of=("self",)).order_by("pk"))


def payout_lock(payout_id: int) -> Payout:
    """Step 5: one payout (with its seller, read, not locked)."""
    return (
        Payout.objects.select_for_update(no_key=True, of=("self",))
        .select_related("seller")
        .get(pk=payout_id)
    )


def sellers_money_lock(seller_ids: Iterable[int]) -> None:
    """Step 6: the money locks of these sellers, ids ascending."""
    ids = sorted(set(seller_ids))
    if ids:
        list(
            Seller.objects.select_for_update(no_key=True)
            .filter(pk__in=ids)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
