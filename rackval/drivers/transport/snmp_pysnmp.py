"""SNMPv3 through pysnmp's engine, for the privacy protocols the lean path does not speak.

The lean channels (``snmp_channel``) carry v2c and v3 with the protocols a rack should use; pysnmp 7
(asyncio-only) serves what remains: v3 with DES or the AES-192/256 key-extension variants. Each
request runs on the shared loop thread with a pooled engine (``snmp_engines``), uses plain
numeric OIDs (no MIB lookups at all) and ends in the same shape as the lean path's answers
(oid, exception name, plain value). pysnmp's error indications are mapped here to
``rackval.core.errors`` exceptions naming device, address and operation; no protocol object or
secret ever reaches a message.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

from rackval.core.errors import DeviceAuthError, DeviceError, DeviceProtocolError, DeviceTimeout
from rackval.drivers.config import DeviceConfig
from rackval.drivers.transport.snmp_engines import LoopThread, engine_pool, secret_digest, shared_loop

_T = TypeVar("_T")


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


class PysnmpSession:
    """One device's requests through a pooled pysnmp engine on the shared loop (v3 only: v2c
    always takes the lean channel). Thread use: as ``SnmpTransport``'s."""

    def __init__(
        self, config: DeviceConfig, *, port: int, timeout: float, retries: int, auth: str | None, priv: str | None
    ) -> None:
        self.config = config
        self.name = config.name
        self.address = config.address
        self._port = port
        self._timeout = timeout
        self._retries = retries
        self._auth = auth
        self._priv = priv
        creds = config.credentials
        self._engine_key = (
            "v3",
            creds.username,
            auth or "",
            secret_digest(creds.auth_key),
            priv or "",
            secret_digest(creds.priv_key),
        )
        self._loop: LoopThread | None = None
        self._engine: Any = None
        self._target_name: str | None = None
        self._closed = False
        self._lock = threading.Lock()

    def exchange(
        self,
        kind: str,
        oids: Sequence[str],
        operation: str,
        *,
        max_rep: int = 0,
        value: int | str | bytes | None = None,
    ) -> list[tuple[tuple[int, ...], str | None, object]]:
        """One request; the answer as (oid, exception name or None, plain value) per var-bind."""
        _, _, _, var_binds = self._call(self._request(kind, oids, max_rep=max_rep, value=value), operation)
        return [(tuple(oid), _is_exception_value(val), to_python(val)) for oid, val in var_binds]

    def close(self) -> None:
        """Release this device's share of the engine; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            loop, self._loop = self._loop, None
            opened = self._engine is not None
            self._engine = None
        if loop is None or not opened or not loop.thread.is_alive():
            return
        key = self._engine_key

        async def release() -> None:
            engine_pool(asyncio.get_running_loop()).release(key)

        fut = asyncio.run_coroutine_threadsafe(release(), loop.loop)
        try:
            fut.result(timeout=5)
        except Exception:  # closing must not fail a teardown
            fut.cancel()

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
        engine = engine_pool(asyncio.get_running_loop()).acquire(self._engine_key)
        try:
            target_name, _ = LCD.configure(engine, self._auth_data(), target, b"")
        except BaseException:
            engine_pool(asyncio.get_running_loop()).release(self._engine_key)
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
        return per_try * 2 + self._timeout + 2.0  # v3: engine discovery may add a round trip

    def _call(self, coro: Coroutine[Any, Any, _T], operation: str) -> _T:
        """Run ``coro`` on the shared loop, wait bounded, and turn every failure into DeviceError."""
        with self._lock:
            if self._closed:
                coro.close()
                raise DeviceError(self.name, self.address, operation, "transport is closed")
            if self._loop is None:
                self._loop = shared_loop()
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
                raise DeviceTimeout(
                    self.name,
                    self.address,
                    operation,
                    f"no response after {self._retries + 1} attempt(s) of {self._timeout:g} s "
                    "(device unreachable, wrong port, or credentials the agent drops silently:"
                    " a wrong privacy key or protocol)",
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
