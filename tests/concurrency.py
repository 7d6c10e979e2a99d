"""Helpers for tests that need two database connections at once."""

import threading

from django.db import connection, transaction


def race(winner, loser):
    """Run ``winner`` in an open transaction, run ``loser`` meanwhile, then commit.

    Returns what ``loser`` raised (or returned).
    """
    started, outcome = threading.Event(), {}

    def first():
        try:
            with transaction.atomic():
                winner()
                started.set()
                # Keep the row uncommitted while the loser inserts the same key;
                # its INSERT waits on our lock until we commit.
                second_thread.join(timeout=2)
        finally:
            connection.close()

    def second():
        started.wait(10)
        try:
            outcome["value"] = loser()
        except Exception as exc:
            outcome["error"] = exc
        finally:
            connection.close()

    second_thread = threading.Thread(target=second)
    first_thread = threading.Thread(target=first)
    first_thread.start()
    second_thread.start()
    first_thread.join(30)
    second_thread.join(30)
    return outcome
