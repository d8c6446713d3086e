"""Simulated APC rPDU2 PDU: a real SNMP agent (pysnmp 7) on 127.0.0.1 serving the rack model.

What it serves (numeric OIDs from ``drivers.pdu.apc``; device index 1, flat outlet index):
  * SNMPv2-MIB system group: sysDescr, sysObjectID (APC rPDU2), sysUpTime, sysContact, sysName,
    sysLocation, sysServices.
  * rPDU2IdentTable (name, location, hardware/firmware revision, manufacture date, model, serial).
  * rPDU2DeviceProperties (outlet counts, phases) and rPDU2DeviceStatusPower (hundredths of kW).
  * rPDU2PhaseStatus current / voltage / power for the single phase.
  * rPDU2OutletSwitchedStatus name / state (off 1, on 2) / command pending,
    rPDU2OutletSwitchedControlCommand (GET: 1 = on, 2 = off, the MIB's opposite polarity;
    SET immediateOn 1 / immediateOff 2 / immediateReboot 3, anything else -> wrongValue),
    rPDU2OutletMeteredStatus name / current (tenths of A) / power (W).
Every value is computed on demand from the shared ``RackModel`` (under ``model.lock``, so one
request sees one consistent state); a SET of the control command switches the model's outlet.

Design choices, and the pysnmp pitfalls they avoid (see shared/reference/pysnmp-agent.md):
  * Our own MIB controller (sorted OID list + bisect) instead of a pysnmp MIB tree: cheaper per
    var-bind and values come straight from the model. It replaces the whole MIB of the default
    context, so the engine's own tables (USM keys included) are never served; VACM is still
    enforced on every var-bind through the responder's access-check hook.
  * Read views contain only the system group and the APC subtree; a read-only community gets a
    write view that matches nothing, so a SET is refused with noAccess (pysnmp would otherwise
    let a user without a write view write).
  * The UDP socket is bound before the engine starts (pysnmp loses bind errors otherwise).
  * The engine runs on its own asyncio loop in a daemon thread; ``stop()`` closes the transport,
    stops the loop and joins the thread.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import ipaddress
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from drivers.pdu import apc
from drivers.sim.model import RackModel

SYS = (1, 3, 6, 1, 2, 1, 1)
READ_SUBTREES = (SYS, tuple(int(x) for x in apc.APC_ENTERPRISE.split(".")))
WRITE_SUBTREE = tuple(int(x) for x in apc.OUTLET_SWITCHED_CONTROL_TABLE.split("."))
DEAD_SUBTREE = (0, 0)  # a view that matches nothing any agent serves

_VIEW_READ = "rv-read"
_VIEW_WRITE = "rv-write"
_VIEW_NONE = "rv-none"
_DEVICE = 1  # rPDU2 device index
_PHASE = 1


def _oid(text: str, *index: int) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(".")) + index


@dataclass
class _Entry:
    """One served object instance: how to read it, and (if writable) how to write it."""

    get: Callable[[], Any]
    check: Callable[[Any], None] | None = None  # raises an SMI error for a bad value
    apply: Callable[[Any], None] | None = None


class _PduMib:
    """The MIB instrumentation controller for one simulated PDU (pysnmp duck-types it)."""

    def __init__(self, entries: dict[tuple[int, ...], _Entry], model: RackModel) -> None:
        from pysnmp.smi import error as smi_error
        from pysnmp.smi import exval

        self._entries = entries
        self._keys = sorted(entries)
        self._columns = {k[:-1] for k in entries}
        self._model = model
        self._exval = exval
        self._err = smi_error

    # A plain class with pysnmp's three controller methods; subclassing its abstract base adds
    # nothing (the responders only call these).
    def read_variables(self, *var_binds: Any, **context: Any) -> list[tuple[Any, Any]]:
        out = []
        with self._model.lock:
            for idx, (name, val) in enumerate(var_binds):
                key = tuple(name)
                if self._denied("read", name, val, idx, context):
                    out.append((name, self._exval.noSuchObject))
                    continue
                entry = self._entries.get(key)
                if entry is None:
                    missing = self._exval.noSuchInstance if key[:-1] in self._columns else self._exval.noSuchObject
                    out.append((name, missing))
                else:
                    out.append((name, self._read(entry, name, idx)))
        return out

    def read_next_variables(self, *var_binds: Any, **context: Any) -> list[tuple[Any, Any]]:
        from pysnmp.proto import rfc1902

        out = []
        with self._model.lock:
            for idx, (name, val) in enumerate(var_binds):
                pos = bisect.bisect_right(self._keys, tuple(name))
                found = None
                while pos < len(self._keys):
                    key = self._keys[pos]
                    if not self._denied("read", rfc1902.ObjectName(key), val, idx, context):
                        found = key
                        break
                    pos += 1
                if found is None:
                    out.append((name, self._exval.endOfMibView))
                else:
                    out.append((rfc1902.ObjectName(found), self._read(self._entries[found], name, idx)))
        return out

    def write_variables(self, *var_binds: Any, **context: Any) -> list[tuple[Any, Any]]:
        plans = []
        for idx, (name, val) in enumerate(var_binds):
            if self._denied("write", name, val, idx, context):
                raise self._err.NoAccessError(name=name, idx=idx)
            entry = self._entries.get(tuple(name))
            if entry is None or entry.check is None or entry.apply is None:
                raise self._err.NotWritableError(name=name, idx=idx)
            try:
                entry.check(val)
            except self._err.MibOperationError as exc:
                exc.update({"name": name, "idx": idx})
                raise
            plans.append((entry, val))
        # All var-binds validated: apply them together (SET is atomic per PDU).
        with self._model.lock:
            for entry, val in plans:
                assert entry.apply is not None
                entry.apply(val)
        return list(var_binds)

    def _denied(self, view: str, name: Any, val: Any, idx: int, context: dict[str, Any]) -> bool:
        ac = context.get("acFun")
        if ac is None:
            return False
        return bool(ac(view, (name, val), **{**context, "idx": idx}))

    def _read(self, entry: _Entry, name: Any, idx: int) -> Any:
        try:
            return entry.get()
        except Exception as exc:  # a model bug must become genErr, not a dead agent
            raise self._err.GenError(name=name, idx=idx) from exc


class SnmpAgentServer:
    """A running simulated PDU agent: ``host``, ``port`` (actually bound) and ``stop()``."""

    def __init__(
        self,
        model: RackModel,
        pdu: str,
        *,
        host: str,
        community: str,
        write_community: str | None,
        v3_user: str | None,
        v3_auth_key: str | None,
        v3_priv_key: str | None,
        reboot_duration_s: float,
    ) -> None:
        self.model = model
        self.pdu = pdu
        self._community = community
        self._write_community = write_community
        self._v3 = (v3_user, v3_auth_key, v3_priv_key) if v3_user else None
        self._reboot_s = reboot_duration_s
        self._started = time.monotonic()
        self._reboots: dict[int, asyncio.TimerHandle] = {}
        self._lock = threading.Lock()
        self._stopped = False
        self._error: BaseException | None = None
        self._ready = threading.Event()
        self._engine: Any = None
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self._sock.bind((host, 0))
        except OSError:
            self._sock.close()
            raise
        self.host, self.port = self._sock.getsockname()[:2]
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=f"snmp-agent-{pdu}", daemon=True)

    def __repr__(self) -> str:
        return f"SnmpAgentServer(pdu={self.pdu!r}, host={self.host!r}, port={self.port})"

    # ---- lifecycle -------------------------------------------------------------------------------
    def _start(self, timeout_s: float = 10.0) -> None:
        self._thread.start()
        if not self._ready.wait(timeout_s):
            self.stop()
            raise RuntimeError(f"SNMP agent for {self.pdu} did not start within {timeout_s} s")
        if self._error is not None:
            self.stop()
            raise RuntimeError(f"SNMP agent for {self.pdu} failed to start: {self._error}") from self._error

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._build()
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            self._loop.close()
            self._sock.close()
            return
        self._loop.call_soon(self._ready.set)
        try:
            self._loop.run_forever()
        finally:
            pending = asyncio.all_tasks(self._loop)
            for task in pending:
                task.cancel()
            if pending:
                self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self._loop.close()
            self._sock.close()

    def stop(self) -> None:
        """Close the transport, stop the loop, join the thread; idempotent."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        if self._thread.is_alive():
            with contextlib.suppress(RuntimeError):  # loop already closed
                self._loop.call_soon_threadsafe(self._shutdown)
            self._thread.join(timeout=5)
        self._sock.close()

    def _shutdown(self) -> None:
        for handle in self._reboots.values():
            handle.cancel()
        self._reboots.clear()
        if self._engine is not None:
            self._engine.close_dispatcher()
        self._loop.stop()

    # ---- engine ----------------------------------------------------------------------------------
    def _build(self) -> None:
        from pysnmp.carrier.asyncio.dgram import udp
        from pysnmp.entity import config, engine
        from pysnmp.entity.rfc3413 import cmdrsp, context

        eng = engine.SnmpEngine()
        self._engine = eng
        config.add_transport(eng, udp.DOMAIN_NAME, udp.UdpTransport().open_server_mode(sock=self._sock))
        for subtree in READ_SUBTREES:
            config.add_vacm_view(eng, _VIEW_READ, "included", subtree, b"")
        config.add_vacm_view(eng, _VIEW_WRITE, "included", WRITE_SUBTREE, b"")
        config.add_vacm_view(eng, _VIEW_NONE, "included", DEAD_SUBTREE, b"")
        config.add_context(eng, b"")
        if self._write_community is not None and self._write_community == self._community:
            config.add_v1_system(eng, "rv-rw", self._community)
            self._grant(eng, 2, "rv-rw", "noAuthNoPriv", write=True)
        else:
            config.add_v1_system(eng, "rv-ro", self._community)
            self._grant(eng, 2, "rv-ro", "noAuthNoPriv", write=False)
            if self._write_community is not None:
                config.add_v1_system(eng, "rv-rw", self._write_community)
                self._grant(eng, 2, "rv-rw", "noAuthNoPriv", write=True)
        if self._v3 is not None:
            user, auth_key, priv_key = self._v3
            config.add_v3_user(
                eng, user, config.USM_AUTH_HMAC192_SHA256, auth_key, config.USM_PRIV_CFB128_AES, priv_key
            )
            self._grant(eng, 3, user, "authPriv", write=True)
        ctx = context.SnmpContext(eng)
        ctx.unregister_context_name(b"")
        ctx.register_context_name(b"", _PduMib(self._entries(), self.model))
        cmdrsp.GetCommandResponder(eng, ctx)
        cmdrsp.NextCommandResponder(eng, ctx)
        cmdrsp.BulkCommandResponder(eng, ctx)
        cmdrsp.SetCommandResponder(eng, ctx)

    @staticmethod
    def _grant(eng: Any, security_model: int, security_name: str, level: str, *, write: bool) -> None:
        """VACM: this principal reads the system group + APC subtree; writes outlet control or nothing."""
        from pysnmp.entity import config

        (security_level,) = eng.get_mib_builder().import_symbols("SNMP-FRAMEWORK-MIB", "SnmpSecurityLevel")
        group = f"rv-grp-{security_model}-{security_name}"
        config.add_vacm_group(eng, group, security_model, security_name)
        config.add_vacm_access(
            eng,
            group,
            b"",
            security_model,
            security_level(level),
            "exact",
            _VIEW_READ,
            _VIEW_WRITE if write else _VIEW_NONE,
            _VIEW_NONE,
        )

    # ---- served objects --------------------------------------------------------------------------
    def _entries(self) -> dict[tuple[int, ...], _Entry]:
        from pysnmp.proto import rfc1902
        from pysnmp.smi import error as smi_error

        model, name = self.model, self.pdu
        pdu = model.pdus[name]
        info = pdu.info
        outlets = sorted(pdu.outlets)
        n = len(outlets)
        integer, text = rfc1902.Integer32, rfc1902.OctetString

        def const(value: Any) -> Callable[[], Any]:
            return lambda: value

        fw_num = info.firmware.lstrip("v").replace(".", "")
        # APC-style sysDescr [U: format modelled on AOS 7.x cards, not copied from a device]
        sys_descr = (
            f"APC Web/SNMP Management Card (MB:v4.2.1 PF:{info.firmware} PN:apc_hw05_aos_{fw_num}.bin "
            f"AF1:{info.firmware} AN1:apc_hw05_rpdu2g_{fw_num}.bin MN:{info.model} HR:02 "
            f"SN: {info.serial} MD:01/15/2024) (Embedded PowerNet SNMP Agent SW v2.2 compatible)"
        )
        e: dict[tuple[int, ...], _Entry] = {
            (*SYS, 1, 0): _Entry(const(text(sys_descr))),
            (*SYS, 2, 0): _Entry(const(rfc1902.ObjectIdentifier(apc.SYS_OBJECT_ID_RPDU2))),
            (*SYS, 3, 0): _Entry(lambda: rfc1902.TimeTicks(int((time.monotonic() - self._started) * 100) % 2**32)),
            (*SYS, 4, 0): _Entry(const(text("rackval simulator"))),
            (*SYS, 5, 0): _Entry(const(text(name))),
            (*SYS, 6, 0): _Entry(const(text(f"simulated rack, feed {pdu.feed}"))),
            (*SYS, 7, 0): _Entry(const(integer(72))),
        }
        ident = {
            apc.IDENT_NAME: name,
            apc.IDENT_LOCATION: f"feed {pdu.feed}",
            apc.IDENT_HARDWARE_REV: "02",
            apc.IDENT_FIRMWARE_REV: info.firmware,
            apc.IDENT_DATE_OF_MANUFACTURE: "01/15/2024",
            apc.IDENT_MODEL_NUMBER: info.model,
            apc.IDENT_SERIAL_NUMBER: info.serial,
        }
        for column, value in ident.items():
            e[_oid(column, _DEVICE)] = _Entry(const(text(value)))
        for column in (apc.DEVICE_NUM_OUTLETS, apc.DEVICE_NUM_SWITCHED_OUTLETS, apc.DEVICE_NUM_METERED_OUTLETS):
            e[_oid(column, _DEVICE)] = _Entry(const(integer(n)))
        e[_oid(apc.DEVICE_NUM_PHASES, _DEVICE)] = _Entry(const(integer(1)))

        def hundredths_kw(watts: float) -> Any:
            return integer(round(watts / 10.0))

        e[_oid(apc.DEVICE_STATUS_POWER, _DEVICE)] = _Entry(lambda: hundredths_kw(model.pdu_reading_total_w(name)))
        e[_oid(apc.PHASE_STATUS_CURRENT, _PHASE)] = _Entry(
            lambda: integer(round(10 * sum(model.pdu_reading_outlet_a(name, i) for i in outlets)))
        )
        e[_oid(apc.PHASE_STATUS_VOLTAGE, _PHASE)] = _Entry(lambda: integer(round(pdu.voltage_v)))
        e[_oid(apc.PHASE_STATUS_POWER, _PHASE)] = _Entry(lambda: hundredths_kw(model.pdu_reading_total_w(name)))

        def check_command(val: Any) -> None:
            if val.tagSet != rfc1902.Integer32.tagSet:
                raise smi_error.WrongTypeError()
            if int(val) not in (apc.CMD_IMMEDIATE_ON, apc.CMD_IMMEDIATE_OFF, apc.CMD_IMMEDIATE_REBOOT):
                raise smi_error.WrongValueError()

        for i in outlets:
            o = pdu.outlets[i]
            e[_oid(apc.OUTLET_SWITCHED_STATUS_NAME, i)] = _Entry(lambda o=o: text(o.name))
            e[_oid(apc.OUTLET_SWITCHED_STATUS_STATE, i)] = _Entry(
                lambda o=o: integer(apc.STATE_ON if o.on else apc.STATE_OFF)
            )
            e[_oid(apc.OUTLET_SWITCHED_STATUS_COMMAND_PENDING, i)] = _Entry(
                lambda i=i: integer(apc.COMMAND_PENDING if i in self._reboots else apc.COMMAND_NONE_PENDING)
            )
            e[_oid(apc.OUTLET_SWITCHED_CONTROL_COMMAND, i)] = _Entry(
                lambda o=o: integer(apc.CMD_IMMEDIATE_ON if o.on else apc.CMD_IMMEDIATE_OFF),
                check=check_command,
                apply=lambda val, i=i: self._command(i, int(val)),
            )
            e[_oid(apc.OUTLET_METERED_STATUS_NAME, i)] = _Entry(lambda o=o: text(o.name))
            e[_oid(apc.OUTLET_METERED_STATUS_CURRENT, i)] = _Entry(
                lambda i=i: integer(round(10 * model.pdu_reading_outlet_a(name, i)))
            )
            e[_oid(apc.OUTLET_METERED_STATUS_POWER, i)] = _Entry(
                lambda i=i: integer(round(model.pdu_reading_outlet_w(name, i)))
            )
        return e

    def _command(self, outlet: int, command: int) -> None:
        """Apply a validated control command (runs on the agent loop, under model.lock)."""
        pending = self._reboots.pop(outlet, None)
        if pending is not None:
            pending.cancel()
        if command == apc.CMD_IMMEDIATE_ON:
            self.model.set_outlet(self.pdu, outlet, True)
        elif command == apc.CMD_IMMEDIATE_OFF:
            self.model.set_outlet(self.pdu, outlet, False)
        elif command == apc.CMD_IMMEDIATE_REBOOT:
            self.model.set_outlet(self.pdu, outlet, False)

            def power_back() -> None:
                self._reboots.pop(outlet, None)
                self.model.set_outlet(self.pdu, outlet, True)

            self._reboots[outlet] = self._loop.call_later(self._reboot_s, power_back)


