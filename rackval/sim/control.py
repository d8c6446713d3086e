"""The simulator's control channel: its clock and its faults, over HTTP on 127.0.0.1.

The simulated rack runs in its own process; the harness (or an engineer with curl) reaches its
virtual clock and fault injection here. Every request carries the bearer token that the
simulator writes, mode 0600, beside its rack file: the channel can power racks off, after all.

    GET    /clock                 -> {"now": s, "time_scale": x}
    POST   /clock/advance         {"seconds": s} -> {"now": s}
    GET    /faults                -> [{"id", "kind", "device", "component", "start_at", "params", "active"}]
    POST   /faults                {"kind", "device", "component"?, "start_at"?, "duration_s"?, ...params}
    DELETE /faults/{id}
"""

from __future__ import annotations

import hmac
import json
import threading
from dataclasses import asdict, is_dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from rackval.core.errors import ConfigError, DeviceError
from rackval.sim.faults import make_fault
from rackval.sim.model import RackModel


def _fault_json(model: RackModel, fault: Any) -> dict[str, Any]:
    active = {f.id for f in model.active_faults()}
    data = asdict(fault) if is_dataclass(fault) else dict(vars(fault))
    data["active"] = fault.id in active
    return json.loads(json.dumps(data, default=str))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # ~40 ms per keep-alive request otherwise
    server: _ControlHttpServer

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the control channel is polled by plans; logging every call is noise."""

    def _reply(self, status: int, body: Any) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _authorized(self) -> bool:
        given = self.headers.get("Authorization", "")
        if hmac.compare_digest(given.encode(), f"Bearer {self.server.token}".encode()):
            return True
        self._reply(401, {"error": "missing or wrong bearer token"})
        return False

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        data = json.loads(self.rfile.read(length) or b"{}")
        if not isinstance(data, dict):
            raise ValueError("request body must be a JSON object")
        return data

    def do_GET(self) -> None:
        if not self._authorized():
            return
        model = self.server.model
        if self.path == "/clock":
            self._reply(200, {"now": model.clock.now(), "time_scale": model.clock.time_scale})
        elif self.path == "/faults":
            self._reply(200, [_fault_json(model, f) for f in model.injected_faults()])
        else:
            self._reply(404, {"error": f"no resource {self.path}"})

    def do_POST(self) -> None:
        if not self._authorized():
            return
        model = self.server.model
        try:
            body = self._body()
            if self.path == "/clock/advance":
                seconds = float(body["seconds"])
                self._reply(200, {"now": model.clock.advance(seconds)})
            elif self.path == "/faults":
                kind, device = body.pop("kind"), body.pop("device")
                fault = make_fault(kind, device, body.pop("component", None), **body)
                fault_id = model.inject(fault)
                self._reply(201, {"id": fault_id})
            else:
                self._reply(404, {"error": f"no resource {self.path}"})
        except (KeyError, ValueError, TypeError, ConfigError) as exc:
            self._reply(400, {"error": f"{type(exc).__name__}: {exc}"})

    def do_DELETE(self) -> None:
        if not self._authorized():
            return
        prefix = "/faults/"
        if not self.path.startswith(prefix):
            self._reply(404, {"error": f"no resource {self.path}"})
            return
        try:
            self.server.model.clear_fault(self.path[len(prefix) :])
        except KeyError as exc:
            self._reply(404, {"error": str(exc)})
            return
        self._reply(200, {"cleared": self.path[len(prefix) :]})


class _ControlHttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: str, model: RackModel, token: str) -> None:
        super().__init__((host, 0), _Handler)
        self.model = model
        self.token = token


class ControlServer:
    """The control channel of one simulated rack; ``url`` is what the rack file records."""

    def __init__(self, model: RackModel, token: str, host: str = "127.0.0.1") -> None:
        self._http = _ControlHttpServer(host, model, token)
        self.host, self.port = self._http.server_address[:2]
        self._thread = threading.Thread(target=self._http.serve_forever, name="sim-control", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        if self._thread.is_alive():
            self._http.shutdown()
            self._thread.join(timeout=5)
        self._http.server_close()


class ControlClient:
    """The harness's side of the control channel (one HTTP client, kept alive)."""

    def __init__(self, url: str, token: str, timeout_s: float = 10.0) -> None:
        self.url = url
        self._client = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=timeout_s, trust_env=False
        )

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        operation = f"{method} {path}"
        try:
            response = self._client.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise DeviceError("simulator", self.url, operation, f"control channel unreachable: {exc}") from exc
        if response.status_code >= 400:
            try:
                detail = response.json().get("error", response.text)
            except ValueError:
                detail = response.text
            raise DeviceError("simulator", self.url, operation, f"HTTP {response.status_code}: {detail}")
        return response.json()

    def now(self) -> float:
        return float(self._call("GET", "/clock")["now"])

    def advance(self, seconds: float) -> float:
        return float(self._call("POST", "/clock/advance", {"seconds": seconds})["now"])

    def inject(self, kind: str, device: str, component: str | None = None, **params: Any) -> str:
        body = {"kind": kind, "device": device, **params}
        if component is not None:
            body["component"] = component
        return str(self._call("POST", "/faults", body)["id"])

    def clear(self, fault_id: str) -> None:
        self._call("DELETE", f"/faults/{fault_id}")

    def faults(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/faults"))

    def close(self) -> None:
        self._client.close()
