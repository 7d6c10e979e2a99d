"""Volume tiers: the service refuses every overlapping, gapped or open-ended-too-soon
set (naming the tier, saving nothing) and accepts every well-formed one; a line takes
the tier that holds the seller's trailing sales, the next one exactly at a top."""

import pytest
from django.core.exceptions import ValidationError
from hypothesis import given, settings
from hypothesis import strategies as st

from marketplace.services.orders import CartItem, place_order
from payments.models import AuditRecord, CommissionRule, VolumeTier
from payments.revenue.commission import commission_rule_save, tier_for
from payments.revenue.volume_tiers import volume_tiers_save, volume_tiers_validate
from tests.factories import CommissionRuleFactory, ProductFactory, SellerFactory, UserFactory

CURRENCIES = st.sampled_from(["JPY", "USD", "KWD"])


@st.composite
def well_formed(draw):
    """From 0, each next from the top before, the last open; percentages 0-100 %."""
    tops = sorted(draw(st.sets(st.integers(1, 10**9), max_size=6)))
    starts = [0, *tops]
    bps = draw(st.lists(st.integers(0, 10_000), min_size=len(starts), max_size=len(starts)))
    return [(start, tops[i] if i < len(tops) else None, bps[i]) for i, start in enumerate(starts)]


@settings(max_examples=200)
@given(well_formed(), CURRENCIES, st.randoms())
def test_every_well_formed_set_is_accepted_in_any_order(tiers, currency, random):
    shuffled = list(tiers)
    random.shuffle(shuffled)
    assert volume_tiers_validate(currency=currency, tiers=shuffled) == tiers


@st.composite
def malformed(draw):
    """A well-formed set (of at least two tiers) broken in one way."""
    tiers = draw(well_formed().filter(lambda t: len(t) >= 2))
    i = draw(st.integers(0, len(tiers) - 2))
    start, _top, bps = tiers[i]
    how = draw(st.sampled_from(["overlap", "gap", "open middle", "closed last", "not from 0"]))
    if how == "overlap":  # the next tier starts before this one ends
        nxt = tiers[i + 1]
        new_top = draw(st.integers(nxt[0] + 1, nxt[0] + 10**6))
        if nxt[1] is not None and new_top >= nxt[1]:
            new_top = nxt[0] + 1 if nxt[0] + 1 < nxt[1] else None
            if new_top is None:
                return draw(malformed())
        tiers[i] = (start, new_top, bps)
    elif how == "gap":  # this one ends before the next starts
        nxt = tiers[i + 1]
        if nxt[0] - start < 2:
            return draw(malformed())
        tiers[i] = (start, draw(st.integers(start + 1, nxt[0] - 1)), bps)
    elif how == "open middle":
        tiers[i] = (start, None, bps)
    elif how == "closed last":
        last_start, _, last_bps = tiers[-1]
        tiers[-1] = (last_start, last_start + draw(st.integers(1, 10**6)), last_bps)
    else:
        _first_start, first_top, first_bps = tiers[0]
        shift = draw(st.integers(1, (first_top or 2) - 1)) if (first_top or 2) > 1 else 1
        if first_top is not None and shift >= first_top:
            return draw(malformed())
        tiers[0] = (shift, first_top, first_bps)
    return tiers


@settings(max_examples=300)
@given(malformed(), CURRENCIES)
def test_every_overlapping_or_gapped_set_is_refused_naming_a_tier(tiers, currency):
    with pytest.raises(ValidationError) as refused:
        volume_tiers_validate(currency=currency, tiers=tiers)
    assert all(message.startswith("Tier ") for message in refused.value.messages)


def test_the_errors_say_what_is_wrong():
    def messages(tiers, currency="USD"):
        with pytest.raises(ValidationError) as refused:
            volume_tiers_validate(currency=currency, tiers=tiers)
        return " ".join(refused.value.messages)

    assert "overlaps the next tier" in messages([(0, 100_000, 1000), (50_000, None, 800)])
    assert "a gap from $1,000.00 to $1,500.00" in messages([(0, 100_000, 1000), (150_000, None, 8)])
    assert "first tier starts at" in messages([(100, None, 1000)])
    assert "last tier has no upper end" in messages([(0, 100, 1000)])
    assert "from 0 to 100%" in messages([(0, None, 10_001)])
    with pytest.raises(ValidationError, match="rule's currency"):
        volume_tiers_validate(currency="", tiers=[(0, None, 5)])


