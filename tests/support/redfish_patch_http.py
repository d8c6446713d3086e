"""tests/support/static_http.py's static Redfish mockup server, plus PATCH and $expand, for driver tests.

PATCH is recorded (path and JSON body) and merged into an overlay of the resource, so a GET
after a PATCH shows the change as a real BMC would; ``patch_status`` makes PATCHes fail instead.
``?$expand`` on a collection inlines its members when ``expand=True`` (the plain static server
ignores query strings, like BMCs that do not implement $expand).
"""

from __future__ import annotations

import copy
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from tests.support.static_http import RawBody, StaticRedfishServer, _make_handler


@dataclass(frozen=True)
class Patched:
    path: str
    body: Any


def merge_patch(target: Any, patch: Any) -> Any:
    """Redfish PATCH semantics for the tests: objects merge, arrays merge element by element."""
    if isinstance(target, dict) and isinstance(patch, dict):
        out = dict(target)
        for key, value in patch.items():
            out[key] = merge_patch(target.get(key), value) if key in target else value
        return out
    if isinstance(target, list) and isinstance(patch, list):
        out_list = list(target)
        for i, value in enumerate(patch):
            if i < len(out_list):
                out_list[i] = merge_patch(out_list[i], value)
            else:
                out_list.append(value)
        return out_list
    return patch


class PatchableRedfishServer(StaticRedfishServer):
    """A StaticRedfishServer that accepts PATCH (recorded and applied) and optionally $expand."""

    def __init__(self, root: Path, *, sessions: bool = True, expand: bool = False) -> None:
        super().__init__(root, sessions=sessions)
        self.expand = expand
        self.patches: list[Patched] = []
        self.patch_status: int | None = None  # e.g. 400: refuse PATCHes with a Redfish error
        self.expanded: list[str] = []  # collections served expanded
        self._patch_lock = threading.Lock()
        self._httpd.RequestHandlerClass = _make_patch_handler(self)

    def document(self, path: str) -> dict[str, Any] | None:
        """The current JSON of a path: the overlay if PATCHed, else the mockup file."""
        raw = self.raw.get(path)
        if raw is not None:
            return json.loads(raw.body)
        file = self.file_for(path)
        return json.loads(file.read_bytes()) if file is not None else None


def _make_patch_handler(server: PatchableRedfishServer) -> type:
    base = _make_handler(server)

    class Handler(base):  # type: ignore[misc, valid-type]
        def _authed(self) -> bool:
            token = self.headers.get("X-Auth-Token")
            basic = self.headers.get("Authorization", "").lower().startswith("basic ")
            return basic or (token is not None and token in server.tokens)

        def do_PATCH(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            path = urlsplit(self.path).path.rstrip("/")
            if not self._authed():
                self._json(401, {"error": {"code": "Base.1.5.0.NoValidSession", "message": "No session."}})
                return
            try:
                body = json.loads(raw)
            except ValueError:
                self._json(400, {"error": {"code": "Base.1.5.0.MalformedJSON", "message": "Bad JSON."}})
                return
            with server._patch_lock:
                server.patches.append(Patched(path, body))
                status = server.patch_status
                if status is None:
                    current = server.document(path)
                    if current is None:
                        status = 404
                    else:
                        merged = merge_patch(current, body)
                        server.raw[path] = RawBody(json.dumps(merged).encode())
            if status is None:
                self._send(204)
            else:
                msg = {"error": {"code": "Base.1.5.0.PropertyValueNotInList", "message": f"PATCH refused ({status})."}}
                self._json(status, msg)

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            if server.expand and "$expand" in unquote(parts.query) and self._authed():
                path = parts.path.rstrip("/")
                doc = server.document(path)
                if doc is not None and isinstance(doc.get("Members"), list):
                    doc = copy.deepcopy(doc)
                    doc["Members"] = [
                        server.document(m["@odata.id"]) or m for m in doc["Members"] if isinstance(m, dict)
                    ]
                    server.expanded.append(path)
                    self._json(200, doc)
                    return
            super().do_GET()

    return Handler
