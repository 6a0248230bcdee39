"""CSV cells a spreadsheet opens safely: one rule for every CSV the services serve (the open-data
feed in publication, the managers' export in scoring)."""

from __future__ import annotations

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_text(text: str) -> str:
    """A text cell a spreadsheet would run as a formula (OWASP CSV injection: it starts with
    = + - @ tab or CR) gets a leading single quote, which makes it plain text."""
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text
