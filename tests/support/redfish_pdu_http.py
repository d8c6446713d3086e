"""The DMTF public-pdu mockup, served statically, plus working Outlet.PowerControl actions.

``StaticRedfishServer`` (tests/support/static_http.py, shared, not ours to change) serves GETs from the
mockup and answers every other POST with 204 or 405. ``PduMockupServer`` wraps it: a POST to an
outlet's PowerControl target (as the mockup's Actions name it, or the schema default
``.../Actions/Outlet.PowerControl``) is recorded, the outlet shows the transitional
PoweringOn/PoweringOff at once and the requested state after ``switch_delay_s`` — like a PDU
sequencing its relays — by overriding the outlet's GET body. Readings of an outlet switched off
drop to 0 and come back from the mockup when it is switched on again.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.support.static_http import RawBody, StaticRedfishServer

POWER_STATES = ("On", "Off")


class PduMockupServer(StaticRedfishServer):
    """A static mockup server whose outlets can be switched by Outlet.PowerControl."""

    def __init__(self, root: Path, *, switch_delay_s: float = 0.15, **kwargs: Any) -> None:
        self.switch_delay_s = switch_delay_s
        self.actions: list[tuple[str, dict[str, Any]]] = []  # (POSTed path, body)
        self._targets = self._find_targets(Path(root))
        self._timers: list[threading.Timer] = []
        super().__init__(root, **kwargs)
        base = self._httpd.RequestHandlerClass
        self._httpd.RequestHandlerClass = _action_handler(self, base)  # before any request arrives

    @staticmethod
    def _find_targets(root: Path) -> dict[str, str]:
        """PowerControl target path -> outlet path, for every outlet in the mockup."""
        targets: dict[str, str] = {}
        for index in root.glob("PowerEquipment/*/*/Outlets/*/index.json"):
            doc = json.loads(index.read_text())
            outlet = doc["@odata.id"].rstrip("/")
            targets[f"{outlet}/Actions/Outlet.PowerControl"] = outlet
            action = doc.get("Actions", {}).get("#Outlet.PowerControl")
            if isinstance(action, dict) and isinstance(action.get("target"), str):
                targets[action["target"].rstrip("/")] = outlet
        return targets

    def outlet_doc(self, outlet_path: str) -> dict[str, Any]:
        """The outlet as a GET would return it now."""
        with self._lock:
            raw = self.raw.get(outlet_path)
        if raw is not None:
            return json.loads(raw.body)
        file = self.file_for(outlet_path)
        assert file is not None, outlet_path
        return json.loads(file.read_bytes())

    def _show(self, outlet_path: str, state: str) -> None:
        doc = self.outlet_doc(outlet_path)
        doc["PowerState"] = state
        if state in POWER_STATES:
            file = self.file_for(outlet_path)
            assert file is not None
            original = json.loads(file.read_bytes())
            for key in ("PowerWatts", "CurrentAmps"):
                if isinstance(doc.get(key), dict):
                    doc[key]["Reading"] = original[key]["Reading"] if state == "On" else 0
        with self._lock:
            self.raw[outlet_path] = RawBody(json.dumps(doc).encode())

    def power_control(self, path: str, body: dict[str, Any]) -> int:
        """Handle one POST; returns the HTTP status."""
        outlet = self._targets[path]
        state = body.get("PowerState")
        with self._lock:
            self.actions.append((path, body))
        if state not in POWER_STATES:
            return 400
        self._show(outlet, "PoweringOn" if state == "On" else "PoweringOff")
        timer = threading.Timer(self.switch_delay_s, self._show, args=(outlet, state))
        timer.daemon = True
        with self._lock:
            self._timers.append(timer)
        timer.start()
        return 204

    def stop(self) -> None:
        with self._lock:
            timers, self._timers = self._timers, []
        for timer in timers:
            timer.cancel()
            timer.join(5.0)
        super().stop()


def _action_handler(server: PduMockupServer, base: type) -> type:
    class ActionHandler(base):  # type: ignore[misc,valid-type]
        def do_POST(self) -> None:
            path = urlsplit(self.path).path.rstrip("/")
            if path not in server._targets:
                super().do_POST()
                return
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            token = self.headers.get("X-Auth-Token")
            basic = self.headers.get("Authorization", "").lower().startswith("basic ")
            with server._lock:
                authed = basic or (token is not None and token in server.tokens)
            if not authed:
                self._send(401, b'{"error": {"code": "Base.1.5.0.NoValidSession", "message": "No session."}}')
                return
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
            status = server.power_control(path, body if isinstance(body, dict) else {})
            self._send(status)

    return ActionHandler
