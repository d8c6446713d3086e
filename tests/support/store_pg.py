"""A throwaway PostgreSQL server for the store tests: Debian's binaries, a data directory of its
own, 127.0.0.1 on a free port, password (SCRAM) authentication over TCP, stopped by the fixture.

initdb and postgres refuse to run as root, so as root the server runs as the ``postgres`` system
user (created by the Debian package) through ``runuser``; its directory is made with mkdtemp and
handed to that user, because pytest's own tmp directories are private to root. As any other user
it runs as that user.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

USER = "rackval"
PASSWORD = "pg-test-Secret-42"  # this throwaway server's superuser password, never a real one
TIMEOUT_S = 60


def find_bindir() -> Path:
    """Newest /usr/lib/postgresql/<version>/bin holding initdb (Debian's layout)."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: [int(x) for x in re.findall(r"\d+", p.parent.parent.name)],
    )
    if not candidates:
        raise RuntimeError("PostgreSQL server binaries not found under /usr/lib/postgresql: apt-get install postgresql")
    return candidates[-1].parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """Start with ``PostgresServer.start()``; ``create_database()`` gives a fresh database's URL."""

    def __init__(self, root: Path, port: int, run_as: list[str]) -> None:
        self.root = root
        self.data = root / "data"
        self.port = port
        self._run_as = run_as
        self._bindir = find_bindir()
        self._names = itertools.count(1)

    @classmethod
    def start(cls) -> PostgresServer:
        run_as: list[str] = []
        owner: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError as exc:
                raise RuntimeError("running as root needs the 'postgres' user (apt-get install postgresql)") from exc
            run_as = ["runuser", "-u", "postgres", "--"]
        root = Path(tempfile.mkdtemp(prefix="rackval-pg-"))
        if owner is not None:
            os.chown(root, owner.pw_uid, owner.pw_gid)
        server = cls(root, _free_port(), run_as)
        try:
            server._initdb(owner)
            server._pg_ctl_start()
        except BaseException:
            server.stop()
            raise
        return server

    def _run(self, *args: str, timeout: float = TIMEOUT_S) -> None:
        proc = subprocess.run(
            [*self._run_as, *args],
            cwd=self.root,
            env={**os.environ, "LC_ALL": "C", "LANG": "C"},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if proc.returncode != 0:
            log = self.root / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{' '.join(args[:2])} failed ({proc.returncode}): {proc.stderr.strip()}\n{tail}")

    def _initdb(self, owner: pwd.struct_passwd | None) -> None:
        pwfile = self.root / "pwfile"
        pwfile.write_text(PASSWORD + "\n")
        if owner is not None:
            os.chown(pwfile, owner.pw_uid, owner.pw_gid)
        pwfile.chmod(0o600)
        self._run(
            str(self._bindir / "initdb"), "-D", str(self.data), "-U", USER, f"--pwfile={pwfile}",
            "--auth-local=trust", "--auth-host=scram-sha-256", "--locale=C", "--encoding=UTF8", "--no-sync",
        )  # fmt: skip

    def _pg_ctl_start(self) -> None:
        # fsync off: the tests kill clients, not the server, and speed matters on a shared box
        options = f"-k {self.root} -h 127.0.0.1 -p {self.port} -c fsync=off"
        for attempt in range(3):
            try:
                self._run(
                    str(self._bindir / "pg_ctl"), "start", "-D", str(self.data), "-l", str(self.root / "server.log"),
                    "-w", "-t", "30", "-o", options,
                )  # fmt: skip
                return
            except RuntimeError:
                if attempt == 2:
                    raise
                self.port = _free_port()  # someone took the port between choosing and binding it
                options = re.sub(r"-p \d+", f"-p {self.port}", options)

    def url(self, dbname: str, password: str = PASSWORD, user: str = USER) -> str:
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{dbname}"

    def admin(self) -> psycopg.Connection:
        return psycopg.connect(self.url("postgres"), autocommit=True, connect_timeout=10)

    def create_database(self) -> str:
        name = f"store_{next(self._names)}"
        with self.admin() as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def _postmaster_pid(self) -> int | None:
        with contextlib.suppress(OSError, ValueError, IndexError):
            return int((self.data / "postmaster.pid").read_text().splitlines()[0])
        return None

    def stop(self) -> None:
        """Fast shutdown through pg_ctl; SIGKILL by PID if that does not finish; remove the files."""
        try:
            if self.data.exists():
                pid = self._postmaster_pid()
                try:
                    pg_ctl = str(self._bindir / "pg_ctl")
                    self._run(pg_ctl, "stop", "-D", str(self.data), "-m", "fast", "-w", "-t", "20")
                except (RuntimeError, subprocess.TimeoutExpired):
                    if pid is not None:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(pid, signal.SIGKILL)
                        deadline = time.monotonic() + 10
                        while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
                            time.sleep(0.05)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
