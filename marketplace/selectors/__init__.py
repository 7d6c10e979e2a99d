"""Reads of the catalog for the shop's pages and API (no writes). May import
``marketplace.models``, ``accounts.models`` and the shared kernel."""
