"""SNMP v2c / v3 transport: one small blocking API over two engines.

Why it looks like this:

* The hot path is ours: v2c, and v3 with the protocols a rack should use (HMAC-MD5/SHA/SHA-2
  authentication, AES-128 or no privacy), go through ``snmp_channel`` — one connected UDP
  socket per device and a lean BER/USM codec (``snmp_ber``, ``snmp_usm``). pysnmp's engine and
  pyasn1 codec cost 3-4x net-snmp's C client per var-bind; the lean path costs a fifth of it
  (bench/bench_snmp.py). Drivers are synchronous and the harness fans out with threads, so
  these channels simply block in the calling thread.
* pysnmp 7 (asyncio-only) serves what remains: v3 with DES or the AES-192/256 key-extension
  variants. Every such transport in the process submits its coroutines to ONE shared
  event-loop thread, started lazily on first use. Its engines are shared too: one per distinct
  set of v3 credentials (sharing an engine between *different* keys for the same user name
  would make pysnmp's configuration cache swap keys under requests still in flight); an engine
  is closed when the last transport using it closes. Requests use plain numeric OIDs (no MIB
  lookups at all).
* Both paths end in the same shape (oid, exception name, plain value), so get / walk / set
  judge answers identically; every failure becomes a ``rackval.core.errors`` exception naming
  device, address and operation; no protocol object or secret ever reaches a message.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import os
import threading
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from rackval.core.errors import (
    ConfigError,
    DeviceAuthError,
    DeviceError,
    DeviceProtocolError,
    DeviceTimeout,
)
from rackval.drivers.config import DeviceConfig, Secret
from rackval.drivers.transport import snmp_ber as ber
from rackval.drivers.transport import snmp_usm as usm
from rackval.drivers.transport.snmp_channel import CommunityChannel, UsmChannel

_T = TypeVar("_T")

DEFAULT_PORT = 161
DEFAULT_RETRIES = 1

AUTH_PROTOCOLS = ("MD5", "SHA", "SHA224", "SHA256", "SHA384", "SHA512")
# AES192/AES256 follow net-snmp's meaning (Blumenthal key extension); Cisco-style (Reeder)
# extension is available as AES192C / AES256C, the names net-snmp uses for it.
PRIV_PROTOCOLS = ("DES", "AES", "AES128", "AES192", "AES256", "AES192C", "AES256C")


# ---- the shared event loop ---------------------------------------------------------------------
class _LoopThread:
    """One asyncio loop in a daemon thread, shared by every SnmpTransport of this process."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.pid = os.getpid()
        self._ready = threading.Event()
        self.thread = threading.Thread(target=self._run, name="rackval-snmp-loop", daemon=True)
        self.thread.start()
        if not self._ready.wait(timeout=10):
            raise RuntimeError("SNMP event-loop thread did not start")

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._ready.set)
        self.loop.run_forever()


_loop_lock = threading.Lock()
_loop_thread: _LoopThread | None = None


def _shared_loop() -> _LoopThread:
    """Start the shared loop on first use (never at import); restart it in a forked child."""
    global _loop_thread
    with _loop_lock:
        if _loop_thread is None or _loop_thread.pid != os.getpid() or not _loop_thread.thread.is_alive():
            _loop_thread = _LoopThread()
        return _loop_thread


# ---- engine pool (touched only from the loop thread) ---------------------------------------------
@dataclass
class _PooledEngine:
    engine: Any
    users: int = 0


@dataclass
class _EnginePool:
    engines: dict[tuple[str, ...], _PooledEngine] = field(default_factory=dict)

    def acquire(self, key: tuple[str, ...]) -> Any:
        from pysnmp.entity.engine import SnmpEngine

        entry = self.engines.get(key)
        if entry is None:
            entry = self.engines[key] = _PooledEngine(SnmpEngine())
        entry.users += 1
        return entry.engine

    def release(self, key: tuple[str, ...]) -> None:
        entry = self.engines.get(key)
        if entry is None:
            return
        entry.users -= 1
        if entry.users <= 0:
            del self.engines[key]
            entry.engine.close_dispatcher()


_pools: dict[int, _EnginePool] = {}  # keyed by loop id so a forked child never reuses a parent's


def _pool(loop: asyncio.AbstractEventLoop) -> _EnginePool:
    return _pools.setdefault(id(loop), _EnginePool())


def _digest(secret: Secret | None) -> str:
    """Engine-pool key part for a secret: equal secrets share, the secret itself is not kept."""
    return "" if secret is None else hashlib.sha256(secret.reveal().encode()).hexdigest()


