"""SNMP v2c / v3 transport: one small blocking API over two engines.

Why it looks like this:

* The hot path is ours: v2c, and v3 with the protocols a rack should use (HMAC-MD5/SHA/SHA-2
  authentication, AES-128 or no privacy), go through ``snmp_channel`` — one connected UDP
  socket per device and a lean BER/USM codec (``snmp_ber``, ``snmp_usm``). pysnmp's engine and
  pyasn1 codec cost 3-4x net-snmp's C client per var-bind; the lean path costs a fifth of it
  (bench/bench_snmp.py). Drivers are synchronous and the harness fans out with threads, so
  these channels simply block in the calling thread.
* pysnmp 7 serves what remains: v3 with DES or the AES-192/256 key-extension variants
  (``snmp_pysnmp``, on one shared event-loop thread with pooled engines: ``snmp_engines``).
* Both paths end in the same shape (oid, exception name, plain value), so get / walk / set
  judge answers identically; every failure becomes a ``rackval.core.errors`` exception naming
  device, address and operation; no protocol object or secret ever reaches a message.
* Bounds: a datagram is at most 64 KiB and a request waits at most ``timeout_s`` per attempt
  (``timeout_s * (retries + 1)`` in all, ignored replies never extend it); a walk, many
  requests, ends within ``walk_timeout_s`` and ``max_walk_rows``, so an agent that answers each
  step slowly or whose table never ends cannot hold a caller or fill its memory.
* Values keep their SNMP kind as a Python type (an INTEGER, counter or time ticks is an int,
  an OCTET STRING a str or bytes); ``octet_text`` refuses an int where text belongs, naming the
  object, so a driver never turns a number into identity text.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence

from rackval.core.errors import ConfigError, DeviceError, DeviceProtocolError, DeviceTimeout
from rackval.drivers.config import DeviceConfig
from rackval.drivers.options import SNMP_AUTH_PROTOCOLS, SNMP_PRIV_PROTOCOLS, SnmpOptions, parse_options
from rackval.drivers.transport import snmp_ber as ber
from rackval.drivers.transport import snmp_usm as usm
from rackval.drivers.transport.snmp_channel import CommunityChannel, UsmChannel
from rackval.drivers.transport.snmp_pysnmp import PysnmpSession

DEFAULT_PORT = 161
DEFAULT_RETRIES = 1

AUTH_PROTOCOLS = SNMP_AUTH_PROTOCOLS  # the vocabularies live with the option models (checked at load)
PRIV_PROTOCOLS = SNMP_PRIV_PROTOCOLS


def _plain(tag: int, value: object) -> object:
    """A value from the lean codec as plain Python, exactly as ``snmp_pysnmp.to_python`` converts pysnmp's."""
    if type(value) is int or value is None:
        return value
    if tag == ber.IP_ADDRESS:
        return ".".join(str(b) for b in value)  # type: ignore[union-attr]
    if tag == ber.OBJECT_IDENTIFIER:
        return ber.format_oid(value)  # type: ignore[arg-type]
    raw: bytes = value  # type: ignore[assignment]  # OCTET STRING, Opaque
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw
    if text.isprintable() or all(c.isprintable() or c in "\r\n\t" for c in text):
        return text
    return raw


class NotText(ValueError):
    """An SNMP value of another kind where an OCTET STRING belongs (the message names the object)."""


def octet_text(value: object, label: str) -> str:
    """An OCTET STRING value as text ("" for an absent one); NotText naming ``label`` when the agent
    sent a number (INTEGER, counter, gauge, time ticks) instead. Undecodable bytes are replaced."""
    if value is None or isinstance(value, str):
        return value or ""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    raise NotText(f"{label}: expected an OCTET STRING, got the number {value!r}")


def _normalise_oid(oid: str) -> str:
    text = oid.strip().lstrip(".")
    parts = text.split(".")
    if not text or not all(p.isdigit() for p in parts):
        raise ValueError(f"not a numeric OID: {oid!r} (MIB names are not supported)")
    return text


def _oid_tuple(oid: str) -> tuple[int, ...]:
    return tuple(int(p) for p in oid.split("."))


