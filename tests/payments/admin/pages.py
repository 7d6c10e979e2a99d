"""What an operator reads on an admin page, and the stored units it must not show."""

import html
import re

# Stored units, as a label or column would name them ("percentage_bps" too).
UNIT_WORDS = re.compile(r"minor|(?<![a-z])bps(?![a-z])|basis points", re.IGNORECASE)


def visible_text(page: str) -> str:
    """What a person reads: no tags, attributes, scripts, styles or hidden inputs."""
    page = re.sub(r"<(script|style|template)\b.*?</\1>", " ", page, flags=re.DOTALL | re.I)
    page = re.sub(r"<!--.*?-->", " ", page, flags=re.DOTALL)
    page = re.sub(r"<[^>]+>", " ", page)
    return re.sub(r"\s+", " ", html.unescape(page))


def problems(text: str, raw: set[int]) -> list[str]:
    """Stored units and raw amounts in ``text``."""
    text = text.replace("Minor Outlying Islands", "")  # a country, in the sellers' forms
    found = [match.group(0) for match in UNIT_WORDS.finditer(text)]
    for amount in raw:
        # Standalone: not part of a longer number, a formatted amount ("$77.90") or a date.
        if re.search(rf"(?<![\d.,:/]){amount}(?![\d.,:/-])", text):
            found.append(str(amount))
    return found
