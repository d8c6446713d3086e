"""The HTTP side of the simulated Redfish BMC: requests in, Redfish answers out, as a real BMC.

Why a module of its own: everything a BMC does with a request before and after the resource
tree builds or changes a document is HTTP, not Redfish schema, and is the same for every
resource. ``RedfishHandler`` answers one request:

- authentication (session token or basic auth; the service root, ``$metadata``, the OData
  service document and the login POST are served without it), sessions (login, GET and DELETE
  of ``Sessions/{id}``; 503 when the BMC's session limit is reached);
- methods (GET and HEAD build a resource, PATCH changes it and answers the new document, POST
  runs an action; 405 with ``Allow`` where a resource does not take the method), ``$expand``
  (other ``$`` query options are 501), a weak ETag on every 200 answer to GET, request bodies
  of 64 KiB at most (413), Redfish error bodies (Base registry message ids), a 500 for a
  builder's bug instead of a dead handler thread;
- power: 503 while the BMC boots; no answer at all while its node has lost all input power
  (the tree says which: a node BMC's, a CDU's or a power shelf's, ``ServiceTree``);
- protocol faults injected on the BMC's device name (``bmc-<node>``), acted on per request:
  ``device_silent`` (the request is held unanswered until the fault clears, the client gives up
  or ``SILENT_HOLD_S``), ``device_slow`` (the answer is delayed), ``malformed_reply`` (the body
  is cut, replaced by noise or declared longer than sent), ``auth_failure`` (credentials are
  refused and open sessions end), ``session_exhaustion`` (a lower session limit).

Like a real BMC it keeps connections alive (HTTP/1.1, with Nagle's algorithm disabled, which
otherwise costs ~40 ms per keep-alive request). ``RedfishHttpd`` tracks the connection threads,
so the server's ``stop()`` can close and join them.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import random
import re
import secrets
import select
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from rackval.sim.redfish_schema import SESSIONS, V1, RedfishError, error_body, metadata_document
from rackval.sim.redfish_service import session_doc
from rackval.sim.redfish_state import BmcState, ServiceTree, Session

SILENT_HOLD_S = 30.0  # a silent BMC holds a request this long at most (bounds handler threads)
_MAX_REQUEST_BODY = 64 * 1024
_EXPAND = re.compile(r"^([.*~])(?:\(\$levels=(\d+)\))?$")


def _corrupt(data: bytes, mode: str, rng: random.Random) -> tuple[bytes, int]:
    """(body to send, Content-Length to declare) for a malformed reply."""
    if mode == "garbage":
        noise = bytes(rng.randrange(128, 256) for _ in range(max(len(data) // 4, 16)))
        return b"\xff\xfe" + noise, len(noise) + 2
    if mode == "wrong_length":
        return data, len(data) + max(len(data) // 2, 16)
    cut = data[: max(len(data) // 2, 1)]  # truncate: a complete HTTP message, half a JSON document
    return cut, len(cut)


class RedfishHandler(BaseHTTPRequestHandler):
    """Answers the requests of one client connection (see the module docstring)."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    timeout = 60  # an idle keep-alive connection is dropped after this (bounds handler threads)
    server_version = "SimBMC-Redfish/1.0"
    server: RedfishHttpd

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: a BMC under a telemetry loop answers thousands of requests."""

    # ---- plumbing -----------------------------------------------------------------------------
    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _send(self, status: int, data: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        declared = len(data)
        malformed = self._malformed
        if malformed is not None and data:
            with self.server.state.lock:
                data, declared = _corrupt(data, malformed, self.server.state.rng)
            if declared != len(data):
                self.close_connection = True  # the client waits for bytes that never come: close
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("OData-Version", "4.0")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Content-Length", str(declared))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _send_json(self, status: int, doc: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(doc).encode("utf-8")
        if status == 200 and self.command in ("GET", "HEAD"):
            headers = {"ETag": f'W/"{hashlib.sha1(data).hexdigest()[:16]}"', **(headers or {})}
        self._send(status, data, "application/json; charset=utf-8", headers)

    def _send_no_content(self) -> None:
        self.send_response(204)
        self.send_header("OData-Version", "4.0")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _send_error(self, status: int, message_id: str, message: str, headers: dict[str, str] | None = None) -> None:
        self._send_json(status, error_body(message_id, message), headers)

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

    @staticmethod
    def _json_body(raw: bytes) -> dict[str, Any]:
        try:
            doc = json.loads(raw.decode("utf-8")) if raw else None
        except (UnicodeDecodeError, ValueError):
            doc = None
        if not isinstance(doc, dict):
            raise RedfishError(400, "MalformedJSON", "The request body was malformed JSON or not an object.")
        return doc

    def _authenticated(self, refuse_credentials: bool) -> bool:
        state = self.server.state
        token = self.headers.get("X-Auth-Token")
        if token:
            with state.lock:
                return token in state.sessions
        auth = self.headers.get("Authorization", "")
        if auth[:6].lower() == "basic " and not refuse_credentials:
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

    # ---- protocol faults and BMC power --------------------------------------------------------
    def _hold_silent(self) -> None:
        """Never answer: hold the request until the fault clears, the server stops or the bound."""
        state = self.server.state
        waited = 0.0
        while waited < SILENT_HOLD_S and not state.stopping.wait(0.1):
            waited += 0.1
            if not self._silent_now() or self._client_gone():
                break
        self.close_connection = True

    def _client_gone(self) -> bool:
        """True once the client closed its end (it gave up waiting): no need to hold any longer."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True

    def _silent_now(self) -> bool:
        state = self.server.state
        if self.server.tree.power_state() == "Off":
            return True  # no input power: the BMC is dead, nothing answers
        return any(f.kind == "device_silent" for f in state.model.active_faults(state.device))

    def _apply_faults(self) -> dict[str, Any] | None:
        """Act on this BMC's protocol faults; None when the request got no answer at all."""
        state = self.server.state
        faults = {f.kind: f for f in state.model.active_faults(state.device)}
        if "device_silent" in faults or self.server.tree.power_state() == "Off":
            self._hold_silent()
            return None
        slow = faults.get("device_slow")
        if slow is not None:
            with state.lock:
                jitter = state.rng.uniform(0.0, float(slow.param("jitter_s")))
            delay = float(slow.param("delay_s")) + jitter
            if state.stopping.wait(max(delay, 0.0)):
                self.close_connection = True
                return None
        bad = faults.get("malformed_reply")
        if bad is not None:
            with state.lock:
                hit = state.rng.random() < float(bad.param("probability"))
            self._malformed = str(bad.param("mode")) if hit else None
        if "auth_failure" in faults:
            with state.lock:  # the account is refused: its sessions end too, as on a password change
                state.sessions.clear()
        return faults

    # ---- routing ----------------------------------------------------------------------------
    def _dispatch(self, method: str) -> None:
        state = self.server.state
        self._malformed: str | None = None
        with state.lock:
            state.counts[method] += 1
            state.counts["total"] += 1
        raw = self._read_body()
        if raw is None:
            return
        faults = self._apply_faults()
        if faults is None:
            return
        try:
            self._route(method, raw, faults)
        except RedfishError as exc:
            self._send_error(exc.status, exc.message_id, exc.message, exc.headers)
        except (ConnectionError, TimeoutError):
            self.close_connection = True  # the client went away mid-answer
        except Exception as exc:  # a bug must cost one request (500), never the server thread
            self.close_connection = True
            self._send_error(500, "InternalError", f"Internal error: {type(exc).__name__}: {exc}")

    def _route(self, method: str, raw: bytes, faults: dict[str, Any]) -> None:
        state = self.server.state
        tree = self.server.tree
        parts = urlsplit(self.path)
        path = parts.path.rstrip("/") or "/"
        read = method in ("GET", "HEAD")
        if tree.power_state() == "Booting":
            raise RedfishError(503, "ServiceTemporarilyUnavailable", "The BMC is starting.", {"Retry-After": "5"})
        if path == "/redfish" and read:
            self._send_json(200, {"v1": "/redfish/v1/"})
            return
        if path == f"{V1}/$metadata" and read:
            self._send(200, metadata_document().encode(), "application/xml")
            return
        if path == f"{V1}/odata" and read:
            self._send_json(200, self._odata_document(tree.singletons))
            return
        if path == V1 and read:
            self._send_json(200, tree.service_root())
            return
        if path == SESSIONS and method == "POST":
            self._login(raw, faults)
            return
        if path in ("/redfish", V1, f"{V1}/$metadata", f"{V1}/odata"):
            raise RedfishError(
                405, "OperationNotAllowed", f"{method} is not allowed on {path}.", {"Allow": "GET, HEAD"}
            )
        if not self._authenticated(refuse_credentials="auth_failure" in faults):
            raise RedfishError(
                401,
                "NoValidSession",
                "There is no valid session established with the implementation.",
                {"WWW-Authenticate": 'Basic realm="Redfish"'},
            )
        if path.startswith(SESSIONS + "/"):
            self._session_member(method, path)
            return
        with state.model.lock:  # one consistent instant of the model per document
            route = tree.route(path)
        if route is None:
            raise RedfishError(404, "ResourceMissingAtURI", f"The resource at the URI {path} was not found.")
        allow = route.allow if path != SESSIONS else "GET, HEAD, POST"
        if read and route.get is not None:
            expand = self._expand_mode(parts.query)
            with state.model.lock:
                doc = route.get()
                if expand is not None:
                    doc = tree.expand(doc, expand)
            self._send_json(200, doc, {"Allow": allow})
        elif method == "PATCH" and route.patch is not None:
            route.patch(self._json_body(raw))
            assert route.get is not None
            with state.model.lock:
                doc = route.get()
            self._send_json(200, doc, {"Allow": allow})
        elif method == "POST" and route.post is not None:
            route.post(self._json_body(raw) if raw else {})
            self._send_no_content()
        else:
            raise RedfishError(405, "OperationNotAllowed", f"{method} is not allowed on {path}.", {"Allow": allow})

    @staticmethod
    def _expand_mode(query: str) -> str | None:
        """The $expand mode of a query (None without one); other $ options are not implemented."""
        mode = None
        for key, value in parse_qsl(query, keep_blank_values=True):
            if key == "$expand":
                match = _EXPAND.match(value)
                if match is None:
                    raise RedfishError(
                        400, "QueryParameterValueFormatError", f"The value {value!r} for $expand is malformed."
                    )
                if match.group(2) is not None and int(match.group(2)) != 1:
                    raise RedfishError(400, "QueryParameterOutOfRange", "$levels must be 1 (MaxLevels is 1).")
                mode = match.group(1)
            elif key.startswith("$"):
                raise RedfishError(501, "QueryNotSupported", f"The query parameter {key} is not supported.")
        return mode

    @staticmethod
    def _odata_document(names: tuple[str, ...]) -> dict[str, Any]:
        return {
            "@odata.context": f"{V1}/$metadata",
            "value": [{"name": "Service", "kind": "Singleton", "url": "/redfish/v1/"}]
            + [{"name": n, "kind": "Singleton", "url": f"{V1}/{n}"} for n in names],
        }

    # ---- sessions -----------------------------------------------------------------------------
    def _login(self, raw: bytes, faults: dict[str, Any]) -> None:
        body = self._json_body(raw)
        if "UserName" not in body or "Password" not in body:
            raise RedfishError(400, "CreateFailedMissingReqProperties", "UserName and Password are required.")
        if "auth_failure" in faults or not self._credentials_ok(body["UserName"], body["Password"]):
            raise RedfishError(401, "ResourceAtUriUnauthorized", "Invalid username or password.")
        state = self.server.state
        limit = state.max_sessions
        if "session_exhaustion" in faults:
            limit = min(limit, int(faults["session_exhaustion"].param("max_sessions")))
        with state.lock:
            full = len(state.sessions) >= limit
            if not full:
                session = Session(str(state.next_session), secrets.token_hex(16), body["UserName"])
                state.next_session += 1
                state.sessions[session.token] = session
        if full:
            raise RedfishError(
                503,
                "SessionLimitExceeded",
                "The session establishment failed due to the number of simultaneous sessions exceeding "
                "the limit of the implementation.",
                {"Retry-After": "1"},
            )
        location = f"{SESSIONS}/{session.id}"
        self._send_json(201, session_doc(session), {"X-Auth-Token": session.token, "Location": location})

    def _session_member(self, method: str, path: str) -> None:
        state = self.server.state
        session_id = path[len(SESSIONS) + 1 :]
        with state.lock:
            match = next((s for s in state.sessions.values() if s.id == session_id), None)
            if match is not None and method == "DELETE":
                del state.sessions[match.token]
        if match is None:
            raise RedfishError(404, "ResourceMissingAtURI", f"The resource at the URI {path} was not found.")
        if method == "DELETE":
            self._send_no_content()
        elif method in ("GET", "HEAD"):
            self._send_json(200, session_doc(match), {"Allow": "GET, HEAD, DELETE"})
        else:
            raise RedfishError(
                405, "OperationNotAllowed", f"{method} is not allowed on {path}.", {"Allow": "GET, HEAD, DELETE"}
            )


class RedfishHttpd(ThreadingHTTPServer):
    """ThreadingHTTPServer that tracks its connection threads so stop() can close and join them."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], state: BmcState, tree: ServiceTree) -> None:
        self.state = state
        self.tree = tree
        self._conns: dict[threading.Thread, socket.socket] = {}
        self._conns_lock = threading.Lock()
        super().__init__(address, RedfishHandler)

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
