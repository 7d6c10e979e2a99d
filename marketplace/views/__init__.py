"""The shop's pages, entry points (docs/architecture.md): each write calls one service
(``marketplace.services``, ``marketplace.orders`` or ``payments``); reads come from
``marketplace.selectors`` and ``payments.reporting``."""
