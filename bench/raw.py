"""The raw-SQL baselines' own database connection (call after ``django.setup()``)."""

from __future__ import annotations

import psycopg


def raw_connection() -> psycopg.Connection:
    """A psycopg connection of its own to the database Django is configured for."""
    from django.db import connection

    params = connection.settings_dict
    return psycopg.connect(
        dbname=params["NAME"],
        user=params["USER"] or None,
        password=params["PASSWORD"] or None,
        host=params["HOST"] or None,
        port=params["PORT"] or None,
    )
