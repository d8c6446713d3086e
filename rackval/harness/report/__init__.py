"""Reports rendered from the results store: the self-contained HTML acceptance report and plots.

``render_report`` is imported lazily so that code which only needs another report module (JUnit,
exports) does not pay for importing matplotlib.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rackval.harness.report.html import render_report

__all__ = ["render_report"]


def __getattr__(name: str) -> Any:
    if name == "render_report":
        from rackval.harness.report.html import render_report

        return render_report
    raise AttributeError(f"module 'rackval.harness.report' has no attribute {name!r}")
