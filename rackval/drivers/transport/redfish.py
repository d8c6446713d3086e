"""Redfish over HTTP(S): one keep-alive connection and at most one session per BMC.

BMCs are slow (seconds per GET), allow few concurrent sessions (often 8, HTTP 503 when they run
out) and sometimes answer with malformed bodies, slowly, or not at all. This transport owns
those hard parts so that drivers only deal with Redfish resources: it logs in once and reuses
the session (or uses basic auth where the service has no sessions), logs in again once when the
session expired (401), backs off on 503 within a bound, ends every request by its deadline
whatever the service does (``http_connection``: connect, trickled headers or body, a peer that
accepts and never answers), refuses bodies that exceed a size limit or are not a UTF-8 JSON
object (``redfish_json``: deep nesting, NaN), deletes its session on ``close()``, and turns
every failure into a ``DeviceError`` naming device, address and the HTTP operation.
"""

from __future__ import annotations

import base64
import email.utils
import json
import logging
import ssl
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from rackval.core.errors import (
    ConfigError,
    DeviceAuthError,
    DeviceError,
    DeviceProtocolError,
    DeviceTimeout,
)
from rackval.drivers.config import DeviceConfig
from rackval.drivers.options import RedfishOptions, parse_options
from rackval.drivers.transport.http_connection import (
    HttpBroken,
    HttpCertificateFailed,
    HttpConnectFailed,
    HttpConnection,
    HttpFailure,
    HttpReply,
    HttpTimeout,
    HttpTooLarge,
)
from rackval.drivers.transport.redfish_json import JsonRefused, parse_object

log = logging.getLogger(__name__)

SESSIONS_PATH = "/redfish/v1/SessionService/Sessions"
_MAX_COLLECTION_PAGES = 1000
# What a service without a SessionService answers to the login POST: Not Found, Method Not
# Allowed, Not Implemented. Each means "no sessions here"; basic auth is then used.
_NO_SESSIONS = (404, 405, 501)


class RedfishHttpError(DeviceError):
    """The BMC answered a request with an HTTP error status other than 401/403.

    ``status`` lets drivers tell "this resource does not exist on this BMC" (404) from real
    failures, e.g. to fall back from the new power/thermal resources to the legacy ones.
    """

    def __init__(self, device: str, address: str, operation: str, detail: str, status: int) -> None:
        super().__init__(device, address, operation, detail)
        self.status = status


def _redfish_message(content: bytes) -> str:
    """The human message inside a Redfish error body, if there is one (else "")."""
    try:
        doc = parse_object(content.decode("utf-8", errors="replace"))
    except ValueError:
        return ""
    if not isinstance(doc.get("error"), dict):
        return ""
    err = doc["error"]
    parts = []
    extended = err.get("@Message.ExtendedInfo")
    if isinstance(extended, list):
        parts = [str(m["Message"]) for m in extended if isinstance(m, dict) and isinstance(m.get("Message"), str)]
    if not parts and isinstance(err.get("message"), str):
        parts = [err["message"]]
    return "; ".join(parts)[:300]


def _retry_after_s(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP-date), None if absent/garbled."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