def start_pdu_agent(
    model: RackModel,
    pdu: str,
    *,
    host: str = "127.0.0.1",
    community: str,
    write_community: str | None = None,
    v3_user: str | None = None,
    v3_auth_key: str | None = None,
    v3_priv_key: str | None = None,
    reboot_duration_s: float = 5.0,
) -> SnmpAgentServer:
    """Start a simulated APC rPDU2 agent for ``model.pdus[pdu]`` on ``host`` (loopback only).

    ``community`` reads (system group + APC subtree) and cannot write; ``write_community`` also
    writes the outlet control table (pass the same string as ``community`` for one read-write
    community). ``v3_user`` with ``v3_auth_key`` / ``v3_priv_key`` adds an SNMPv3 user,
    SHA-256 + AES-128, authPriv only, that reads and writes like ``write_community``.
    ``reboot_duration_s`` is how long immediateReboot keeps an outlet off (wall time).
    """
    if pdu not in model.pdus:
        raise KeyError(f"no PDU {pdu!r} in the model (have {sorted(model.pdus)})")
    if not ipaddress.ip_address(host).is_loopback:
        raise ValueError(f"the simulator binds loopback addresses only, not {host!r}")
    if not community:
        raise ValueError("community must not be empty")
    v3_parts = (v3_user, v3_auth_key, v3_priv_key)
    if any(v3_parts) and not all(v3_parts):
        raise ValueError("SNMPv3 needs v3_user, v3_auth_key and v3_priv_key together")
    if v3_auth_key is not None and (len(v3_auth_key) < 8 or len(v3_priv_key or "") < 8):
        raise ValueError("SNMPv3 keys must be at least 8 characters")
    server = SnmpAgentServer(
        model,
        pdu,
        host=host,
        community=community,
        write_community=write_community,
        v3_user=v3_user,
        v3_auth_key=v3_auth_key,
        v3_priv_key=v3_priv_key,
        reboot_duration_s=reboot_duration_s,
    )
    server._start()
    return server
