"""What a terminal would show: pty output of an interactive CLI turned back into plain text.

Interactive CLIs colour their prompts, redraw lines with ``\\r`` and backspaces, erase their pager
prompt and end lines with ``\\r\\n`` (the pty's output translation). ``ssh_shell`` reads with these
helpers: the last line as shown (to find the prompt or a pager prompt cheaply on long output),
whether that line is only the echo of the command being typed, and the cleaned output.
"""

from __future__ import annotations

import re

# ESC sequences: CSI (with parameters and final byte), OSC (ended by BEL or ST), charset
# selection, and the two-byte forms. Only erase-in-line and cursor moves change what is on the
# line; everything else (colours, bold, title) is dropped.
_ESCAPE = re.compile(r"\x1b(?:\[([0-9;?]*)[ -/]*([@-~])|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[()*+][0-9A-Za-z]|[@-Z\\-_])")
_NEEDS_RENDERING = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # anything but \t and \n (\r included)


def _csi_count(params: str) -> int:
    first = params.split(";")[0].lstrip("?")
    return int(first) if first.isdigit() and int(first) > 0 else 1


def render_terminal(text: str) -> str:
    """What a terminal would show for ``text``: escapes applied or dropped, ``\r``/``\b`` overwrites done.

    Interactive CLIs colour prompts, erase their pager prompt with ``\r`` + spaces or
    backspaces, and end lines with ``\r\n`` (the pty's output translation). Emulating one line
    at a time is enough to recover the text an engineer saw. Lines that were overwritten or
    erased lose trailing blanks (the spaces used to wipe a pager prompt).
    """
    if not _NEEDS_RENDERING.search(text):
        return text
    out: list[str] = []
    line: list[str] = []
    col = 0
    dirty = False

    def put(ch: str) -> None:
        nonlocal col, dirty
        if col < len(line):
            line[col] = ch
            dirty = True
        else:
            line.extend(" " * (col - len(line)))
            line.append(ch)
        col += 1

    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "\n":
            done = "".join(line)
            out.append((done.rstrip() if dirty else done) + "\n")
            line, col, dirty = [], 0, False
        elif ch == "\r":
            col = 0
        elif ch == "\b":
            col = max(col - 1, 0)
        elif ch == "\x1b":
            m = _ESCAPE.match(text, i)
            if m is None:  # a lone ESC (or one cut off at the end): drop it
                i += 1
                continue
            params, final = m.group(1), m.group(2)
            if final == "K":  # erase in line: 0/none = to the end, 1 = to the cursor, 2 = all
                mode = (params or "0").lstrip("?")
                if mode in ("", "0"):
                    del line[col:]
                elif mode == "1":
                    line[:col] = [" "] * min(col, len(line))
                elif mode == "2":
                    line = []
                dirty = True
            elif final == "D":
                col = max(col - _csi_count(params or ""), 0)
            elif final == "C":
                col += _csi_count(params or "")
            elif final == "G":
                col = _csi_count(params or "") - 1
            i = m.end()
            continue
        elif (ch == "\t" or ch >= " ") and ch != "\x7f":
            put(ch)
        i += 1
    if line:
        done = "".join(line)
        out.append(done.rstrip() if dirty else done)
    return "".join(out)


_PROMPT_LINE_MAX = 4096  # longer last lines are output still arriving, not a prompt


def last_line_shown(raw: str, start: int = 0) -> str:
    """The last line of ``raw[start:]`` as a terminal shows it (bounded work on huge lines)."""
    line_start = max(raw.rfind("\n") + 1, start)
    if len(raw) - line_start > _PROMPT_LINE_MAX:
        # Only a carriage return near the end can have put a prompt at the start of this line.
        cr = raw.rfind("\r", len(raw) - _PROMPT_LINE_MAX)
        if cr < 0:
            return ""
        line_start = cr + 1
    return render_terminal(raw[line_start:])


def is_echo(shown: str, cmd: str) -> bool:
    """Is this last line (no newline yet) the terminal echoing the command being typed?"""
    line, typed = shown.strip(), cmd.strip()
    return bool(line) and (typed.startswith(line) or line.endswith(typed))


def strip_pager_prompts(text: str, pager: re.Pattern[str]) -> str:
    """Remove pager prompts left in rendered output: whole lines go, glued ones are cut out."""
    cleaned = []
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\n")
        if pager.search(body):
            body = re.sub(rf"[ \t]*(?:{pager.pattern})[ \t]*", "", body)
            if not body.strip():
                continue
            line = body + ("\n" if line.endswith("\n") else "")
        cleaned.append(line)
    return "".join(cleaned)
