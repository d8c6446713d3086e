"""A simulated node BMC speaking Redfish over HTTP on 127.0.0.1, reading the shared RackModel.

Payloads follow the DMTF schemas (versions from the CSDL in /work/shared/redfish/csdl) and the
shape of the public-rackmount1 mockup, so the driver cannot tell this BMC from a real one except
by address. Like a real BMC it enforces authentication (session token or basic auth), caps the
number of open sessions (503 when exhausted) and keeps connections alive; the handler disables
Nagle's algorithm, which otherwise costs ~40 ms per keep-alive request.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import json
import secrets
import socket
import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from drivers.sim.model import RackModel

SYSTEM_ID = "1"
CHASSIS_ID = "1"
MANAGER_ID = "bmc"
RESET_ALLOWED = ("On", "ForceOff", "GracefulShutdown", "ForceRestart")
_MAX_REQUEST_BODY = 64 * 1024

V1 = "/redfish/v1"
SESSIONS = f"{V1}/SessionService/Sessions"
SYSTEM = f"{V1}/Systems/{SYSTEM_ID}"
CHASSIS = f"{V1}/Chassis/{CHASSIS_ID}"
MANAGER = f"{V1}/Managers/{MANAGER_ID}"
RESET_TARGET = f"{SYSTEM}/Actions/ComputerSystem.Reset"


def _ref(path: str) -> dict[str, str]:
    return {"@odata.id": path}


def _error_body(message_id: str, message: str) -> dict[str, Any]:
    """A Redfish error response (Base registry message ids)."""
    full_id = f"Base.1.5.0.{message_id}"
    return {
        "error": {
            "code": full_id,
            "message": message,
            "@Message.ExtendedInfo": [
                {
                    "@odata.type": "#Message.v1_1_1.Message",
                    "MessageId": full_id,
                    "Message": message,
                    "Severity": "Critical",
                    "Resolution": "See the message.",
                }
            ],
        }
    }


@dataclass
class _Session:
    id: str
    token: str
    username: str


@dataclass
class _State:
    """What the BMC remembers between requests; every handler thread shares it."""

    model: RackModel
    node: str
    username: str
    password: str
    max_sessions: int
    lock: threading.Lock = field(default_factory=threading.Lock)
    sessions: dict[str, _Session] = field(default_factory=dict)  # by token
    next_session: int = 1
    counts: Counter[str] = field(default_factory=Counter)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    timeout = 60  # an idle keep-alive connection is dropped after this (bounds handler threads)
    server_version = "SimBMC-Redfish/1.0"
    server: _Httpd

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: a BMC under a telemetry loop answers thousands of requests."""

    # ---- plumbing -----------------------------------------------------------------------------
    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _send_json(self, status: int, doc: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(doc).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("OData-Version", "4.0")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _send_no_content(self) -> None:
        self.send_response(204)
        self.send_header("OData-Version", "4.0")
        self.end_headers()

    def _send_error(self, status: int, message_id: str, message: str, headers: dict[str, str] | None = None) -> None:
        self._send_json(status, _error_body(message_id, message), headers)

    def _read_body(self) -> bytes | None:
        """The request body, or None after answering 413 for an oversized one."""
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > _MAX_REQUEST_BODY:
            self.close_connection = True
            self._send_error(413, "GeneralError", "Request body too large or Content-Length invalid.")
            return None
        return self.rfile.read(length) if length else b""

    def _json_body(self, raw: bytes) -> dict[str, Any] | None:
        """The body as a JSON object, or None after answering 400."""
        try:
            doc = json.loads(raw.decode("utf-8")) if raw else None
        except (UnicodeDecodeError, ValueError):
            doc = None
        if not isinstance(doc, dict):
            self._send_error(400, "MalformedJSON", "The request body was malformed JSON or not an object.")
            return None
        return doc

    def _authenticated(self) -> bool:
        state = self.server.state
        token = self.headers.get("X-Auth-Token")
        if token:
            with state.lock:
                return token in state.sessions
        auth = self.headers.get("Authorization", "")
        if auth[:6].lower() == "basic ":
            try:
                user, _, password = base64.b64decode(auth[6:].strip(), validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return False
            return self._credentials_ok(user, password)
        return False

    def _credentials_ok(self, user: Any, password: Any) -> bool:
        state = self.server.state
        if not isinstance(user, str) or not isinstance(password, str):
            return False
        user_ok = hmac.compare_digest(user.encode(), state.username.encode())
        password_ok = hmac.compare_digest(password.encode(), state.password.encode())
        return user_ok and password_ok

    # ---- routing ----------------------------------------------------------------------------
    def _dispatch(self, method: str) -> None:
        state = self.server.state
        with state.lock:
            state.counts[method] += 1
            state.counts["total"] += 1
        raw = self._read_body()
        if raw is None:
            return
        path = urlsplit(self.path).path.rstrip("/") or "/"
        if path == "/redfish" and method == "GET":
            self._send_json(200, {"v1": "/redfish/v1/"})
            return
        if path == V1 and method == "GET":
            self._send_json(200, self._service_root())
            return
        if path == SESSIONS and method == "POST":
            self._login(raw)
            return
        if path in ("/redfish", V1):
            self._send_error(405, "ActionNotSupported", f"{method} is not allowed on {path}.", {"Allow": "GET"})
            return
        if not self._authenticated():
            self._send_error(
                401,
                "NoValidSession",
                "There is no valid session established with the implementation.",
                {"WWW-Authenticate": 'Basic realm="Redfish"'},
            )
            return
        getters = self._getters()
        if path.startswith(SESSIONS + "/"):
            self._session_member(method, path)
            return
        if path == RESET_TARGET:
            if method != "POST":
                self._send_error(405, "ActionNotSupported", f"{method} is not allowed on an action.", {"Allow": "POST"})
                return
            self._reset(raw)
            return
        builder = getters.get(path)
        if builder is None:
            self._send_error(404, "ResourceMissingAtURI", f"The resource at the URI {path} was not found.")
            return
        if method != "GET":
            allow = "GET, POST" if path == SESSIONS else "GET"
            self._send_error(405, "ActionNotSupported", f"{method} is not allowed on {path}.", {"Allow": allow})
            return
        self._send_json(200, builder())

    def _getters(self) -> dict[str, Any]:
        return {
            f"{V1}/SessionService": self._session_service,
            SESSIONS: self._sessions,
            f"{V1}/Systems": lambda: self._collection(
                "ComputerSystemCollection", "Computer System Collection", f"{V1}/Systems", [SYSTEM]
            ),
            SYSTEM: self._system,
            f"{V1}/Chassis": lambda: self._collection(
                "ChassisCollection", "Chassis Collection", f"{V1}/Chassis", [CHASSIS]
            ),
            CHASSIS: self._chassis,
            f"{CHASSIS}/Power": self._power,
            f"{CHASSIS}/Thermal": self._thermal,
            f"{CHASSIS}/EnvironmentMetrics": self._environment_metrics,
            f"{V1}/Managers": lambda: self._collection(
                "ManagerCollection", "Manager Collection", f"{V1}/Managers", [MANAGER]
            ),
            MANAGER: self._manager,
        }

    # ---- sessions -----------------------------------------------------------------------------
    def _login(self, raw: bytes) -> None:
        body = self._json_body(raw)
        if body is None:
            return
        if "UserName" not in body or "Password" not in body:
            self._send_error(400, "CreateFailedMissingReqProperties", "UserName and Password are required.")
            return
        if not self._credentials_ok(body["UserName"], body["Password"]):
            self._send_error(401, "ResourceAtUriUnauthorized", "Invalid username or password.")
            return
        state = self.server.state
        with state.lock:
            if len(state.sessions) >= state.max_sessions:
                full = True
            else:
                full = False
                session = _Session(str(state.next_session), secrets.token_hex(16), body["UserName"])
                state.next_session += 1
                state.sessions[session.token] = session
        if full:
            self._send_error(
                503,
                "SessionLimitExceeded",
                "The session establishment failed due to the number of simultaneous sessions exceeding "
                "the limit of the implementation.",
                {"Retry-After": "1"},
            )
            return
        location = f"{SESSIONS}/{session.id}"
        self._send_json(201, self._session_doc(session), {"X-Auth-Token": session.token, "Location": location})

    def _session_doc(self, session: _Session) -> dict[str, Any]:
        return {
            "@odata.id": f"{SESSIONS}/{session.id}",
            "@odata.type": "#Session.v1_8_0.Session",
            "Id": session.id,
            "Name": "User Session",
            "UserName": session.username,
            "SessionType": "Redfish",
        }

    def _session_member(self, method: str, path: str) -> None:
        state = self.server.state
        session_id = path[len(SESSIONS) + 1 :]
        with state.lock:
            match = next((s for s in state.sessions.values() if s.id == session_id), None)
            if match is not None and method == "DELETE":
                del state.sessions[match.token]
        if match is None:
            self._send_error(404, "ResourceMissingAtURI", f"The resource at the URI {path} was not found.")
        elif method == "DELETE":
            self._send_no_content()
        elif method == "GET":
            self._send_json(200, self._session_doc(match))
        else:
            self._send_error(405, "ActionNotSupported", f"{method} is not allowed on {path}.", {"Allow": "GET, DELETE"})

    def _session_service(self) -> dict[str, Any]:
        return {
            "@odata.id": f"{V1}/SessionService",
            "@odata.type": "#SessionService.v1_2_0.SessionService",
            "Id": "SessionService",
            "Name": "Session Service",
            "Status": {"State": "Enabled", "Health": "OK"},
            "ServiceEnabled": True,
            "SessionTimeout": 1800,
            "Sessions": _ref(SESSIONS),
        }

    def _sessions(self) -> dict[str, Any]:
        state = self.server.state
        with state.lock:
            ids = sorted((s.id for s in state.sessions.values()), key=int)
        return self._collection("SessionCollection", "Session Collection", SESSIONS, [f"{SESSIONS}/{i}" for i in ids])

    # ---- resources ----------------------------------------------------------------------------
    @staticmethod
    def _collection(kind: str, name: str, path: str, members: list[str]) -> dict[str, Any]:
        return {
            "@odata.id": path,
            "@odata.type": f"#{kind}.{kind}",
            "Name": name,
            "Members@odata.count": len(members),
            "Members": [_ref(m) for m in members],
        }

    def _service_root(self) -> dict[str, Any]:
        node = self.server.state.node
        return {
            "@odata.id": "/redfish/v1/",
            "@odata.type": "#ServiceRoot.v1_20_0.ServiceRoot",
            "Id": "RootService",
            "Name": "Root Service",
            "RedfishVersion": "1.15.0",
            "UUID": self.server.uuid,
            "Product": f"Simulated BMC for {node}",
            "Systems": _ref(f"{V1}/Systems"),
            "Chassis": _ref(f"{V1}/Chassis"),
            "Managers": _ref(f"{V1}/Managers"),
            "SessionService": _ref(f"{V1}/SessionService"),
            "Links": {"Sessions": _ref(SESSIONS)},
        }

    def _system(self) -> dict[str, Any]:
        state = self.server.state
        model, node = state.model, state.node
        with model.lock:
            info = model.nodes[node].info
            up = model.node_is_up(node)
        return {
            "@odata.id": SYSTEM,
            "@odata.type": "#ComputerSystem.v1_27_0.ComputerSystem",
            "Id": SYSTEM_ID,
            "Name": node,
            "SystemType": "Physical",
            "Manufacturer": info.vendor,
            "Model": info.model,
            "SerialNumber": info.serial,
            "BiosVersion": info.firmware,
            "PowerState": "On" if up else "Off",
            "Status": {"State": "Enabled" if up else "StandbyOffline", "Health": "OK"},
            "Actions": {
                "#ComputerSystem.Reset": {
                    "target": RESET_TARGET,
                    "ResetType@Redfish.AllowableValues": list(RESET_ALLOWED),
                }
            },
            "Links": {"Chassis": [_ref(CHASSIS)], "ManagedBy": [_ref(MANAGER)]},
        }

    def _reset(self, raw: bytes) -> None:
        body = self._json_body(raw)
        if body is None:
            return
        reset_type = body.get("ResetType")
        if reset_type is None:
            self._send_error(400, "ActionParameterMissing", "The action requires the parameter ResetType.")
            return
        if reset_type not in RESET_ALLOWED:
            self._send_error(
                400,
                "ActionParameterNotSupported",
                f"The parameter ResetType value {reset_type!r} is not supported by this action.",
            )
            return
        state = self.server.state
        on = reset_type in ("On", "ForceRestart")
        state.model.set_host_power(state.node, on)
        self._send_no_content()

    def _chassis(self) -> dict[str, Any]:
        state = self.server.state
        model, node = state.model, state.node
        with model.lock:
            info = model.nodes[node].info
            up = model.node_is_up(node)
        return {
            "@odata.id": CHASSIS,
            "@odata.type": "#Chassis.v1_28_0.Chassis",
            "Id": CHASSIS_ID,
            "Name": f"{node} chassis",
            "ChassisType": "RackMount",
            "Manufacturer": info.vendor,
            "Model": info.model,
            "SerialNumber": info.serial,
            "PowerState": "On" if up else "Off",
            "Status": {"State": "Enabled", "Health": "OK"},
            "EnvironmentMetrics": _ref(f"{CHASSIS}/EnvironmentMetrics"),
            "Power": _ref(f"{CHASSIS}/Power"),
            "Power@Redfish.Deprecated": "The Power schema has been deprecated in favor of PowerSubsystem.",
            "Thermal": _ref(f"{CHASSIS}/Thermal"),
            "Thermal@Redfish.Deprecated": "The Thermal schema has been deprecated in favor of ThermalSubsystem.",
            "Links": {"ComputerSystems": [_ref(SYSTEM)], "ManagedBy": [_ref(MANAGER)]},
        }

    def _power(self) -> dict[str, Any]:
        state = self.server.state
        model, node = state.model, state.node
        with model.lock:
            n = model.nodes[node]
            consumed = round(model.bmc_reading_power_w(node), 1)
            supplies = []
            for i, psu in enumerate(n.psus):
                pdu = model.pdus[psu.pdu]
                live = pdu.outlets[psu.outlet].on
                entry: dict[str, Any] = {
                    "@odata.id": f"{CHASSIS}/Power#/PowerSupplies/{i}",
                    "MemberId": str(i),
                    "Name": psu.name,
                    "Status": {
                        "State": "Enabled" if live else "UnavailableOffline",
                        "Health": "OK" if live else "Critical",
                    },
                    "PowerSupplyType": "AC",
                    "PowerCapacityWatts": psu.rated_w,
                    "LineInputVoltage": pdu.voltage_v if live else 0,
                }
                if live:
                    entry["PowerInputWatts"] = round(n.bmc_meter.read(model.psu_input_power_w(node, psu.name)), 1)
                supplies.append(entry)
            capacity = sum(p.rated_w for p in n.psus)
        return {
            "@odata.id": f"{CHASSIS}/Power",
            "@odata.type": "#Power.v1_7_3.Power",
            "Id": "Power",
            "Name": "Power",
            "PowerControl": [
                {
                    "@odata.id": f"{CHASSIS}/Power#/PowerControl/0",
                    "MemberId": "0",
                    "Name": "System Input Power",
                    "PowerConsumedWatts": consumed,
                    "PowerCapacityWatts": capacity,
                    "Status": {"State": "Enabled", "Health": "OK"},
                    "RelatedItem": [_ref(SYSTEM), _ref(CHASSIS)],
                }
            ],
            "PowerSupplies": supplies,
        }

    def _thermal(self) -> dict[str, Any]:
        state = self.server.state
        model, node = state.model, state.node
        with model.lock:
            n = model.nodes[node]
            inlet = model.ambient_c
            gpu = model.gpu_temperature_c(node)
            exhaust = model.node_outlet_temperature_c(node)
            dc_w = model.node_dc_power_w(node)
            gpus = n.gpus
        names = [("Inlet Temp", inlet, "Intake")]
        names += [(f"GPU{i} Temp", gpu, "GPU") for i in range(gpus)]
        names.append(("Exhaust Temp", exhaust, "Exhaust"))
        temps = [
            {
                "@odata.id": f"{CHASSIS}/Thermal#/Temperatures/{i}",
                "MemberId": str(i),
                "Name": name,
                "ReadingCelsius": round(value, 1),
                "PhysicalContext": context,
                "Status": {"State": "Enabled", "Health": "OK"},
            }
            for i, (name, value, context) in enumerate(names)
        ]
        rpm = 0 if dc_w <= 0 else min(3000 + round(2.0 * dc_w), 16000)
        fans = [
            {
                "@odata.id": f"{CHASSIS}/Thermal#/Fans/{i}",
                "MemberId": str(i),
                "Name": f"Fan{i + 1}",
                "Reading": rpm,
                "ReadingUnits": "RPM",
                "PhysicalContext": "Backplane",
                "Status": {"State": "Enabled", "Health": "OK"},
            }
            for i in range(2)
        ]
        return {
            "@odata.id": f"{CHASSIS}/Thermal",
            "@odata.type": "#Thermal.v1_7_3.Thermal",
            "Id": "Thermal",
            "Name": "Thermal",
            "Temperatures": temps,
            "Fans": fans,
        }

    def _environment_metrics(self) -> dict[str, Any]:
        state = self.server.state
        model, node = state.model, state.node
        with model.lock:
            watts = round(model.bmc_reading_power_w(node), 1)
            exhaust = round(model.node_outlet_temperature_c(node), 1)
        return {
            "@odata.id": f"{CHASSIS}/EnvironmentMetrics",
            "@odata.type": "#EnvironmentMetrics.v1_5_0.EnvironmentMetrics",
            "Id": "EnvironmentMetrics",
            "Name": "Chassis Environment Metrics",
            "PowerWatts": {"Reading": watts},
            "TemperatureCelsius": {"Reading": exhaust},
        }

    def _manager(self) -> dict[str, Any]:
        state = self.server.state
        model, node = state.model, state.node
        with model.lock:
            info = model.nodes[node].bmc_info
        return {
            "@odata.id": MANAGER,
            "@odata.type": "#Manager.v1_24_0.Manager",
            "Id": MANAGER_ID,
            "Name": "Manager",
            "ManagerType": "BMC",
            "Manufacturer": info.vendor,
            "Model": info.model,
            "SerialNumber": info.serial,
            "FirmwareVersion": info.firmware,
            "PowerState": "On",
            "Status": {"State": "Enabled", "Health": "OK"},
            "Links": {"ManagerForServers": [_ref(SYSTEM)], "ManagerForChassis": [_ref(CHASSIS)]},
        }


class _Httpd(ThreadingHTTPServer):
    """ThreadingHTTPServer that tracks its connection threads so stop() can close and join them."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], state: _State, uuid: str) -> None:
        self.state = state
        self.uuid = uuid
        self._conns: dict[threading.Thread, socket.socket] = {}
        self._conns_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self._serve_connection, args=(request, client_address), daemon=True, name="redfish-conn"
        )
        with self._conns_lock:
            self._conns[thread] = request
        thread.start()

    def _serve_connection(self, request: Any, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self._conns_lock:
                self._conns.pop(threading.current_thread(), None)

    def connections(self) -> list[socket.socket]:
        with self._conns_lock:
            return list(self._conns.values())

    def close_connections(self, timeout_s: float) -> None:
        with self._conns_lock:
            items = list(self._conns.items())
        for _, sock in items:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread, _ in items:
            thread.join(timeout_s)


class RedfishServer:
    """A running simulated BMC. ``host``/``port`` is where it listens; ``stop()`` ends it."""

    def __init__(self, model: RackModel, node: str, host: str, username: str, password: str, max_sessions: int) -> None:
        if node not in model.nodes:
            raise ValueError(f"no node {node!r} in the model (have {sorted(model.nodes)})")
        if max_sessions < 1:
            raise ValueError("max_sessions must be at least 1")
        self.node = node
        self._state = _State(model, node, username, password, max_sessions)
        uuid_hex = secrets.token_hex(16)
        uuid = f"{uuid_hex[:8]}-{uuid_hex[8:12]}-{uuid_hex[12:16]}-{uuid_hex[16:20]}-{uuid_hex[20:]}"
        self._httpd = _Httpd((host, 0), self._state, uuid)
        self.host: str = self._httpd.server_address[0]
        self.port: int = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            daemon=True,
            name=f"redfish-{node}",
        )
        self._stopped = False
        self._stop_lock = threading.Lock()
        self._thread.start()

    def __repr__(self) -> str:
        return f"RedfishServer({self.node!r}, {self.host}:{self.port})"

    @property
    def open_sessions(self) -> int:
        """Sessions currently open (a driver that logs out properly brings this back to 0)."""
        with self._state.lock:
            return len(self._state.sessions)

    def drop_sessions(self) -> None:
        """Forget every session, as a BMC does on reboot or session timeout."""
        with self._state.lock:
            self._state.sessions.clear()

    def request_count(self, method: str = "total") -> int:
        """Requests received so far, all methods ("total") or one ("GET", "POST", ...)."""
        with self._state.lock:
            return self._state.counts[method]

    def connection_sockets(self) -> list[socket.socket]:
        """The server-side sockets of open client connections (for checking socket options)."""
        return self._httpd.connections()

    def stop(self) -> None:
        """Stop serving, close every connection and join the threads; safe to call twice."""
        with self._stop_lock:
            if self._stopped:
                return
            self._stopped = True
        self._httpd.shutdown()
        self._httpd.server_close()
        self._httpd.close_connections(timeout_s=5.0)
        self._thread.join(5.0)


def start_bmc_redfish(
    model: RackModel,
    node: str,
    *,
    host: str = "127.0.0.1",
    username: str,
    password: str,
    max_sessions: int = 8,
) -> RedfishServer:
    """Start a simulated Redfish BMC for ``node`` on ``host`` (port chosen by the OS)."""
    return RedfishServer(model, node, host, username, password, max_sessions)
