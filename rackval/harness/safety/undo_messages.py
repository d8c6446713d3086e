"""Undo messages for people: a script quoted in many undo messages is shown once.

Why: a driver's error names the operation it tried, and for some actions that operation is a whole
script. Stopping a GPU node's load sends ``sh -c STOP_SCRIPT ...`` over SSH
(``rackval.drivers.node.linux``), and the SSH transport's error quotes the command it ran. When
the nodes stop answering before the end of a run, every node's undo fails with the same 25-line
script in its message: a 64-node rack pasted it 64 times into the report and the terminal.

The store keeps every undo message whole (it is the evidence). What people read is shortened
here: each quoted literal that is a script (it spans lines, or is longer than
``SCRIPT_MIN_CHARS``) becomes ``<script N>``, and each distinct script is listed once with the
actions whose messages quote it. The report's action log and banner, and the terminal's "rack may
be left changed" lines, use the same numbering.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from dataclasses import dataclass

from rackval.harness.store.records import ActionRecord

SCRIPT_MIN_CHARS = 200
"""A single-line quoted command at least this long counts as a script."""
# A Python repr of a string (how DeviceError messages quote commands): single or double quotes
# with backslash escapes inside. The alternatives are disjoint, so matching is linear.
_QUOTED = re.compile(r"'(?:[^'\\\n]|\\.)*'|\"(?:[^\"\\\n]|\\.)*\"")


@dataclass(frozen=True)
class QuotedScript:
    """One distinct script quoted by undo messages: its text as sent, and the actions quoting it."""

    number: int
    text: str
    actions: tuple[ActionRecord, ...]

    @property
    def label(self) -> str:
        return f"script {self.number}"

    @property
    def first_line(self) -> str:
        return self.text.split("\n", 1)[0]

    @property
    def lines(self) -> int:
        return self.text.count("\n") + 1


@dataclass(frozen=True)
class UndoMessages:
    """``messages[i]`` is the undo message of the i-th action given, each script replaced by
    ``<script N>``; ``scripts`` lists each distinct script once, numbered from 1."""

    messages: tuple[str, ...]
    scripts: tuple[QuotedScript, ...]


def _script_of(literal: str) -> str | None:
    try:
        text = ast.literal_eval(literal)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    if not isinstance(text, str):
        return None
    return text if "\n" in text or len(text) >= SCRIPT_MIN_CHARS else None


def _shorten(message: str, numbers: dict[str, int]) -> tuple[str, list[str]]:
    """``message`` with each quoted script replaced by ``<script N>`` (numbering new scripts in
    ``numbers``), and the scripts it quoted."""
    parts: list[str] = []
    quoted: list[str] = []
    end = 0
    for match in _QUOTED.finditer(message):
        script = _script_of(match.group(0))
        if script is None:
            continue
        number = numbers.setdefault(script, len(numbers) + 1)
        parts += [message[end : match.start()], f"<script {number}>"]
        end = match.end()
        if script not in quoted:
            quoted.append(script)
    return "".join(parts) + message[end:], quoted


def short_undo_messages(actions: Sequence[ActionRecord]) -> UndoMessages:
    """The undo messages of ``actions`` with every quoted script replaced by its number."""
    numbers: dict[str, int] = {}
    quoting: dict[str, list[ActionRecord]] = {}
    messages: list[str] = []
    for action in actions:
        message, quoted = _shorten(action.undo_message, numbers)
        messages.append(message)
        for script in quoted:
            quoting.setdefault(script, []).append(action)
    scripts = tuple(QuotedScript(n, text, tuple(quoting[text])) for text, n in numbers.items())
    return UndoMessages(tuple(messages), scripts)
