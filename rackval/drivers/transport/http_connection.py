"""One HTTP/1.1 keep-alive connection whose every exchange has a hard deadline and a size cap.

Why this exists: a BMC's web server is the least trustworthy peer in a rack, and per-read
timeouts (httpx's, or a plain socket timeout) do not bound an exchange: a server that trickles
its status line, headers or body one byte just inside each read's timeout holds the caller for
hours. Here an exchange runs on the standard library's ``http.client`` over a socket this module
owns, so the deadline reaches the socket:

* the connect waits at most the time left; every ``recv`` waits at most the time left at the
  start of the exchange (socket timeout), and the process watchdog (``watchdog``) shuts the
  socket down when the deadline passes, which wakes a ``recv`` that a trickling peer keeps
  alive; the exchange then fails with ``HttpTimeout``, so it ends within the deadline plus the
  watchdog's wake-up (milliseconds);
* the body is read in chunks and refused beyond ``max_body`` bytes (a larger Content-Length
  before any of it is read); ``http.client`` itself bounds the status line and each header
  line to 64 KiB and a response to 100 headers, so nothing a peer sends grows without bound;
* a keep-alive connection the server closed while idle is noticed before it is reused (it is
  readable at rest) and replaced, so a request is not sent into a dead connection; a reused
  connection that fails before any byte of the answer is reported as ``retryable``.

It is also the cheap road: ``http.client`` costs a third of httpx's CPU per request, which
matters when 32 BMCs are read every second. Failures are ``HttpFailure`` subclasses without
device names; ``RedfishTransport`` turns them into DeviceErrors naming device, address and
operation.
"""

from __future__ import annotations

import contextlib
import http.client
import select
import socket
import ssl
import time
from dataclasses import dataclass

from rackval.drivers.transport.watchdog import WATCHDOG, abort_socket

_CHUNK = 65536


@dataclass(frozen=True)
class HttpReply:
    """A complete response: status, reason phrase, headers in order, and the body read."""

    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        """The first header called ``name`` (any letter case), None when absent."""
        wanted = name.lower()
        return next((v for k, v in self.headers if k.lower() == wanted), None)


class HttpFailure(Exception):
    """An exchange did not complete; the message says what happened, never with a secret."""


class HttpTimeout(HttpFailure):
    """The deadline passed (connect, request or response)."""


class HttpTooLarge(HttpFailure):
    """The body is larger than the cap (declared or read)."""


class HttpConnectFailed(HttpFailure):
    """No TCP connection (refused, unreachable, name not resolved)."""


class HttpCertificateFailed(HttpFailure):
    """The server's TLS certificate did not verify."""


class HttpBroken(HttpFailure):
    """The connection broke or the response was malformed.

    ``retryable``: it happened on a reused keep-alive connection before any byte of the answer
    arrived (the server had closed it), so an idempotent request may be sent again once.
    """

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


def _closed_while_idle(sock: socket.socket) -> bool:
    """True when an idle keep-alive socket is readable: the server closed it (or sent junk)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


class HttpConnection:
    """One keep-alive connection to ``host:port`` (TLS when ``tls`` is a context); one exchange
    at a time (the caller serialises). ``close()`` may be called at any time; the next exchange
    connects again."""

    def __init__(self, host: str, port: int, tls: ssl.SSLContext | None) -> None:
        self._host = host
        self._port = port
        self._tls = tls
        self._conn: http.client.HTTPConnection | None = None

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def _connected(self, remaining: float) -> tuple[http.client.HTTPConnection, bool]:
        """The open connection (reused: True) or a new one connected within ``remaining`` s."""
        conn = self._conn
        if conn is not None and conn.sock is not None and not _closed_while_idle(conn.sock):
            return conn, True
        self.close()
        if self._tls is not None:
            conn = http.client.HTTPSConnection(self._host, self._port, timeout=remaining, context=self._tls)
        else:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=remaining)
        try:
            conn.connect()
        except ssl.SSLCertVerificationError as exc:
            conn.close()
            raise HttpCertificateFailed(f"TLS certificate did not verify: {exc.verify_message or exc}") from exc
        except TimeoutError as exc:
            conn.close()
            raise HttpTimeout(f"no connection within {remaining:.3g} s") from exc
        except (OSError, ssl.SSLError) as exc:
            conn.close()
            raise HttpConnectFailed(str(exc) or type(exc).__name__) from exc
        assert conn.sock is not None
        with contextlib.suppress(OSError):
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._conn = conn
        return conn, False

    def exchange(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        body: bytes | None,
        *,
        deadline: float,
        max_body: int,
    ) -> HttpReply:
        """Send one request and read its whole response, all before ``deadline`` (monotonic)."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise HttpTimeout("no time left for the request")
        conn, reused = self._connected(remaining)
        sock = conn.sock
        assert sock is not None
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            self.close()
            raise HttpTimeout("connected, but no time left for the request")
        sock.settimeout(remaining)
        guard = WATCHDOG.schedule(remaining, lambda: abort_socket(sock))
        answered = False
        try:
            conn.request(method, target, body=body, headers=headers)
            raw = conn.getresponse()
            answered = True
            reply = self._read(raw, max_body)
        except HttpTooLarge:
            self.close()
            raise
        except (OSError, http.client.HTTPException, ValueError) as exc:
            guard.cancel()  # returns once a watchdog that fired has shut the socket down
            self.close()
            if guard.fired or isinstance(exc, TimeoutError):
                raise HttpTimeout(self._late(answered)) from exc
            retry = reused and not answered and isinstance(exc, ConnectionError | http.client.BadStatusLine)
            what = "malformed or truncated response" if answered else "connection broken before the response"
            raise HttpBroken(f"{what}: {type(exc).__name__}: {exc}", retryable=retry) from exc
        finally:
            guard.cancel()
        if guard.fired:  # the shutdown may have ended a body read until close: not a complete answer
            self.close()
            raise HttpTimeout(self._late(answered))
        if raw.will_close:
            self.close()
        return reply

    @staticmethod
    def _late(answered: bool) -> str:
        return "the response body did not complete in time" if answered else "no complete response headers in time"

    @staticmethod
    def _read(raw: http.client.HTTPResponse, max_body: int) -> HttpReply:
        declared = raw.getheader("content-length", "")
        if declared.isdigit() and int(declared) > max_body:
            raise HttpTooLarge(f"reply larger than {max_body} bytes (Content-Length {int(declared)})")
        buf = bytearray()
        while True:
            chunk = raw.read(min(_CHUNK, max_body + 1 - len(buf)))
            if not chunk:
                break
            buf += chunk
            if len(buf) > max_body:
                raise HttpTooLarge(f"reply larger than {max_body} bytes")
        if raw.length:  # http.client returns a body cut short by the peer without complaint
            raise http.client.IncompleteRead(bytes(buf), raw.length)
        return HttpReply(raw.status, raw.reason, raw.getheaders(), bytes(buf))