@pytest.mark.parametrize(
    ("sales", "bps"), [(0, 1000), (99_999, 1000), (100_000, 800), (499_999, 800), (500_000, 500)]
)
def test_sales_exactly_at_a_top_take_the_next_tier(sales, bps):
    tiers = [
        VolumeTier(from_minor=0, up_to_minor=100_000, percentage_bps=1000),
        VolumeTier(from_minor=100_000, up_to_minor=500_000, percentage_bps=800),
        VolumeTier(from_minor=500_000, up_to_minor=None, percentage_bps=500),
    ]
    assert tier_for(tiers, sales).percentage_bps == bps


@pytest.mark.django_db
def test_saving_replaces_all_tiers_at_once_and_records_it(operator):
    rule = CommissionRuleFactory(currency="USD")
    volume_tiers_save(rule=rule, tiers=[(0, 1000, 1000), (1000, None, 500)], by=operator)
    volume_tiers_save(
        rule=rule, tiers=[(0, 5000, 900), (5000, None, 400)], by=operator, reason="Q3 terms"
    )
    assert list(rule.tiers.values_list("from_minor", "up_to_minor", "percentage_bps")) == [
        (0, 5000, 900),
        (5000, None, 400),
    ]
    record = AuditRecord.objects.filter(reason="Q3 terms").get()
    assert record.changes["volume_tiers"] == [
        "$0.00 to $10.00: 10%; $10.00 and up: 5%",
        "$0.00 to $50.00: 9%; $50.00 and up: 4%",
    ]


@pytest.mark.django_db
def test_a_bad_set_saves_nothing_and_keeps_the_old_tiers(operator):
    rule = CommissionRuleFactory(currency="KWD")
    volume_tiers_save(rule=rule, tiers=[(0, 1000, 1000), (1000, None, 500)], by=operator)
    with pytest.raises(ValidationError):
        volume_tiers_save(rule=rule, tiers=[(0, 1000, 1000), (900, None, 500)], by=operator)
    assert rule.tiers.count() == 2
    rule_without_currency = CommissionRuleFactory(currency="")
    with pytest.raises(ValidationError):
        volume_tiers_save(rule=rule_without_currency, tiers=[(0, None, 500)], by=operator)
    assert not rule_without_currency.tiers.exists()


@pytest.mark.django_db
def test_a_rule_with_tiers_cannot_silently_change_its_currency():
    rule = CommissionRuleFactory(currency="USD", percentage_bps=1000)
    volume_tiers_save(rule=rule, tiers=[(0, 100_000, 1000), (100_000, None, 500)])
    rule.currency = "JPY"
    with pytest.raises(ValidationError):
        commission_rule_save(rule=rule)
    assert CommissionRule.objects.get(pk=rule.pk).currency == "USD"


@pytest.mark.django_db
def test_tiers_on_a_negotiated_rule_are_refused_or_applied():
    seller = SellerFactory(default_currency="USD")
    rule = CommissionRuleFactory(
        scope=CommissionRule.Scope.SELLER, seller=seller, currency="USD", percentage_bps=1000
    )
    try:
        volume_tiers_save(rule=rule, tiers=[(0, None, 200)])
    except ValidationError:
        assert not VolumeTier.objects.exists()
        return
    product = ProductFactory(seller=seller, price_minor=10_000, stock=1, currency="USD")
    order = place_order(customer=UserFactory(), cart_items=[CartItem(product.pk, 1)])
    assert order.lines.get().rule_percentage_bps == 200


@pytest.mark.django_db
def test_tiers_saved_wrong_change_nothing_and_a_change_is_audited():
    rule = CommissionRuleFactory(currency="KWD", percentage_bps=1000)
    volume_tiers_save(rule=rule, tiers=[(0, 1_000, 900), (1_000, None, 800)])
    for bad in (
        [(0, 1_000, 900), (999, None, 800)],  # overlap
        [(0, 1_000, 900), (1_001, None, 800)],  # gap
        [(1, None, 900)],  # not from 0
        [(0, 1_000, 900)],  # a top on the last
        [(0, None, 900), (1_000, None, 800)],  # no top before the last
        [(0, None, 10_001)],
        [(0, None, -1)],
        [(0.5, None, 900)],
        [(0, None, True)],
    ):
        with pytest.raises(ValidationError):
            volume_tiers_save(rule=rule, tiers=bad)
    assert list(rule.tiers.order_by("from_minor").values_list("up_to_minor", flat=True)) == [
        1_000,
        None,
    ]