class SnmpTransport:
    """Blocking SNMP GET / GETBULK walk / SET for one device.

    ``config.credentials``: ``snmp_version`` "2c" (``community``) or "3" (``username``,
    ``auth_protocol`` in MD5/SHA/SHA224/SHA256/SHA384/SHA512 with ``auth_key``, ``priv_protocol``
    in DES/AES/AES128/AES192/AES256 (AES192C/AES256C: Cisco key extension) with ``priv_key``;
    authPriv is what a rack should use, but
    authNoPriv / noAuthNoPriv follow when the priv / auth protocol is left out).
    ``config.port`` defaults to 161; ``config.timeout_s`` is the per-attempt response timeout.

    Options (``config.options``):
      * ``retries`` (int, default 1): re-sends after a timeout; total wait is bounded by
        ``timeout_s * (retries + 1)`` (v3 engine discovery may add one more round trip).
      * ``walk_timeout_s`` (default 60): a whole walk ends within this (DeviceTimeout naming the
        rows read so far); ``max_walk_rows`` (default 100,000) and ``max_walk_bytes`` (default
        16 MiB, OIDs and values as received): a walk returning more is a DeviceProtocolError (an
        agent whose table never ends, or whose rows are huge), not memory growth.

    Thread use: one thread at a time per instance; many instances may run concurrently.
    """

    def __init__(self, config: DeviceConfig) -> None:
        self.config = config
        self.name = config.name
        self.address = config.address
        self._port = config.port if config.port is not None else DEFAULT_PORT
        self._timeout = float(config.timeout_s)
        opts = parse_options(SnmpOptions, config.options, config.name, known_only=True)
        self._retries = opts.retries
        self._walk_timeout_s = opts.walk_timeout_s
        self._max_walk_rows = opts.max_walk_rows
        self._max_walk_bytes = opts.max_walk_bytes
        creds = config.credentials
        version = str(creds.snmp_version).lower().lstrip("v")
        if version not in ("2c", "3"):
            raise ConfigError(f"{config.name}: snmp_version must be '2c' or '3', got {creds.snmp_version!r}")
        self._version = version
        self._auth: str | None = None
        self._priv: str | None = None
        if version == "2c":
            if creds.community is None:
                raise ConfigError(f"{config.name}: SNMP v2c needs credentials.community")
        else:
            if not creds.username:
                raise ConfigError(f"{config.name}: SNMP v3 needs credentials.username")
            auth = (creds.auth_protocol or "").upper().replace("-", "") or None
            priv = (creds.priv_protocol or "").upper().replace("-", "") or None
            if auth is not None and auth not in AUTH_PROTOCOLS:
                raise ConfigError(f"{config.name}: auth_protocol must be one of {AUTH_PROTOCOLS}, got {auth!r}")
            if priv is not None and priv not in PRIV_PROTOCOLS:
                raise ConfigError(f"{config.name}: priv_protocol must be one of {PRIV_PROTOCOLS}, got {priv!r}")
            if auth is not None and creds.auth_key is None:
                raise ConfigError(f"{config.name}: auth_protocol {auth} needs credentials.auth_key")
            if priv is not None and (auth is None or creds.priv_key is None):
                raise ConfigError(f"{config.name}: priv_protocol {priv} needs auth_protocol and priv_key")
            self._auth, self._priv = auth, priv
        # The lean channels carry v2c and the v3 protocols a rack should use; pysnmp the rest.
        self._lean = version == "2c" or (self._priv is None or self._priv in usm.PRIV)
        self._pysnmp = (
            None
            if self._lean
            else PysnmpSession(
                config, port=self._port, timeout=self._timeout, retries=self._retries, auth=self._auth, priv=self._priv
            )
        )
        self._channel: CommunityChannel | UsmChannel | None = None
        self._closed = False
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SnmpTransport(name={self.name!r}, address={self.address!r}, version={self._version!r})"

    # ---- public API ------------------------------------------------------------------------------
    def get(
        self,
        oids: Sequence[str],
        *,
        operation: str | None = None,
        labels: Mapping[str, str] | None = None,
        missing_ok: bool = False,
    ) -> dict[str, object]:
        """GET many OIDs in one PDU; returns {oid (no leading dot): value}.

        A missing object (noSuchObject / noSuchInstance / endOfMibView) raises
        DeviceProtocolError naming the OID: a driver asking for it expects it to exist. With
        ``missing_ok`` it is left out of the result instead (the other objects of the same
        request are kept), for columns a device may not have (an unmetered PDU's outlet meters).
        ``operation`` names what the caller is doing for error messages (default "SNMP GET <oid>");
        ``labels`` maps numeric OIDs to names (e.g. "rPDU2OutletSwitchedStatusState.3") for them.
        """
        norm = [_normalise_oid(o) for o in oids]
        if not norm:
            return {}
        names = {_normalise_oid(k): v for k, v in (labels or {}).items()}

        def label(oid: str) -> str:
            return f"{names[oid]} ({oid})" if oid in names else oid

        operation = operation or f"SNMP GET {self._describe([label(o) for o in norm])}"
        result: dict[str, object] = {}
        absent: set[str] = set()
        for oid_t, exc, value in self._exchange("get", norm, operation):
            key = ".".join(map(str, oid_t))
            if exc is not None:
                if missing_ok:
                    absent.add(key)
                    continue
                raise DeviceProtocolError(self.name, self.address, operation, f"agent answered {exc} for {label(key)}")
            result[key] = value
        missing = [label(o) for o in norm if o not in result and o not in absent]
        if missing:
            raise DeviceProtocolError(self.name, self.address, operation, f"response lacks {self._describe(missing)}")
        return result

    def walk(self, prefix: str, max_repetitions: int = 25, *, operation: str | None = None) -> list[tuple[str, object]]:
        """All (oid, value) under ``prefix`` in OID order, by GETBULK; stops at the prefix end."""
        root = _normalise_oid(prefix)
        root_t = _oid_tuple(root)
        if max_repetitions < 1:
            raise ValueError("max_repetitions must be >= 1")
        operation = operation or f"SNMP walk {root}"
        rows: list[tuple[str, object]] = []
        current = root
        current_t = root_t
        size = 0
        until = time.monotonic() + self._walk_timeout_s
        while True:
            try:
                var_binds = self._exchange("bulk", [current], operation, max_rep=max_repetitions, until=until)
            except DeviceTimeout as exc:
                if time.monotonic() < until:
                    raise
                raise DeviceTimeout(
                    self.name, self.address, operation,
                    f"walk not complete within {self._walk_timeout_s:g} s ({len(rows)} rows so far; option "
                    "'walk_timeout_s')",
                ) from exc  # fmt: skip
            if not var_binds:
                return rows
            if len(rows) + len(var_binds) > self._max_walk_rows:
                raise DeviceProtocolError(
                    self.name, self.address, operation,
                    f"walk returned more than {self._max_walk_rows} rows (option 'max_walk_rows')",
                )  # fmt: skip
            size += sum(len(oid) + (len(v) if isinstance(v, str | bytes) else 8) for oid, _, v in var_binds)
            if size > self._max_walk_bytes:
                raise DeviceProtocolError(
                    self.name, self.address, operation,
                    f"walk reply larger than {self._max_walk_bytes} bytes (option 'max_walk_bytes')",
                )  # fmt: skip
            for oid_t, exc, value in var_binds:
                if exc is not None or oid_t[: len(root_t)] != root_t:
                    return rows
                if oid_t <= current_t:
                    raise DeviceProtocolError(
                        self.name,
                        self.address,
                        operation,
                        f"agent returned non-increasing OID {'.'.join(map(str, oid_t))} after "
                        f"{'.'.join(map(str, current_t))}",
                    )
                current_t = oid_t
                rows.append((".".join(map(str, oid_t)), value))
            current = ".".join(map(str, current_t))

    def set(self, oid: str, value: int | str | bytes, *, operation: str | None = None) -> None:
        """SET one object: int -> Integer32, str/bytes -> OCTET STRING.

        String values are left out of the default operation text: they may be configuration
        secrets (e.g. a community being written).
        """
        norm = _normalise_oid(oid)
        if operation is None:
            operation = f"SNMP SET {norm} = {value!r}" if isinstance(value, int) else f"SNMP SET {norm}"
        if isinstance(value, bool) or not isinstance(value, int | str | bytes):
            raise TypeError(f"SNMP SET value must be int, str or bytes, got {type(value).__name__}")
        self._exchange("set", [norm], operation, value=value)

    def close(self) -> None:
        """Close the lean channel, or release this device's share of the pysnmp engine; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            channel, self._channel = self._channel, None
        if channel is not None:
            channel.close()
        if self._pysnmp is not None:
            self._pysnmp.close()

    def __enter__(self) -> SnmpTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- internals -------------------------------------------------------------------------------
    def _exchange(
        self,
        kind: str,
        oids: Sequence[str],
        operation: str,
        *,
        max_rep: int = 0,
        value: int | str | bytes | None = None,
        until: float | None = None,
    ) -> list[tuple[tuple[int, ...], str | None, object]]:
        """One request; the answer as (oid, exception name or None, plain value) per var-bind.

        The lean channels (v2c, and v3 with the protocols a rack should use) or pysnmp's engine
        (the other v3 privacy protocols); both end here in the same shape, so get / walk / set
        judge answers the same way. ``until`` (a walk's deadline) ends the lean channel's waits;
        pysnmp's requests keep their own bound, so a walk there may overrun by one request.
        """
        if self._pysnmp is None:
            return self._exchange_lean(kind, oids, operation, max_rep=max_rep, value=value, until=until)
        if until is not None and time.monotonic() >= until:
            raise DeviceTimeout(self.name, self.address, operation, "no time left for another request")
        return self._pysnmp.exchange(kind, oids, operation, max_rep=max_rep, value=value)

    def _lean_channel(self, operation: str) -> CommunityChannel | UsmChannel:
        with self._lock:
            if self._closed:
                raise DeviceError(self.name, self.address, operation, "transport is closed")
            if self._channel is None:
                creds = self.config.credentials
                where = {
                    "device": self.name,
                    "address": self.address,
                    "host": self.config.host,
                    "port": self._port,
                    "timeout_s": self._timeout,
                    "retries": self._retries,
                }
                if self._version == "2c":
                    assert creds.community is not None
                    self._channel = CommunityChannel(community=creds.community.reveal().encode(), **where)
                else:
                    self._channel = UsmChannel(
                        user=creds.username or "",
                        auth=self._auth,
                        auth_key=creds.auth_key.reveal() if creds.auth_key is not None else None,
                        priv=self._priv,
                        priv_key=creds.priv_key.reveal() if creds.priv_key is not None else None,
                        **where,
                    )
            return self._channel

    def _exchange_lean(
        self, kind: str, oids: Sequence[str], operation: str, *, max_rep: int, value: int | str | bytes | None,
        until: float | None,
    ) -> list[tuple[tuple[int, ...], str | None, object]]:  # fmt: skip
        channel = self._lean_channel(operation)
        if kind == "get":
            reply = channel.request(
                ber.GET_REQUEST, [ber.null_var_bind(_oid_tuple(o)) for o in oids], operation=operation
            )
        elif kind == "bulk":
            reply = channel.request(
                ber.GET_BULK_REQUEST, [ber.null_var_bind(_oid_tuple(oids[0]))], max_repetitions=max_rep,
                operation=operation, until=until,
            )  # fmt: skip
        elif kind == "set":
            tag = ber.INTEGER if isinstance(value, int) else ber.OCTET_STRING
            try:
                vb = ber.encode_var_bind(_oid_tuple(oids[0]), tag, value)
            except ber.BerError as exc:
                raise DeviceError(self.name, self.address, operation, f"cannot encode the value: {exc}") from exc
            reply = channel.request(ber.SET_REQUEST, [vb], operation=operation)
        else:  # pragma: no cover - internal misuse
            raise ValueError(kind)
        if reply.error_status:
            status = reply.error_status
            name = ber.ERROR_STATUS_NAMES[status] if 0 <= status < len(ber.ERROR_STATUS_NAMES) else str(status)
            where = ""
            idx = reply.error_index
            if 0 < idx <= len(reply.var_binds):
                where = f" at {ber.format_oid(reply.var_binds[idx - 1][0])}"
            raise DeviceError(self.name, self.address, operation, f"agent answered {name}{where}")
        return [(oid, ber.EXCEPTION_NAMES.get(tag), _plain(tag, val)) for oid, tag, val in reply.var_binds]

    @staticmethod
    def _describe(oids: Sequence[str]) -> str:
        return oids[0] if len(oids) == 1 else f"{oids[0]} (+{len(oids) - 1} more)"
