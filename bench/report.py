"""The one table row every benchmark prints, so ``make bench`` can gather them.

Each row says what was measured, how much work, the time it took, the rate, the
database statements it ran, and the ratio to the limit it is measured against in
the same run on the same database, with the target that ratio must meet.
``bench/__main__.py`` runs the benchmarks and collects the lines starting with
``ROW_PREFIX``.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

ROW_PREFIX = "| "
HEADER = (
    "| benchmark | work | time | rate | DB statements | measured against | ratio | target |\n"
    "|---|---|---|---|---|---|---|---|"
)


@dataclass(frozen=True, slots=True)
class Row:
    what: str
    work: str
    time: str
    rate: str
    statements: str
    against: str
    ratio: str
    target: str
    met: bool

    def __str__(self) -> str:
        verdict = "met" if self.met else "NOT MET"
        return (
            f"| {self.what} | {self.work} | {self.time} | {self.rate} | {self.statements} | "
            f"{self.against} | {self.ratio} | {self.target}: {verdict} |"
        )


def emit(row: Row) -> None:
    """Print the row (and the header above it, so a single benchmark reads on its own)."""
    print()
    print(HEADER)
    print(row, flush=True)


def percentile(samples: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    ordered = sorted(samples)
    rank = max(1, -(-len(ordered) * p // 100))  # ceil(n * p / 100), at least 1
    return ordered[int(rank) - 1]


def median(samples: list[float]) -> float:
    return statistics.median(samples)
