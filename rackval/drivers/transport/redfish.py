"""Redfish over HTTP(S): one keep-alive ``httpx.Client`` and at most one session per BMC.

BMCs are slow (seconds per GET), allow few concurrent sessions (often 8, HTTP 503 when they run
out) and sometimes answer with malformed bodies. This transport owns those hard parts so that
drivers only deal with Redfish resources: it logs in once and reuses the session, logs in again
once when the session expired (401), backs off on 503 within a bound, refuses bodies that are not
a UTF-8 JSON object or that exceed a size limit, deletes its session on ``close()``, and turns
every failure into a ``DeviceError`` naming device, address and the HTTP operation.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import logging
import ssl
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from rackval.core.errors import (
    ConfigError,
    DeviceAuthError,
    DeviceError,
    DeviceProtocolError,
    DeviceTimeout,
)
from rackval.drivers.config import DeviceConfig
from rackval.drivers.options import RedfishOptions, parse_options

log = logging.getLogger(__name__)

SESSIONS_PATH = "/redfish/v1/SessionService/Sessions"
_DEFAULT_MAX_BODY = 16 * 1024 * 1024
_MAX_COLLECTION_PAGES = 1000


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
        doc = json.loads(content.decode("utf-8", errors="replace"))
    except ValueError:
        return ""
    if not isinstance(doc, dict) or not isinstance(doc.get("error"), dict):
        return ""
    err = doc["error"]
    parts = []
    extended = err.get("@Message.ExtendedInfo")
    if isinstance(extended, list):
        parts = [str(m["Message"]) for m in extended if isinstance(m, dict) and m.get("Message")]
    if not parts and err.get("message"):
        parts = [str(err["message"])]
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
      back to basic auth if the service has no SessionService, i.e. 404/405 on login) or
      ``"basic"`` (HTTP basic auth on every request; no session is ever opened).
    - ``retries_503``: how many times to retry a request answered with 503 (default 3). The wait
      doubles from ``backoff_s`` (default 0.5 s) up to ``backoff_max_s`` (default 8 s); a
      Retry-After header replaces the computed wait but is capped at ``backoff_max_s``.
    - ``max_body_bytes``: largest response body accepted (default 16 MiB); a larger one is a
      ``DeviceProtocolError`` rather than a memory blow-up.

    Timeouts (connect, read, write, pool) are ``config.timeout_s``. Proxy settings from the
    environment are ignored (``trust_env=False``): BMCs sit on a management network.
    Thread safety: calls are serialised by an internal lock (one request at a time per BMC).
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
        self._lock = threading.RLock()
        self._client: httpx.Client | None = None
        # Body-less GETs built once per (path, token, client): telemetry asks the same resource
        # every second, and building an httpx request (URL merge and parse, headers) costs a
        # quarter of the exchange.
        self._get_requests: dict[tuple[str, str | None, int], tuple[httpx.Request, str, dict[str, str]]] = {}
        self._fast: http.client.HTTPConnection | None = None  # the hot GETs' own keep-alive connection
        self._mode = self._auth_option  # becomes "basic" if the service has no SessionService
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

    def _http_error(self, op: str, resp: httpx.Response, content: bytes, attempts: int) -> DeviceError:
        status = resp.status_code
        message = _redfish_message(content)
        suffix = f": {message}" if message else ""
        if status == 401:
            return self._err(DeviceAuthError, op, f"HTTP 401 Unauthorized (credentials or session refused){suffix}")
        if status == 403:
            return self._err(DeviceAuthError, op, f"HTTP 403 Forbidden (insufficient privilege){suffix}")
        if status == 503:
            detail = f"HTTP 503 Service Unavailable after {attempts} attempt(s){suffix}"
            return RedfishHttpError(self._config.name, self._config.address, op, detail, status)
        reason = resp.reason_phrase or ""
        detail = f"HTTP {status} {reason}".rstrip() + suffix
        return RedfishHttpError(self._config.name, self._config.address, op, detail, status)

    # ---- connection -------------------------------------------------------------------------
    def _ensure_client(self) -> httpx.Client:
        if self._client is None:
            verify: bool | ssl.SSLContext = (
                self._verify if isinstance(self._verify, bool) else (ssl.create_default_context(cafile=self._verify))
            )
            self._client = httpx.Client(
                base_url=self._base_url,
                verify=verify,
                timeout=httpx.Timeout(self._config.timeout_s),
                headers={"Accept": "application/json", "OData-Version": "4.0"},
                follow_redirects=False,
                trust_env=False,
            )
        return self._client

    @staticmethod
    def _path_of(path_or_url: str) -> str:
        """Only the path (+query) of a URI: tokens must never follow a Location to another host."""
        parts = urlsplit(path_or_url)
        path = parts.path or "/"
        return f"{path}?{parts.query}" if parts.query else path

    def _send_once(
        self, method: str, path: str, body: Any, op: str, *, with_auth: bool
    ) -> tuple[httpx.Response, bytes]:
        """One HTTP exchange with a bounded body read; transport failures become DeviceErrors."""
        client = self._ensure_client()
        headers: dict[str, str] = {}
        auth: httpx.Auth | None = None
        if with_auth:
            if self._mode == "session" and self._token:
                headers["X-Auth-Token"] = self._token
            elif self._mode == "basic":
                auth = httpx.BasicAuth(self._username, self._password.reveal())
        if method == "GET" and body is None and auth is None:
            key = (path, headers.get("X-Auth-Token"), id(client))
            cached = self._get_requests.get(key)
            if cached is None:
                if len(self._get_requests) >= 256:
                    self._get_requests.clear()
                built = client.build_request(method, path, headers=headers)
                plain = {k: v for k, v in built.headers.items() if k.lower() not in ("host", "accept-encoding")}
                cached = self._get_requests[key] = (built, built.url.raw_path.decode("ascii"), plain)
            done = self._fast_get(*cached, op)
            if done is not None:
                return done
            request = cached[0]
        else:
            request = client.build_request(method, path, json=body, headers=headers)
        idempotent = method in ("GET", "DELETE")
        for attempt in (1, 2):
            try:
                resp = client.send(request, stream=True, auth=auth) if auth else client.send(request, stream=True)
            except httpx.TimeoutException as exc:
                raise self._err(
                    DeviceTimeout, op, f"no answer within {self._config.timeout_s:g} s ({type(exc).__name__})"
                ) from exc
            except httpx.RemoteProtocolError as exc:
                # A keep-alive connection the BMC closed while idle: safe to repeat a GET once.
                if idempotent and attempt == 1:
                    continue
                raise self._err(DeviceProtocolError, op, f"malformed HTTP response: {exc}") from exc
            except httpx.ConnectError as exc:
                if isinstance(exc.__cause__ or exc.__context__, ssl.SSLCertVerificationError) or (
                    "CERTIFICATE_VERIFY_FAILED" in str(exc)
                ):
                    raise self._err(
                        DeviceAuthError, op, f"TLS certificate did not verify (option 'verify'): {exc}"
                    ) from exc
                raise self._err(DeviceError, op, f"cannot connect to {self._base_url}: {exc}") from exc
            except httpx.HTTPError as exc:
                raise self._err(DeviceError, op, f"HTTP transport error: {type(exc).__name__}: {exc}") from exc
            try:
                content = self._read_body(resp, op)
            finally:
                resp.close()
            return resp, content
        raise AssertionError("unreachable")  # pragma: no cover

    def _fast_connection(self) -> http.client.HTTPConnection:
        if self._fast is None:
            timeout = self._config.timeout_s
            host = self._config.host
            port = self._config.port if self._config.port is not None else (443 if self._scheme == "https" else 80)
            if self._scheme == "https":
                if self._verify is False:
                    context = ssl.create_default_context()
                    context.check_hostname = False
                    context.verify_mode = ssl.CERT_NONE
                elif self._verify is True:
                    context = ssl.create_default_context()
                else:
                    context = ssl.create_default_context(cafile=str(self._verify))
                self._fast = http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
            else:
                self._fast = http.client.HTTPConnection(host, port, timeout=timeout)
        return self._fast

    def _drop_fast(self) -> None:
        conn, self._fast = self._fast, None
        if conn is not None:
            conn.close()

    def _fast_get(
        self, request: httpx.Request, target: str, headers: dict[str, str], op: str
    ) -> tuple[httpx.Response, bytes] | None:
        """A telemetry GET over the standard library's HTTP client: the same request (headers,
        token, timeout, body limit) at a third of httpx's CPU per request, which matters when 32
        BMCs are read every second. Only the plain road is taken here: on a timeout it raises
        DeviceTimeout like the httpx road; on any other failure (refused, reset, TLS, malformed)
        it returns None and the request is sent again through httpx, whose error mapping (and
        one-time retry of a keep-alive connection the BMC closed) then applies unchanged."""
        conn = self._fast_connection()
        timeout = self._config.timeout_s
        try:
            conn.request("GET", target, headers=headers)
            raw = conn.getresponse()
            declared = raw.getheader("content-length", "")
            if declared.isdigit() and int(declared) > self._max_body:
                self._drop_fast()
                return None  # the httpx road reports the oversized body
            content = raw.read(self._max_body + 1)
            if len(content) > self._max_body:
                self._drop_fast()
                return None
            if not raw.isclosed():
                raw.read()  # the end of a chunked body: the connection is reusable only after it
            if raw.will_close:
                self._drop_fast()
        except TimeoutError as exc:
            self._drop_fast()
            raise self._err(DeviceTimeout, op, f"no answer within {timeout:g} s ({type(exc).__name__})") from exc
        except (OSError, http.client.HTTPException, ValueError):
            self._drop_fast()
            return None
        resp = httpx.Response(raw.status, headers=raw.getheaders(), content=content, request=request)
        return resp, content

    def _read_body(self, resp: httpx.Response, op: str) -> bytes:
        declared = resp.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self._max_body:
            raise self._err(
                DeviceProtocolError,
                op,
                f"response body of {int(declared)} bytes exceeds the {self._max_body}-byte limit",
            )
        buf = bytearray()
        try:
            for chunk in resp.iter_bytes():
                buf += chunk
                if len(buf) > self._max_body:
                    raise self._err(
                        DeviceProtocolError,
                        op,
                        f"response body exceeds the {self._max_body}-byte limit (option 'max_body_bytes')",
                    )
        except httpx.TimeoutException as exc:
            raise self._err(DeviceTimeout, op, f"body not complete within {self._config.timeout_s:g} s") from exc
        except httpx.HTTPError as exc:
            raise self._err(
                DeviceProtocolError, op, f"truncated or malformed response body after {len(buf)} bytes: {exc}"
            ) from exc
        return bytes(buf)

    def _backoff(self, attempt: int, resp: httpx.Response, op: str) -> None:
        delay = self._backoff_s * (2**attempt)
        hinted = _retry_after_s(resp.headers.get("retry-after"))
        if hinted is not None:
            delay = hinted
        delay = min(max(delay, 0.0), self._backoff_max_s)
        log.warning("%s: %s answered 503; retry %d/%d in %.2f s", self.name, op, attempt + 1, self._retries_503, delay)
        time.sleep(delay)

    def _exchange(
        self, method: str, path: str, body: Any, op: str, *, with_auth: bool
    ) -> tuple[httpx.Response, bytes, int]:
        """Send, retrying 503 within the bound. Returns (response, body, attempts made)."""
        attempt = 0
        while True:
            resp, content = self._send_once(method, path, body, op, with_auth=with_auth)
            if resp.status_code != 503 or attempt >= self._retries_503:
                return resp, content, attempt + 1
            self._backoff(attempt, resp, op)
            attempt += 1

    # ---- session ------------------------------------------------------------------------------
    def _login(self) -> None:
        """Open the one session this transport uses (or switch to basic auth if there is none)."""
        op = f"log in as {self._username!r} (POST {SESSIONS_PATH})"
        body = {"UserName": self._username, "Password": self._password.reveal()}
        resp, content, attempts = self._exchange("POST", SESSIONS_PATH, body, op, with_auth=False)
        status = resp.status_code
        if status in (404, 405):
            log.info("%s: no SessionService (HTTP %d); using basic auth", self.name, status)
            self._mode = "basic"
            return
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
            raise self._http_error(op, resp, content, attempts)
        token = resp.headers.get("x-auth-token")
        if not token:
            raise self._err(DeviceProtocolError, op, f"HTTP {status} without an X-Auth-Token header")
        location = resp.headers.get("location")
        if not location:
            try:
                doc = json.loads(content)
                location = doc.get("@odata.id") if isinstance(doc, dict) else None
            except ValueError:
                location = None
        self._token = token
        self._session_path = self._path_of(location) if isinstance(location, str) and location else None
        log.debug("%s: session opened at %s", self.name, self._session_path)

    def _ensure_session(self) -> None:
        self._ensure_client()
        if self._mode == "session" and self._token is None:
            self._login()

    def request(self, method: str, path: str, body: Any = None) -> tuple[httpx.Response, bytes]:
        """Authenticated request; re-logs in once on 401; raises on HTTP errors (>= 400)."""
        op = f"{method} {path}"
        with self._lock:
            self._ensure_session()
            resp, content, attempts = self._exchange(method, path, body, op, with_auth=True)
            if resp.status_code == 401 and self._mode == "session":
                log.info("%s: session rejected on %s; logging in again", self.name, op)
                self._token = None
                self._session_path = None
                self._login()
                resp, content, attempts = self._exchange(method, path, body, op, with_auth=True)
            if resp.status_code >= 400:
                raise self._http_error(op, resp, content, attempts)
            return resp, content

    # ---- public API ---------------------------------------------------------------------------
    def get(self, path: str) -> dict[str, Any]:
        """GET a resource; it must be a UTF-8 JSON object."""
        resp, content = self.request("GET", path)
        op = f"GET {path}"
        try:
            text = content.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise self._err(DeviceProtocolError, op, f"body is not UTF-8 (bad byte at offset {exc.start})") from exc
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise self._err(
                DeviceProtocolError, op, f"body is not JSON ({exc}; {len(content)} bytes, HTTP {resp.status_code})"
            ) from exc
        if not isinstance(doc, dict):
            raise self._err(DeviceProtocolError, op, f"expected a JSON object, got {type(doc).__name__}")
        return doc

    def _response(self, resp: httpx.Response, content: bytes) -> httpx.Response:
        """A complete (non-streaming) copy of a response whose body we read ourselves."""
        headers = [(k, v) for k, v in resp.headers.multi_items() if k.lower() != "content-encoding"]
        return httpx.Response(resp.status_code, headers=headers, content=content, request=resp.request)

    def post(self, path: str, body: Any) -> httpx.Response:
        """POST JSON; returns the response for 2xx/3xx, raises a DeviceError for >= 400."""
        return self._response(*self.request("POST", path, body))

    def patch(self, path: str, body: Any) -> httpx.Response:
        """PATCH JSON; returns the response for 2xx/3xx, raises a DeviceError for >= 400."""
        return self._response(*self.request("PATCH", path, body))

    def delete(self, path: str) -> httpx.Response:
        """DELETE; returns the response for 2xx/3xx, raises a DeviceError for >= 400."""
        return self._response(*self.request("DELETE", path))

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
        """Delete the session (best effort: errors are logged, not raised) and close the client."""
        with self._lock:
            client, self._client = self._client, None
            token, self._token = self._token, None
            self._get_requests.clear()
            self._drop_fast()
            session_path, self._session_path = self._session_path, None
            self._mode = self._auth_option
            if client is None:
                return
            try:
                if token and session_path:
                    try:
                        resp = client.delete(session_path, headers={"X-Auth-Token": token})
                        if resp.status_code >= 400:
                            log.info("%s: logout DELETE %s gave HTTP %d", self.name, session_path, resp.status_code)
                    except httpx.HTTPError as exc:
                        log.info("%s: logout DELETE %s failed: %s", self.name, session_path, type(exc).__name__)
            finally:
                client.close()
