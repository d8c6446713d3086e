"""The rack file's table of drivers and their options, generated from the typed option models.

racks/README.md shows this table; a test compares the two, so the documentation of what a rack
file may say under ``options:`` cannot drift from what the loader accepts. Print it with
``python -m rackval.drivers.options_doc``.
"""

from __future__ import annotations

from typing import Any

from pydantic_core import PydanticUndefined

from rackval.drivers import registry


def _default(value: Any) -> str:
    if value is None or value is PydanticUndefined:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return "[" + ", ".join(map(str, value)) + "]"
    if isinstance(value, str):
        return repr(value) if not value.strip() or "\n" in value else value
    return f"{value:g}" if isinstance(value, float) else str(value)


def options_table() -> str:
    """Markdown: one row per built-in driver, its kind, class and every option with its default."""
    rows = ["| driver | kind | class | options (default) |", "|---|---|---|---|"]
    for name, entry in sorted(registry.BUILTIN.items(), key=lambda kv: (kv[1].kind or "", kv[0])):
        model = registry.options_model(name)
        fields = model.model_fields.items() if model is not None else ()
        options = ", ".join(
            f"`{field}`" + (f" ({d})" if (d := info.description or _default(info.default)) else "")
            for field, info in sorted(fields)
        )
        rows.append(f"| `{name}` | {entry.kind} | `{entry.target.split(':')[1]}` | {options} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(options_table(), end="")
