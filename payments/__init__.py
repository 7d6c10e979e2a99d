"""Money: every amount the marketplace takes, keeps, gives back and pays out.

Its packages, in layers (docs/architecture.md; import-linter's contract
"payments-layers" keeps them): entry points (``api/``, ``admin/``, ``views``,
``tasks``, ``management/``) over ``collection`` | ``reporting`` | ``checks``, over
``payouts`` | ``revenue``, over ``integrations`` | ``processors``, over ``ledger``, over
``models``. ``payments`` may import ``marketplace.orders``, ``marketplace.models``,
``accounts`` and the shared kernel; only ``marketplace.services`` and entry points
import it.
"""