# ---- value conversion ----------------------------------------------------------------------------
def _is_exception_value(value: Any) -> str | None:
    """'noSuchObject' / 'noSuchInstance' / 'endOfMibView' for SNMPv2 exception values, else None."""
    from pysnmp.proto import rfc1905

    for name, proto in (
        ("noSuchObject", rfc1905.noSuchObject),
        ("noSuchInstance", rfc1905.noSuchInstance),
        ("endOfMibView", rfc1905.endOfMibView),
    ):
        if value.tagSet == proto.tagSet:
            return name
    return None


def to_python(value: Any) -> object:
    """An SNMP value as plain Python: integers -> int, text -> str, binary -> bytes, OIDs -> str.

    OCTET STRINGs that decode as printable UTF-8 become ``str`` (DisplayString); anything else
    (MAC addresses, opaque blobs) stays ``bytes``.
    """
    from pyasn1.type import univ
    from pysnmp.proto import rfc1902

    if isinstance(value, rfc1902.IpAddress):
        return ".".join(str(b) for b in bytes(value))
    if isinstance(value, univ.Integer):  # Integer32, Unsigned32, Gauge32, Counter32/64, TimeTicks
        return int(value)
    if isinstance(value, univ.ObjectIdentifier):
        return ".".join(str(x) for x in value)
    if isinstance(value, univ.OctetString):
        raw = bytes(value)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw
        if all(c.isprintable() or c in "\r\n\t" for c in text):
            return text
        return raw
    if isinstance(value, univ.Null):
        return None
    return value.prettyPrint()


def _plain(tag: int, value: object) -> object:
    """A value from the lean codec as plain Python, exactly as ``to_python`` converts pysnmp's."""
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


def _normalise_oid(oid: str) -> str:
    text = oid.strip().lstrip(".")
    parts = text.split(".")
    if not text or not all(p.isdigit() for p in parts):
        raise ValueError(f"not a numeric OID: {oid!r} (MIB names are not supported)")
    return text


def _oid_tuple(oid: str) -> tuple[int, ...]:
    return tuple(int(p) for p in oid.split("."))


# ---- error classification ------------------------------------------------------------------------
def _auth_indications() -> tuple[type, ...]:
    from pysnmp.proto import errind

    return (
        errind.UnknownUserName,
        errind.WrongDigest,
        errind.DecryptionError,
        errind.AuthenticationError,
        errind.AuthenticationFailure,
        errind.UnknownSecurityName,
        errind.UnsupportedSecurityLevel,
        errind.UnknownCommunityName,
        errind.NoAuthentication,
        errind.NoEncryption,
        errind.UnsupportedAuthProtocol,
        errind.UnsupportedPrivProtocol,
    )


def _protocol_indications() -> tuple[type, ...]:
    from pysnmp.proto import errind

    return (errind.SerializationError, errind.DeserializationError, errind.EmptyResponse, errind.OidNotIncreasing)


