"""Text bound for a spreadsheet (CSV downloads): shown as text, never run as a formula."""

from __future__ import annotations

# A cell starting with one of these is a formula to Excel, LibreOffice and Sheets.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_text(value: str) -> str:
    """``value`` with a leading apostrophe when a spreadsheet would read it as a formula
    (CSV injection), unchanged otherwise."""
    return f"'{value}" if value.startswith(FORMULA_STARTS) else value
