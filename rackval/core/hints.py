"""``did you mean 'x'?`` for a name that is not one of the known ones, worded the same everywhere.

Rack files, specs, fault files and driver options are typed by hand; a misspelt name should be
answered with the name that was probably meant, not only with the list of every valid one.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(word: object, choices: Iterable[object], *, cutoff: float = 0.6) -> str:
    """``did you mean 'x'?`` for the closest of ``choices`` to ``word`` ("" when none is close)."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=cutoff)
    return f"did you mean {close[0]!r}?" if close else ""
