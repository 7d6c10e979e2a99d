"""Platform balances in shards (docs/decisions/0004-platform-balance-shards.md): a
posting adds to one shard per platform account, chosen by its key; seller accounts
keep their exact running balance; ``check_ledger`` proves both."""

import threading
import zlib

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Sum
from hypothesis import HealthCheck, given
from hypothesis import settings as examples
from hypothesis import strategies as st

from payments.checks import ledger_check
from payments.checks.books import check_transactions
from payments.ledger.balances import platform_balance
from payments.ledger.posting import (
    Posting,
    balance_shard,
    ledger_post,
    platform_account,
    seller_account,
)
from payments.models import LedgerAccount, LedgerBalanceShard, LedgerEntry, LedgerTransaction
from tests.factories import CommissionRuleFactory, SellerFactory
from tests.money_helpers import enable_payouts, paid_order

Kind = LedgerAccount.Kind


def capture(key, processor, commission, lines):
    """A posting shaped as a payment capture (an adjustment: there are no orders here):
    ``lines`` [(pending account, share, commission)]."""
    postings = [Posting(processor, sum(share + cut for _, share, cut in lines))]
    for pending, share, cut in lines:
        postings += [Posting(pending, -share), Posting(commission, -cut)]
    return ledger_post(
        kind=LedgerTransaction.Kind.ADJUSTMENT,
        idempotency_key=key,
        reference_type="test",
        reference_id=key,
        postings=postings,
    )


def balance(account):
    return LedgerAccount.objects.with_balance().get(pk=account.pk).balance


def entries_sum(account):
    return LedgerEntry.objects.filter(account=account).aggregate(t=Sum("amount_minor"))["t"] or 0


def shards_of(account):
    return dict(
        LedgerBalanceShard.objects.filter(account=account).values_list("shard", "balance_minor")
    )


@pytest.fixture
def books(db, seller, other_seller):
    return {
        "processor": platform_account(Kind.PROCESSOR, "USD"),
        "commission": platform_account(Kind.COMMISSION, "USD"),
        "a": seller_account(seller, Kind.PENDING, "USD"),
        "b": seller_account(other_seller, Kind.PENDING, "USD"),
    }