class RedfishTransport:
    """HTTP session to one Redfish service, shared by every call a driver makes.

    Options (``config.options``):

    - ``scheme``: ``"https"`` (default) or ``"http"`` (simulators, lab BMCs behind a proxy).
    - ``verify``: ``true`` (default: system CA store), ``false`` (self-signed BMC certificates;
      only on an isolated lab network), or a path to a CA bundle / BMC certificate file.
    - ``auth``: ``"session"`` (default: one X-Auth-Token session, deleted on ``close()``; falls
      back to basic auth if the service has no sessions, i.e. it answers the login with 404,
      405 or 501) or ``"basic"`` (HTTP basic auth on every request; no session is ever opened).
      Which one is used is logged (logger ``rackval.drivers.transport.redfish``, level INFO).
    - ``retries_503``: how many times to retry a request answered with 503 (default 3). The wait
      doubles from ``backoff_s`` (default 0.5 s) up to ``backoff_max_s`` (default 8 s); a
      Retry-After header replaces the computed wait but is capped at ``backoff_max_s``.
    - ``max_body_bytes``: largest response body accepted (default 16 MiB); a larger one is a
      ``DeviceProtocolError`` ("reply larger than N bytes") rather than a memory blow-up.

    Deadline: every request, with the login (or second login) it needs, ends within
    ``config.timeout_s`` whatever the service does, plus the watchdog's wake-up (milliseconds;
    the documented slack is 2 s on a loaded machine); otherwise DeviceTimeout. Only a 503
    answer extends it, by design: each retry comes after its backoff, with a fresh
    ``timeout_s``. Proxy settings from the environment are not used: BMCs sit on a management
    network. Thread safety: calls are serialised by an internal lock (one request at a time).
    """

    def __init__(self, config: DeviceConfig) -> None:
        self.name = config.name
        self._config = config
        opts = parse_options(RedfishOptions, config.options, config.name, known_only=True)
        self._scheme = opts.scheme
        self._verify = self._check_verify(opts.verify)
        self._auth_option = opts.auth
        self._retries_503 = opts.retries_503
        self._backoff_s = opts.backoff_s
        self._backoff_max_s = opts.backoff_max_s
        self._max_body = opts.max_body_bytes
        creds = config.credentials
        if not creds.username or creds.password is None:
            raise ConfigError(f"device {config.name}: Redfish needs a username and a password")
        self._username = creds.username
        self._password = creds.password
        port = config.port if config.port is not None else (443 if self._scheme == "https" else 80)
        host = f"[{config.host}]" if ":" in config.host and not config.host.startswith("[") else config.host
        self._base_url = f"{self._scheme}://{host}:{port}"
        self._port = port
        self._lock = threading.RLock()
        self._http: HttpConnection | None = None
        self._mode = self._auth_option  # becomes "basic" if the service has no SessionService
        self._mode_logged = False
        self._token: str | None = None
        self._session_path: str | None = None

    # ---- configuration ----------------------------------------------------------------------
    def _config_error(self, option: str, detail: str) -> ConfigError:
        return ConfigError(f"device {self._config.name}: option {option!r} {detail}")

    def _check_verify(self, value: bool | str) -> bool | str:
        if isinstance(value, str) and not Path(value).is_file():
            raise self._config_error("verify", f"names a CA file that does not exist: {value}")
        return value

    def __repr__(self) -> str:
        return f"RedfishTransport({self.name!r}, {self._base_url!r}, auth={self._mode!r})"

    # ---- errors -----------------------------------------------------------------------------
    def _err(self, cls: type[DeviceError], operation: str, detail: str) -> DeviceError:
        return cls(self._config.name, self._config.address, operation, detail)

    def _http_error(self, op: str, reply: HttpReply, attempts: int) -> DeviceError:
        status = reply.status
        message = _redfish_message(reply.body)
        suffix = f": {message}" if message else ""
        if status == 401:
            return self._err(DeviceAuthError, op, f"HTTP 401 Unauthorized (credentials or session refused){suffix}")
        if status == 403:
            return self._err(DeviceAuthError, op, f"HTTP 403 Forbidden (insufficient privilege){suffix}")
        if status == 503:
            detail = f"HTTP 503 Service Unavailable after {attempts} attempt(s){suffix}"
            return RedfishHttpError(self._config.name, self._config.address, op, detail, status)
        detail = f"HTTP {status} {reply.reason or ''}".rstrip() + suffix
        return RedfishHttpError(self._config.name, self._config.address, op, detail, status)

    def _failure(self, op: str, exc: HttpFailure) -> DeviceError:
        """An exchange that did not complete, as the DeviceError that says why."""
        if isinstance(exc, HttpTimeout):
            return self._err(DeviceTimeout, op, f"no complete answer within {self._config.timeout_s:g} s ({exc})")
        if isinstance(exc, HttpTooLarge):
            return self._err(DeviceProtocolError, op, f"{exc} (option 'max_body_bytes')")
        if isinstance(exc, HttpCertificateFailed):
            return self._err(DeviceAuthError, op, f"{exc} (option 'verify')")
        if isinstance(exc, HttpConnectFailed):
            return self._err(DeviceError, op, f"cannot connect to {self._base_url}: {exc}")
        return self._err(DeviceProtocolError, op, f"malformed HTTP response: {exc}")

    # ---- connection -------------------------------------------------------------------------
    def _connection(self) -> HttpConnection:
        if self._http is None:
            tls: ssl.SSLContext | None = None
            if self._scheme == "https":
                if isinstance(self._verify, str):
                    tls = ssl.create_default_context(cafile=self._verify)
                else:
                    tls = ssl.create_default_context()
                    if not self._verify:
                        tls.check_hostname = False
                        tls.verify_mode = ssl.CERT_NONE
            self._http = HttpConnection(self._config.host, self._port, tls)
        return self._http

    @staticmethod
    def _path_of(path_or_url: str) -> str:
        """Only the path (+query) of a URI: tokens must never follow a Location to another host."""
        parts = urlsplit(path_or_url)
        path = parts.path or "/"
        return f"{path}?{parts.query}" if parts.query else path

    @staticmethod
    def _target(path: str) -> str:
        """The request target on the wire: spaces and non-ASCII percent-encoded, escapes kept."""
        return quote(path, safe="/?&=$().,;:@!*'+-_~%")

    def _headers(self, *, with_auth: bool, body: bytes | None) -> dict[str, str]:
        headers = {"Accept": "application/json", "OData-Version": "4.0"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if with_auth:
            if self._mode == "session" and self._token:
                headers["X-Auth-Token"] = self._token
            elif self._mode == "basic":
                pair = f"{self._username}:{self._password.reveal()}".encode()
                headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        return headers

    def _send_once(self, method: str, path: str, body: Any, op: str, *, with_auth: bool, deadline: float) -> HttpReply:
        """One HTTP exchange, bounded by ``deadline``; transport failures become DeviceErrors."""
        payload = None if body is None else json.dumps(body).encode("utf-8")
        headers = self._headers(with_auth=with_auth, body=payload)
        target = self._target(path)
        connection = self._connection()
        for attempt in (1, 2):
            try:
                return connection.exchange(method, target, headers, payload, deadline=deadline, max_body=self._max_body)
            except HttpBroken as exc:
                # A keep-alive connection the BMC closed while idle: safe to repeat a GET once.
                if exc.retryable and method in ("GET", "DELETE") and attempt == 1:
                    continue
                raise self._failure(op, exc) from exc
            except HttpFailure as exc:
                raise self._failure(op, exc) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _backoff(self, attempt: int, reply: HttpReply, op: str) -> None:
        delay = self._backoff_s * (2**attempt)
        hinted = _retry_after_s(reply.header("retry-after"))
        if hinted is not None:
            delay = hinted
        delay = min(max(delay, 0.0), self._backoff_max_s)
        log.warning("%s: %s answered 503; retry %d/%d in %.2f s", self.name, op, attempt + 1, self._retries_503, delay)
        time.sleep(delay)

    def _exchange(
        self, method: str, path: str, body: Any, op: str, *, with_auth: bool, deadline: float
    ) -> tuple[HttpReply, int, float]:
        """Send, retrying 503 within the bound. Returns (reply, attempts made, the deadline now)."""
        attempt = 0
        while True:
            reply = self._send_once(method, path, body, op, with_auth=with_auth, deadline=deadline)
            if reply.status != 503 or attempt >= self._retries_503:
                return reply, attempt + 1, deadline
            self._backoff(attempt, reply, op)
            deadline = time.monotonic() + self._config.timeout_s  # each retry is a new attempt
            attempt += 1

    # ---- session ------------------------------------------------------------------------------
    def _log_mode(self, why: str) -> None:
        if not self._mode_logged:
            self._mode_logged = True
            log.info("%s: Redfish auth %s (%s)", self.name, self._mode, why)

    def _login(self, deadline: float) -> float:
        """Open the one session this transport uses (or switch to basic auth if there is none).

        Returns the deadline left for the request that needed the login (503 retries move it).
        """
        op = f"log in as {self._username!r} (POST {SESSIONS_PATH})"
        body = {"UserName": self._username, "Password": self._password.reveal()}
        reply, attempts, deadline = self._exchange("POST", SESSIONS_PATH, body, op, with_auth=False, deadline=deadline)
        status = reply.status
        if status in _NO_SESSIONS:
            self._mode = "basic"
            self._log_mode(f"the service answered the session login with HTTP {status}: no sessions, basic auth")
            return deadline
        if status in (401, 403):
            raise self._err(DeviceAuthError, op, f"credentials refused (HTTP {status})")
        if status == 503:
            raise self._err(
                DeviceError,
                op,
                f"no session available: HTTP 503 after {attempts} attempt(s) (the BMC's session limit "
                "may be exhausted by other clients; they must log out)",
            )
        if status >= 300:
            raise self._http_error(op, reply, attempts)
        token = reply.header("x-auth-token")
        if not token:
            raise self._err(DeviceProtocolError, op, f"HTTP {status} without an X-Auth-Token header")
        location = reply.header("location")
        if not location:
            try:
                location = parse_object(reply.body.decode("utf-8", errors="replace")).get("@odata.id")
            except ValueError:
                location = None
        self._token = token
        self._session_path = self._path_of(location) if isinstance(location, str) and location else None
        self._log_mode(f"X-Auth-Token session {self._session_path or '(no session URI given)'}")
        return deadline

    def _ensure_session(self, deadline: float) -> float:
        if self._mode == "session" and self._token is None:
            return self._login(deadline)
        if self._mode == "basic":
            self._log_mode("option auth: basic")
        return deadline

    def request(self, method: str, path: str, body: Any = None) -> HttpReply:
        """Authenticated request; re-logs in once on 401; raises on HTTP errors (>= 400)."""
        op = f"{method} {path}"
        with self._lock:
            deadline = time.monotonic() + self._config.timeout_s
            deadline = self._ensure_session(deadline)
            reply, attempts, deadline = self._exchange(method, path, body, op, with_auth=True, deadline=deadline)
            if reply.status == 401 and self._mode == "session":
                log.info("%s: session rejected on %s; logging in again", self.name, op)
                self._token = None
                self._session_path = None
                deadline = self._login(deadline)
                reply, attempts, _ = self._exchange(method, path, body, op, with_auth=True, deadline=deadline)
            if reply.status >= 400:
                raise self._http_error(op, reply, attempts)
            return reply

    # ---- public API ---------------------------------------------------------------------------
    def get(self, path: str) -> dict[str, Any]:
        """GET a resource; it must be a UTF-8 JSON object (``redfish_json.parse_object``)."""
        reply = self.request("GET", path)
        op = f"GET {path}"
        try:
            text = reply.body.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise self._err(DeviceProtocolError, op, f"body is not UTF-8 (bad byte at offset {exc.start})") from exc
        try:
            return parse_object(text)
        except JsonRefused as exc:
            raise self._err(
                DeviceProtocolError, op, f"body refused: {exc} ({len(reply.body)} bytes, HTTP {reply.status})"
            ) from exc

    def post(self, path: str, body: Any) -> HttpReply:
        """POST JSON; returns the reply for 2xx/3xx, raises a DeviceError for >= 400."""
        return self.request("POST", path, body)

    def patch(self, path: str, body: Any) -> HttpReply:
        """PATCH JSON; returns the reply for 2xx/3xx, raises a DeviceError for >= 400."""
        return self.request("PATCH", path, body)

    def delete(self, path: str) -> HttpReply:
        """DELETE; returns the reply for 2xx/3xx, raises a DeviceError for >= 400."""
        return self.request("DELETE", path)

    def members(self, collection_path: str) -> list[str]:
        """The @odata.id of each member of a collection (following Members@odata.nextLink)."""
        out: list[str] = []
        path: str | None = collection_path
        for _ in range(_MAX_COLLECTION_PAGES):
            if path is None:
                return out
            doc = self.get(path)
            members = doc.get("Members")
            if not isinstance(members, list):
                raise self._err(DeviceProtocolError, f"GET {path}", "collection has no 'Members' array")
            for member in members:
                oid = member.get("@odata.id") if isinstance(member, dict) else None
                if not isinstance(oid, str) or not oid:
                    raise self._err(DeviceProtocolError, f"GET {path}", f"member without @odata.id: {member!r}"[:200])
                out.append(oid)
            next_link = doc.get("Members@odata.nextLink")
            path = self._path_of(next_link) if isinstance(next_link, str) and next_link else None
        raise self._err(DeviceProtocolError, f"GET {collection_path}", f"more than {_MAX_COLLECTION_PAGES} pages")

    def close(self) -> None:
        """Delete the session (best effort, within ``timeout_s``: errors are logged, not raised)."""
        with self._lock:
            connection, self._http = self._http, None
            token, self._token = self._token, None
            session_path, self._session_path = self._session_path, None
            self._mode = self._auth_option
            self._mode_logged = False
            if connection is None:
                return
            try:
                if token and session_path:
                    headers = {"Accept": "application/json", "OData-Version": "4.0", "X-Auth-Token": token}
                    deadline = time.monotonic() + self._config.timeout_s
                    try:
                        target = self._target(session_path)
                        reply = connection.exchange(
                            "DELETE", target, headers, None, deadline=deadline, max_body=self._max_body
                        )
                        if reply.status >= 400:
                            log.info("%s: logout DELETE %s gave HTTP %d", self.name, session_path, reply.status)
                    except HttpFailure as exc:
                        log.info("%s: logout DELETE %s failed: %s", self.name, session_path, type(exc).__name__)
            finally:
                connection.close()
