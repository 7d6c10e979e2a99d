"""Sellers for the benchmarks: ``n`` users with shops whose payouts are enabled on the
local processor, made in three bulk inserts (call inside a transaction, after
``django.setup()``)."""

from __future__ import annotations


def bench_sellers(n: int, *, tag: str) -> tuple[list, list]:
    """(users, sellers), the i-th seller owning the i-th user; ``tag`` keeps the local
    account ids of different benchmarks apart."""
    from accounts.models import Seller, User
    from payments.models import LocalAccount

    users = User.objects.bulk_create(
        User(email=f"bench{i}@example.com", password="!") for i in range(n)
    )
    LocalAccount.objects.bulk_create(
        LocalAccount(
            id=f"acct_local_{tag}{i}",
            email=f"bench{i}@example.com",
            country="US",
            details_submitted=True,
            idempotency_key=f"bench-{tag}-{i}",
        )
        for i in range(n)
    )
    sellers = Seller.objects.bulk_create(
        Seller(
            user=user,
            display_name=f"Bench {i}",
            slug=f"bench-{i}",
            country="US",
            default_currency="USD",
            payout_account_id=f"acct_local_{tag}{i}",
            payout_status=Seller.PayoutStatus.ENABLED,
        )
        for i, user in enumerate(users)
    )
    return users, sellers
