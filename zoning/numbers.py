"""Numbers as people read them: enough digits to be right, never "0" for 0.1.

Used by every place a decision number is printed (CLI tables, the PDF report); the web pages
use the same rule in ``api/static/i18n.js`` (``fmtQ``).
"""

from __future__ import annotations

import math
from typing import Any


def quantity(value: Any, *, empty: str = "—") -> str:
    """``value`` with sensible precision: 1,234 · 296 · 29.6 · 2.96 · 0.30 · 0.012.

    Three significant digits down to 10, two below; whole numbers print whole; numbers of 100
    or more are rounded and get thousands separators; 0 is "0"; NaN/None/inf print ``empty``."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return empty
    if not math.isfinite(v):
        return empty
    a = abs(v)
    if a == 0:
        return "0"
    if a >= 100 or (a >= 1 and v == round(v)):  # whole numbers (a herd of 15) print whole
        return f"{v:,.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    digits = 1 - math.floor(math.log10(a))  # two significant digits
    return f"{v:.{digits}f}"


def share(value: Any, *, empty: str = "—") -> str:
    """A 0…1 share as a percentage with sensible precision (45 %, 4.5 %, 0.45 %)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return empty
    if not math.isfinite(v):
        return empty
    return f"{100 * v:.0f} %" if abs(v) >= 0.1 else f"{quantity(100 * v)} %"