_AUTH_HINTS = {
    "UnknownUserName": "the agent does not know this SNMPv3 user",
    "WrongDigest": "authentication failed: wrong auth key or auth protocol",
    "DecryptionError": "decryption failed: wrong privacy key or privacy protocol",
    "UnsupportedSecurityLevel": "the agent does not allow this security level for the user",
}


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

    Thread use: one thread at a time per instance; many instances may run concurrently.
    """

    def __init__(self, config: DeviceConfig) -> None:
        self.config = config
        self.name = config.name
        self.address = config.address
        self._port = config.port if config.port is not None else DEFAULT_PORT
        self._timeout = float(config.timeout_s)
        try:
            self._retries = int(config.options.get("retries", DEFAULT_RETRIES))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{config.name}: option 'retries' must be an integer") from exc
        if self._retries < 0:
            raise ConfigError(f"{config.name}: option 'retries' must be >= 0")
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
            self._engine_key: tuple[str, ...] = ()  # v2c never uses a pysnmp engine
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
            self._engine_key = (
                "v3",
                creds.username,
                auth or "",
                _digest(creds.auth_key),
                priv or "",
                _digest(creds.priv_key),
            )
        # The lean channels carry v2c and the v3 protocols a rack should use; pysnmp the rest.
        self._lean = version == "2c" or (self._priv is None or self._priv in usm.PRIV)
        self._loop: _LoopThread | None = None
        self._engine: Any = None
        self._target_name: str | None = None
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
    ) -> dict[str, object]:
        """GET many OIDs in one PDU; returns {oid (no leading dot): value}.

        A missing object (noSuchObject / noSuchInstance / endOfMibView) raises
        DeviceProtocolError naming the OID: a driver asking for it expects it to exist.
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
        for oid_t, exc, value in self._exchange("get", norm, operation):
            key = ".".join(map(str, oid_t))
            if exc is not None:
                raise DeviceProtocolError(self.name, self.address, operation, f"agent answered {exc} for {label(key)}")
            result[key] = value
        missing = [label(o) for o in norm if o not in result]
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
        while True:
            var_binds = self._exchange("bulk", [current], operation, max_rep=max_repetitions)
            if not var_binds:
                return rows
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
        """Release this device's share of the engine; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            channel, self._channel = self._channel, None
            loop, self._loop = self._loop, None
            opened = self._engine is not None
            self._engine = None
        if channel is not None:
            channel.close()
        if loop is None or not opened or not loop.thread.is_alive():
            return
        key = self._engine_key

        async def release() -> None:
            _pool(asyncio.get_running_loop()).release(key)

        fut = asyncio.run_coroutine_threadsafe(release(), loop.loop)
        try:
            fut.result(timeout=5)
        except Exception:  # closing must not fail a teardown
            fut.cancel()

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
    ) -> list[tuple[tuple[int, ...], str | None, object]]:
        """One request; the answer as (oid, exception name or None, plain value) per var-bind.

        v2c goes through the lean community channel, v3 through pysnmp's engine; both end here
        in the same shape, so get / walk / set judge answers the same way.
        """
        if self._lean:
            return self._exchange_lean(kind, oids, operation, max_rep=max_rep, value=value)
        _, _, _, var_binds = self._call(self._request(kind, oids, max_rep=max_rep, value=value), operation)
        return [(tuple(oid), _is_exception_value(val), to_python(val)) for oid, val in var_binds]

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
        self, kind: str, oids: Sequence[str], operation: str, *, max_rep: int, value: int | str | bytes | None
    ) -> list[tuple[tuple[int, ...], str | None, object]]:
        channel = self._lean_channel(operation)
        if kind == "get":
            reply = channel.request(
                ber.GET_REQUEST, [ber.null_var_bind(_oid_tuple(o)) for o in oids], operation=operation
            )
        elif kind == "bulk":
            reply = channel.request(
                ber.GET_BULK_REQUEST, [ber.null_var_bind(_oid_tuple(oids[0]))], max_repetitions=max_rep,
                operation=operation,
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

    def _auth_data(self) -> Any:
        from pysnmp.hlapi.v3arch.asyncio import auth as hauth

        creds = self.config.credentials
        auth_map = {  # only v3 reaches pysnmp (v2c always takes the lean channel)
            "MD5": hauth.USM_AUTH_HMAC96_MD5,
            "SHA": hauth.USM_AUTH_HMAC96_SHA,
            "SHA224": hauth.USM_AUTH_HMAC128_SHA224,
            "SHA256": hauth.USM_AUTH_HMAC192_SHA256,
            "SHA384": hauth.USM_AUTH_HMAC256_SHA384,
            "SHA512": hauth.USM_AUTH_HMAC384_SHA512,
        }
        priv_map = {
            "DES": hauth.USM_PRIV_CBC56_DES,
            "AES": hauth.USM_PRIV_CFB128_AES,
            "AES128": hauth.USM_PRIV_CFB128_AES,
            "AES192": hauth.USM_PRIV_CFB192_AES_BLUMENTHAL,
            "AES256": hauth.USM_PRIV_CFB256_AES_BLUMENTHAL,
            "AES192C": hauth.USM_PRIV_CFB192_AES,
            "AES256C": hauth.USM_PRIV_CFB256_AES,
        }
        kwargs: dict[str, Any] = {}
        if self._auth is not None:
            assert creds.auth_key is not None
            kwargs["authKey"] = creds.auth_key.reveal()
            kwargs["authProtocol"] = auth_map[self._auth]
        if self._priv is not None:
            assert creds.priv_key is not None
            kwargs["privKey"] = creds.priv_key.reveal()
            kwargs["privProtocol"] = priv_map[self._priv]
        return hauth.UsmUserData(creds.username, **kwargs)

    async def _ensure_open(self) -> tuple[Any, str]:
        """Bind this device to a pooled engine and a target entry (runs on the loop thread)."""
        if self._engine is not None and self._target_name is not None:
            return self._engine, self._target_name
        from pysnmp.hlapi.v3arch.asyncio.cmdgen import LCD
        from pysnmp.hlapi.v3arch.asyncio.transport import UdpTransportTarget

        target = await UdpTransportTarget.create(
            (self.config.host, self._port), timeout=self._timeout, retries=self._retries
        )
        engine = _pool(asyncio.get_running_loop()).acquire(self._engine_key)
        try:
            target_name, _ = LCD.configure(engine, self._auth_data(), target, b"")
        except BaseException:
            _pool(asyncio.get_running_loop()).release(self._engine_key)
            raise
        self._engine, self._target_name = engine, target_name
        return engine, target_name

    async def _request(
        self, kind: str, oids: Sequence[str], *, max_rep: int = 0, value: int | str | bytes | None = None
    ) -> tuple[Any, Any, Any, Sequence[tuple[Any, Any]]]:
        from pysnmp.entity.rfc3413 import cmdgen
        from pysnmp.proto import rfc1902

        engine, target_name = await self._ensure_open()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[Any, Any, Any, Sequence[tuple[Any, Any]]]] = loop.create_future()

        def done(_engine: Any, _handle: Any, err_ind: Any, err_stat: Any, err_idx: Any, vbs: Any, _ctx: Any) -> None:
            if not future.done():
                future.set_result((err_ind, err_stat, err_idx, vbs))

        if kind == "get":
            vbs = [(rfc1902.ObjectName(o), rfc1902.Null("")) for o in oids]
            cmdgen.GetCommandGenerator().send_varbinds(engine, target_name, None, b"", vbs, done)
        elif kind == "bulk":
            vbs = [(rfc1902.ObjectName(o), rfc1902.Null("")) for o in oids]
            cmdgen.BulkCommandGeneratorSingleRun().send_varbinds(engine, target_name, None, b"", 0, max_rep, vbs, done)
        elif kind == "set":
            typed = rfc1902.Integer32(value) if isinstance(value, int) else rfc1902.OctetString(value)
            vbs = [(rfc1902.ObjectName(oids[0]), typed)]
            cmdgen.SetCommandGenerator().send_varbinds(engine, target_name, None, b"", vbs, done)
        else:  # pragma: no cover - internal misuse
            raise ValueError(kind)
        return await future

    def _hard_timeout(self) -> float:
        # pysnmp bounds each attempt itself; this outer bound only catches a stuck engine.
        per_try = self._timeout * (self._retries + 1)
        return per_try * (2 if self._version == "3" else 1) + self._timeout + 2.0

    def _call(self, coro: Coroutine[Any, Any, _T], operation: str) -> _T:
        """Run ``coro`` on the shared loop, wait bounded, and turn every failure into DeviceError."""
        with self._lock:
            if self._closed:
                coro.close()
                raise DeviceError(self.name, self.address, operation, "transport is closed")
            if self._loop is None:
                self._loop = _shared_loop()
            loop = self._loop
        if threading.get_ident() == loop.thread.ident:
            coro.close()
            raise RuntimeError("SnmpTransport is blocking; do not call it from the SNMP loop thread")
        fut = asyncio.run_coroutine_threadsafe(coro, loop.loop)
        try:
            result = fut.result(timeout=self._hard_timeout())
        except concurrent.futures.TimeoutError as exc:
            fut.cancel()
            raise DeviceTimeout(
                self.name, self.address, operation, f"no answer within {self._hard_timeout():.1f} s"
            ) from exc
        except DeviceError:
            raise
        except Exception as exc:  # pysnmp raises many types; none may escape raw
            raise DeviceError(self.name, self.address, operation, self._clean(exc)) from exc
        self._check(result, operation)
        return result

    @staticmethod
    def _clean(exc: BaseException) -> str:
        text = str(exc).strip().splitlines()
        first = text[-1] if text else ""
        return f"{type(exc).__name__}: {first}"[:300]

    def _check(self, result: Any, operation: str) -> None:
        from pysnmp.proto import errind

        err_ind, err_stat, err_idx, var_binds = result
        if err_ind:
            kind = type(err_ind).__name__
            if isinstance(err_ind, errind.RequestTimedOut):
                silent = "a wrong community" if self._version == "2c" else "a wrong privacy key or protocol"
                raise DeviceTimeout(
                    self.name,
                    self.address,
                    operation,
                    f"no response after {self._retries + 1} attempt(s) of {self._timeout:g} s "
                    f"(device unreachable, wrong port, or credentials the agent drops silently: {silent})",
                )
            if isinstance(err_ind, _auth_indications()):
                hint = _AUTH_HINTS.get(kind, "the agent refused our credentials")
                raise DeviceAuthError(self.name, self.address, operation, f"{hint} ({kind})")
            if isinstance(err_ind, _protocol_indications()):
                raise DeviceProtocolError(self.name, self.address, operation, f"{err_ind} ({kind})")
            raise DeviceError(self.name, self.address, operation, f"{err_ind} ({kind})")
        if err_stat and int(err_stat) != 0:
            name = err_stat.prettyPrint() if hasattr(err_stat, "prettyPrint") else str(err_stat)
            where = ""
            idx = int(err_idx or 0)
            if 0 < idx <= len(var_binds):
                where = f" at {'.'.join(map(str, var_binds[idx - 1][0]))}"
            raise DeviceError(self.name, self.address, operation, f"agent answered {name}{where}")
