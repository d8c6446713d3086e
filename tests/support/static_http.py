"""A tiny static Redfish server for the DMTF mockups, used by the driver tests.

Maps ``/redfish/v1/X/Y`` to ``<root>/X/Y/index.json`` and ``/redfish/v1`` to ``<root>/index.json``.
Tests can override a path with raw bytes (malformed bodies), hide a path (404), refuse query
strings (``query_status``: a service that advertises ``$expand`` and fails it) and read the
request log. Logins to SessionService/Sessions get a token when the mockup has a SessionService
(and ``sessions=True``); otherwise 405, so clients fall back to basic auth. Every other request
needs a known token or any basic-auth header (401 otherwise): the payloads are static.
"""

from __future__ import annotations

import itertools
import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

SESSIONS = "/redfish/v1/SessionService/Sessions"


@dataclass(frozen=True)
class RawBody:
    """Bytes to send as-is. ``declared_length``: Content-Length to claim (None: omit it and close
    the connection after the body; a larger value than len(body) makes a truncated response)."""

    body: bytes
    declared_length: int | None = -1  # -1: the true length
    content_type: str = "application/json"


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    token: str | None
    basic: bool
    query: str = ""


class StaticRedfishServer:
    """Serves a mockup directory on 127.0.0.1:<free port> until ``stop()``."""

    def __init__(self, root: Path, *, sessions: bool = True) -> None:
        self.root = Path(root)
        self.sessions_enabled = sessions and (self.root / "SessionService").is_dir()
        self.raw: dict[str, RawBody] = {}
        self.query_status: int | None = None  # answer any request with a query string (``$expand``) with this
        self.hidden: set[str] = set()
        self.requests: list[Seen] = []
        self.tokens: dict[str, str] = {}  # token -> session path
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._httpd.daemon_threads = True
        self.host, self.port = self._httpd.server_address[:2]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()
        self._stopped = False

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def seen(self, method: str | None = None) -> list[Seen]:
        with self._lock:
            return [r for r in self.requests if method is None or r.method == method]

    def file_for(self, path: str) -> Path | None:
        """The index.json backing a Redfish path, if the mockup has it."""
        if not (path == "/redfish/v1" or path.startswith("/redfish/v1/")):
            return None
        rel = path[len("/redfish/v1") :].strip("/")
        candidate = (self.root / rel / "index.json").resolve()
        if self.root.resolve() not in candidate.parents or not candidate.is_file():
            return None
        return candidate

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5.0)


def _make_handler(server: StaticRedfishServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True
        timeout = 10

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(
            self,
            status: int,
            body: bytes = b"",
            headers: dict[str, str] | None = None,
            declared: int | None = -1,
            content_type: str = "application/json",
        ) -> None:
            self.send_response(status)
            if status != 204:
                self.send_header("Content-Type", content_type)
                if declared is None:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                else:
                    length = len(body) if declared == -1 else declared
                    self.send_header("Content-Length", str(length))
                    if length != len(body):
                        self.close_connection = True
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            if body:
                self.wfile.write(body)

        def _json(self, status: int, doc: Any, headers: dict[str, str] | None = None) -> None:
            self._send(status, json.dumps(doc).encode(), headers)

        def _handle(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            path = urlsplit(self.path).path.rstrip("/") or "/"
            token = self.headers.get("X-Auth-Token")
            basic = self.headers.get("Authorization", "").lower().startswith("basic ")
            with server._lock:
                server.requests.append(Seen(method, path, token, basic, urlsplit(self.path).query))
            if path == "/redfish" and method == "GET":
                self._json(200, {"v1": "/redfish/v1/"})
                return
            if path == SESSIONS and method == "POST":
                self._login(raw)
                return
            public = path == "/redfish/v1" and method == "GET"
            with server._lock:
                authed = basic or (token is not None and token in server.tokens)
            if not public and not authed:
                self._json(401, {"error": {"code": "Base.1.5.0.NoValidSession", "message": "No session."}})
                return
            if method == "DELETE" and path.startswith(SESSIONS + "/"):
                with server._lock:
                    known = [t for t, p in server.tokens.items() if p == path]
                    for t in known:
                        del server.tokens[t]
                self._send(204 if known else 404)
                return
            if method == "POST" and "/Actions/" in path:
                self._send(204)
                return
            if method != "GET":
                self._json(405, {"error": {"code": "Base.1.5.0.ActionNotSupported", "message": "No."}})
                return
            if server.query_status is not None and urlsplit(self.path).query:
                self._json(server.query_status, {"error": {"code": "Base.1.5.0.QueryNotSupported", "message": "No."}})
                return
            if path in server.raw:
                r = server.raw[path]
                self._send(200, r.body, declared=r.declared_length, content_type=r.content_type)
                return
            file = None if path in server.hidden else server.file_for(path)
            if file is None:
                self._json(404, {"error": {"code": "Base.1.5.0.ResourceMissingAtURI", "message": f"{path} not found"}})
                return
            self._send(200, file.read_bytes())

        def _login(self, raw: bytes) -> None:
            if not server.sessions_enabled:
                self._json(405, {"error": {"code": "Base.1.5.0.ActionNotSupported", "message": "No sessions."}})
                return
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
            if not isinstance(body, dict) or not body.get("UserName") or "Password" not in body:
                self._json(400, {"error": {"code": "Base.1.5.0.MalformedJSON", "message": "Bad login."}})
                return
            n = next(server._ids)
            token, location = f"static-token-{n}", f"{SESSIONS}/static-{n}"
            with server._lock:
                server.tokens[token] = location
            self._json(
                201,
                {"@odata.id": location, "Id": f"static-{n}", "UserName": body["UserName"]},
                {"X-Auth-Token": token, "Location": location},
            )

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

        def do_PATCH(self) -> None:
            self._handle("PATCH")

        def do_DELETE(self) -> None:
            self._handle("DELETE")

    return Handler
