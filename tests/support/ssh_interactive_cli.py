"""A small interactive network-switch CLI that sshd runs as its ForceCommand (``python -S sshi_cli.py DIR``).

It behaves like the CLIs the interactive SSH transport exists for: it refuses exec channels
(prints an error and exits when SSH_ORIGINAL_COMMAND is set), prints a banner with ANSI escapes
and a ``switch1#`` prompt, answers ``terminal length 0``, pages long outputs with ``--More--``
(read in cbreak mode, like a real pager) unless paging is off, and answers ``show ... | json``
with the EOS captures in tests/data/eos/.

How it misbehaves is read at session start from ``DIR/behaviour.json`` (see ``sshi_sshd``):

- ``ignore_terminal_length``: accept ``terminal length 0`` but keep paging.
- ``pager_erase``: how the pager prompt is wiped after a key: ``cr`` (``\\r`` + spaces + ``\\r``),
  ``backspace`` (``\\b`` + spaces + ``\\b``), ``ansi`` (``\\r`` + erase-in-line) or ``none`` (the
  prompt stays on its own line).
- ``exec_refusal``: ``message`` (print an EOS-style error, exit 1) or ``silent`` (exit 1, no output).
- ``hostname``: the prompt's host name.

Each exec attempt is appended to ``DIR/exec.log`` and each interactive session to
``DIR/sessions.log``, so tests can count them. Standard library only (sshd runs it with -S).
"""

from __future__ import annotations

import json
import os
import sys
import termios
import time
import tty

PAGE_LINES = 20
FILES = {
    "show version | json": "show_version.json",
    "show interfaces status | json": "show_interfaces_status.json",
    "show lldp neighbors | json": "show_lldp_neighbors.json",
    "show interfaces counters | json": "show_interfaces_counters.json",
    "show interfaces counters errors | json": "show_interfaces_counters_errors.json",
    "show system environment temperature | json": "show_system_environment_temperature.json",
}
ERASE = {
    "cr": "\r" + " " * 10 + "\r",
    "backspace": "\b" * 10 + " " * 10 + "\b" * 10,
    "ansi": "\r\x1b[K",
    "none": "\n",
}
LONG_OUTPUT = "".join(f"line {n:03d} \x1b[32mok\x1b[0m value={n * 7}\n" for n in range(1, 61))


def write(text: str) -> None:
    data = text.encode()
    while data:
        data = data[os.write(1, data) :]


def log(path: str, line: str) -> None:
    with open(path, "a") as fh:
        fh.write(line + "\n")


class Cli:
    def __init__(self, state_dir: str, data_dir: str, behaviour: dict) -> None:
        self.state_dir = state_dir
        self.data_dir = data_dir
        self.behaviour = behaviour
        self.paging = True
        self.pending = b""

    def prompt(self) -> None:
        write(f"\x1b[1m{self.behaviour.get('hostname', 'switch1')}\x1b[0m#")

    def readline(self) -> str | None:
        while b"\n" not in self.pending:
            chunk = os.read(0, 4096)
            if not chunk:
                return None
            self.pending += chunk
        line, _, self.pending = self.pending.partition(b"\n")
        return line.decode(errors="replace").strip()

    def page(self, text: str) -> None:
        lines = text.splitlines(keepends=True)
        if not self.paging or len(lines) <= PAGE_LINES:
            write(text)
            return
        erase = ERASE[self.behaviour.get("pager_erase", "cr")]
        for start in range(0, len(lines), PAGE_LINES):
            write("".join(lines[start : start + PAGE_LINES]))
            if start + PAGE_LINES >= len(lines):
                return
            saved = termios.tcgetattr(0)
            tty.setcbreak(0)  # the key must arrive without Enter, and without echo
            try:
                write(" --More-- ")
                key = os.read(0, 1)
            finally:
                termios.tcsetattr(0, termios.TCSANOW, saved)
            write(erase)
            if key in (b"q", b""):
                return

    def answer(self, line: str) -> bool:
        words = line.split()
        if not words:
            return True
        if words == ["terminal", "length", "0"]:
            if not self.behaviour.get("ignore_terminal_length"):
                self.paging = False
            return True
        if words[0] in ("exit", "quit", "logout"):
            return False
        if line == "show long":
            self.page(LONG_OUTPUT)
        elif line == "show colour":
            write("status: \x1b[1;32mgreen\x1b[0m\n")
        elif line == "show tech-support":  # starts answering, then never gives the prompt back
            write("------------- show version -------------\n")
            time.sleep(float(self.behaviour.get("hang_s", 8)))
            sys.exit(0)
        elif " ".join(words) in FILES:
            with open(os.path.join(self.data_dir, FILES[" ".join(words)])) as fh:
                self.page(fh.read())
        else:
            write(f"% Invalid input (at token 0: '{words[0]}')\n")
        return True

    def run(self) -> None:
        log(os.path.join(self.state_dir, "sessions.log"), str(os.getpid()))
        write("\x1b[2J\x1b[H\x1b[1;34mArista Networks EOS shell (sshi test CLI)\x1b[0m\n")
        write("Last login: Sat Nov 22 01:00:00 2026 from 127.0.0.1\n\n")
        while True:
            self.prompt()
            line = self.readline()
            if line is None or not self.answer(line):
                return


def main(argv: list[str]) -> int:
    state_dir, data_dir = argv[1], argv[2]
    path = os.path.join(state_dir, "behaviour.json")
    behaviour: dict = {}
    if os.path.exists(path):
        with open(path) as fh:
            behaviour = json.load(fh)
    command = os.environ.get("SSH_ORIGINAL_COMMAND")
    if command is not None:
        log(os.path.join(state_dir, "exec.log"), command)
        if behaviour.get("exec_refusal", "message") == "message":
            write("% exec command is not supported on this CLI; open an interactive session\n")
        return 1
    Cli(state_dir, data_dir, behaviour).run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
