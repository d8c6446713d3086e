"""Device text made safe for a terminal: control characters become visible escapes.

A device's strings (a Manufacturer, an outlet name, an SEL message, an error body) are written
by whoever configured or built the device, and they reach the engineer's terminal through the
probe's table, pytest's failure messages and every ``DeviceError``. An ESC sequence in them can
clear the screen, move the cursor or recolour the lines that follow; a CR or LF can forge a
line of output ("PASS"); a bidi override can make text read differently from what it is. Here,
and only here, such characters are turned into visible escapes, so every place that prints
device text uses the same rule.

The rule is Python's notion of printable: every character ``str.isprintable`` refuses (C0 and
C1 controls, DEL, format characters such as the bidi overrides and zero-width joiners, line and
paragraph separators, unassigned code points, spaces other than the plain space) is written as
``\\n``, ``\\r``, ``\\t``, ``\\xNN``, ``\\uNNNN`` or ``\\UNNNNNNNN``, as ``repr`` would. Backslashes
are left alone, so text that is already escaped (a ``repr``) passes unchanged. HTML output is
escaped separately (the report's Jinja environment autoescapes).
"""

from __future__ import annotations

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(char: str) -> str:
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def printable(text: str) -> str:
    """``text`` with every character a terminal could act on written as a visible escape."""
    if text.isprintable():  # the common case: nothing to do, no copy
        return text
    return "".join(c if c.isprintable() else _escape(c) for c in text)