def post_capture(books, key, share_a=900, share_b=450):
    return capture(
        key,
        books["processor"],
        books["commission"],
        [(books["a"], share_a, share_a // 9), (books["b"], share_b, share_b // 9)],
    )


# --- the shard of a key ----------------------------------------------------------------


@pytest.fixture
def commission(db):
    return CommissionRuleFactory(percentage_bps=1000)


def _two_rounds_crossed(first, second):
    """Two transactions, each posting twice, released together between their two
    postings: each holds what its first posting locked while its second one runs."""
    import contextlib
    import threading

    from django.db import transaction

    barrier, results = threading.Barrier(2), [None, None]

    def worker(i, rounds):
        try:
            with transaction.atomic():
                rounds[0]()
                # Both hold their first round's locks (or the other is queued behind them).
                with contextlib.suppress(threading.BrokenBarrierError):
                    barrier.wait(3)
                rounds[1]()
        except Exception as exc:
            results[i] = exc
        finally:
            connection.close()

    threads = [
        threading.Thread(target=worker, args=(i, rounds))
        for i, rounds in enumerate([first, second])
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def _key_on(shard, prefix, shards=2):
    from payments.ledger.posting import balance_shard

    return next(
        f"{prefix}-{n}" for n in range(1000) if balance_shard(f"{prefix}-{n}", shards) == shard
    )


def _post_twice_crossed(settings, *, shards):
    from payments.ledger.posting import Posting, ledger_post, platform_account
    from payments.models import LedgerTransaction

    settings.LEDGER_BALANCE_SHARDS = shards
    processor = platform_account(LedgerAccount.Kind.PROCESSOR, "USD")
    fees = platform_account(LedgerAccount.Kind.PROCESSOR_FEES, "USD")

    def post(key):
        return lambda: ledger_post(
            kind=LedgerTransaction.Kind.PROCESSOR_FEE,
            idempotency_key=key,
            reference_type="review",
            reference_id=0,
            postings=[Posting(processor, -100), Posting(fees, 100)],
        )

    results = _two_rounds_crossed(
        [post(_key_on(0, "t1-a")), post(_key_on(1, "t1-b"))],
        [post(_key_on(1, "t2-a")), post(_key_on(0, "t2-b"))],
    )

    assert results == [None, None]
    assert LedgerTransaction.objects.count() == 4
    assert ledger_check().ok


def test_the_shard_is_the_crc32_of_the_key_so_it_is_the_same_in_every_process():
    assert balance_shard("payment:1", 16) == zlib.crc32(b"payment:1") % 16 == 0
    assert balance_shard("payment:2", 16) == 10
    assert balance_shard("refund:7", 1) == 0


def test_keys_spread_over_every_shard():
    hits = {balance_shard(f"payment:{n}", 16) for n in range(500)}

    assert hits == set(range(16))


# --- postings ----------------------------------------------------------------------------


def test_a_posting_adds_to_the_one_shard_of_its_key_on_each_platform_account(books):
    post_capture(books, "payment:1")

    shard = balance_shard("payment:1", 16)
    assert shards_of(books["processor"]) == {shard: 1500}
    assert shards_of(books["commission"]) == {shard: -150}
    # The platform's own rows keep 0; sellers keep their running balance and no shards.
    assert set(
        LedgerAccount.objects.filter(seller=None).values_list("balance_minor", flat=True)
    ) == {0}
    assert LedgerAccount.objects.get(pk=books["a"].pk).balance_minor == -900
    assert LedgerAccount.objects.get(pk=books["b"].pk).balance_minor == -450
    assert not LedgerBalanceShard.objects.filter(account__seller__isnull=False).exists()


@pytest.mark.django_db(transaction=True)  # each posting its own transaction, as in production
def test_after_many_postings_each_balance_is_the_sum_of_its_entries(books):
    for n in range(60):
        post_capture(books, f"payment:{n}", share_a=900 + n, share_b=450 + 9 * n)

    for name in ("processor", "commission", "a", "b"):
        assert balance(books[name]) == entries_sum(books[name]), name
    assert LedgerBalanceShard.objects.filter(account=books["processor"]).count() > 8
    assert balance(books["a"]) == -sum(900 + n for n in range(60))
    assert LedgerAccount.objects.get(pk=books["a"].pk).balance_minor == balance(books["a"])
    platform = platform_balance(currency="USD")
    assert platform.cash_at_processor == entries_sum(books["processor"])
    assert platform.commission_earned == -entries_sum(books["commission"])
    assert ledger_check().ok, ledger_check().problems


def test_a_repeated_key_writes_nothing_and_leaves_the_shards_as_they_were(books):
    first = post_capture(books, "payment:1")
    before = list(LedgerBalanceShard.objects.order_by("pk").values_list("pk", "balance_minor"))

    again = post_capture(books, "payment:1")

    assert again == first
    assert (
        list(LedgerBalanceShard.objects.order_by("pk").values_list("pk", "balance_minor")) == before
    )
    assert LedgerEntry.objects.count() == 5
    assert LedgerAccount.objects.get(pk=books["a"].pk).balance_minor == -900


def test_a_platform_account_netting_to_zero_writes_no_shard(books):
    bank = platform_account(Kind.BANK, "USD")

    ledger_post(
        kind="adjustment",
        idempotency_key="adjust:1",
        reference_type="test",
        reference_id=1,
        postings=[
            Posting(bank, 100),
            Posting(bank, -100),
            Posting(books["processor"], 5),
            Posting(books["commission"], -5),
        ],
    )

    assert not LedgerBalanceShard.objects.filter(account=bank).exists()
    assert LedgerBalanceShard.objects.count() == 2
    assert ledger_check().ok


def test_with_one_shard_every_posting_adds_to_shard_0(books, settings):
    settings.LEDGER_BALANCE_SHARDS = 1
    for n in range(5):
        post_capture(books, f"payment:{n}")

    assert shards_of(books["processor"]) == {0: 5 * 1500}


def test_fewer_shards_later_keeps_every_balance(books, settings):
    for n in range(20):
        post_capture(books, f"payment:{n}")
    settings.LEDGER_BALANCE_SHARDS = 2
    for n in range(20, 30):
        post_capture(books, f"payment:{n}")

    assert balance(books["processor"]) == 30 * 1500
    assert ledger_check().ok, ledger_check().problems


def test_a_platform_account_cannot_hold_a_balance_of_its_own(books):
    with pytest.raises(IntegrityError), transaction.atomic():
        LedgerAccount.objects.filter(pk=books["processor"].pk).update(balance_minor=1)


# --- check_ledger ------------------------------------------------------------------------


def test_check_ledger_reports_a_tampered_shard(books):
    post_capture(books, "payment:1")
    LedgerBalanceShard.objects.filter(account=books["commission"]).update(
        balance_minor=F("balance_minor") - 1
    )

    problems = ledger_check().problems

    assert problems == [
        "Platform · Commission earned · USD: its balance shards sum to -151 "
        "but its entries sum to -150."
    ]


def test_check_ledger_reports_a_shard_on_a_seller_account(books):
    post_capture(books, "payment:1")
    LedgerBalanceShard.objects.create(account=books["a"], shard=3, balance_minor=0)

    problems = ledger_check().problems

    assert len(problems) == 1
    assert problems[0].endswith(": a seller account has balance shards.")


# --- any postings -------------------------------------------------------------------------

amounts = st.integers(min_value=1, max_value=10**9)


@st.composite
def postings_plans(draw):
    """Captures and refunds with repeated keys: [(key, share_a, cut_a, share_b, cut_b, sign)]."""
    return draw(
        st.lists(
            st.tuples(
                st.integers(min_value=0, max_value=40),  # the key: repeats are no-ops
                amounts,
                st.integers(min_value=0, max_value=10**6),
                amounts,
                st.integers(min_value=1, max_value=10**6),
                st.sampled_from([1, -1]),
            ),
            min_size=1,
            max_size=25,
        )
    )


@examples(
    deadline=None,
    max_examples=40,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(plan=postings_plans(), shards=st.integers(min_value=1, max_value=32))
def test_any_postings_leave_every_balance_equal_to_its_entries(books, settings, plan, shards):
    settings.LEDGER_BALANCE_SHARDS = shards
    expected: dict[str, int] = {"processor": 0, "commission": 0, "a": 0, "b": 0}
    posted = set()
    with transaction.atomic():
        for key, share_a, cut_a, share_b, cut_b, sign in plan:
            lines = [
                (books["a"], sign * share_a, sign * cut_a),
                (books["b"], sign * share_b, sign * cut_b),
            ]
            postings = [Posting(books["processor"], sign * (share_a + cut_a + share_b + cut_b))]
            for pending, share, cut in lines:
                postings.append(Posting(pending, -share))
                if cut:
                    postings.append(Posting(books["commission"], -cut))
            ledger_post(
                kind="adjustment",
                idempotency_key=f"k:{key}",
                reference_type="test",
                reference_id=key,
                postings=postings,
            )
            if key not in posted:
                posted.add(key)
                expected["processor"] += sign * (share_a + cut_a + share_b + cut_b)
                expected["commission"] -= sign * (cut_a + cut_b)
                expected["a"] -= sign * share_a
                expected["b"] -= sign * share_b

        for name, value in expected.items():
            assert balance(books[name]) == value == entries_sum(books[name]), name
        assert {s for s in LedgerBalanceShard.objects.values_list("shard", flat=True)} <= set(
            range(shards)
        )
        problems: list[str] = []
        check_transactions(problems)  # the books; refunds here may leave sellers in debt
        assert problems == []
        transaction.set_rollback(True)  # each example starts from an empty ledger


# --- concurrency (PostgreSQL) --------------------------------------------------------------


def run_together(count, work):
    """``count`` threads released at the same moment, each ``work(i)``; their results or errors."""
    barrier, results, lock = threading.Barrier(count), [], threading.Lock()

    def worker(i):
        try:
            barrier.wait(10)
            result = work(i)
        except Exception as exc:
            result = exc
        finally:
            connection.close()
        with lock:
            results.append(result)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return results


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_many_clients_posting_at_once_leave_exact_balances_and_never_deadlock(books):
    clients, each = 8, 15

    def work(i):
        for n in range(each):
            with transaction.atomic():
                # Every client hits both sellers, in turn first or second in the posting.
                post_capture(books, f"payment:{i}:{n}", share_a=900 + i, share_b=450 + n)
        return "ok"

    results = run_together(clients, work)

    assert results == ["ok"] * clients, results
    assert LedgerTransaction.objects.count() == clients * each
    cuts = sum((900 + i) // 9 + (450 + n) // 9 for i in range(clients) for n in range(each))
    shares_a = sum(900 + i for i in range(clients)) * each
    shares_b = sum(450 + n for n in range(each)) * clients
    assert balance(books["a"]) == -shares_a
    assert balance(books["b"]) == -shares_b
    assert balance(books["commission"]) == -cuts
    assert balance(books["processor"]) == shares_a + shares_b + cuts
    assert LedgerBalanceShard.objects.filter(account=books["processor"]).count() > 1
    assert ledger_check().ok, ledger_check().problems


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_clients_posting_one_key_at_once_post_it_once(books):
    results = run_together(8, lambda i: post_capture(books, "payment:same"))

    assert len({r.pk for r in results}) == 1, results
    assert LedgerTransaction.objects.count() == 1
    assert shards_of(books["processor"]) == {balance_shard("payment:same", 16): 1500}
    assert LedgerAccount.objects.get(pk=books["a"].pk).balance_minor == -900
    assert ledger_check().ok, ledger_check().problems


@pytest.mark.postgres
def test_the_hot_tables_have_their_own_autovacuum_and_fillfactor(db):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname, reloptions FROM pg_class WHERE relname IN"
            " ('payments_ledgeraccount', 'payments_ledgerbalanceshard') ORDER BY relname"
        )
        options = {name: set(opts or []) for name, opts in cursor.fetchall()}

    assert {"fillfactor=80", "autovacuum_vacuum_scale_factor=0.01"} <= options[
        "payments_ledgeraccount"
    ]
    assert {"fillfactor=50", "autovacuum_vacuum_threshold=500"} <= options[
        "payments_ledgerbalanceshard"
    ]


@pytest.mark.django_db
def test_two_postings_in_one_outer_transaction_leave_exact_shards(commission, settings):
    """Sound: postings made inside an outer transaction that already posted add to
    their own shards, and every platform balance stays the sum of its entries."""
    from django.db import transaction

    settings.LEDGER_BALANCE_SHARDS = 4
    a, b = enable_payouts(SellerFactory()), enable_payouts(SellerFactory())
    with transaction.atomic():
        paid_order([(a, 10000, 1), (b, 5000, 1)])
        paid_order([(b, 7000, 1), (a, 3000, 1)])
    assert ledger_check().ok
    platform = LedgerAccount.objects.filter(seller__isnull=True).with_balance()
    for account in platform:
        shards = LedgerBalanceShard.objects.filter(account=account)
        assert account.balance == sum(s.balance_minor for s in shards)
        assert account.balance_minor == 0


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_transactions_that_post_twice_do_not_deadlock_on_the_platform_shards(settings):
    _post_twice_crossed(settings, shards=2)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_with_one_shard_as_before_the_change_the_same_transactions_queue(settings):
    """The comparison for R5: with one shard (one row per platform account, as before
    the change) the same two transactions queue on it and both commit."""
    _post_twice_crossed(settings, shards=1)
