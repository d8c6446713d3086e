"""The SNMP agent engine shared by the simulated PDU and switch agents (pysnmp 7, own controller).

A simulated device subclasses ``SnmpAgentBase`` and supplies its objects (``_build_entries``, as
``rackval.sim.snmp_objects.Entry`` values),
the subtrees its principals may read and write, and optionally a topology key (when rows come
and go, e.g. LLDP neighbours) and a power predicate (an unpowered PDU answers nothing).

Why it is built this way (see docs/reference/pysnmp-agent.md):
  * Own MIB controller: a sorted OID list + bisect, values computed on demand from the shared
    ``RackModel``. The sorted index is cached and rebuilt only when the device's topology key
    changes, never per request. It replaces the whole MIB of the default context, so the
    engine's own tables (USM keys included) are never served; read views are also restricted
    to the device's subtrees, and read-only principals get a write view matching nothing
    (pysnmp would otherwise let a user without a write view write).
  * Reads check VACM once per request rather than per var-bind: every served OID lies inside
    the read view by construction (checked when the index is built), so one check decides the
    request; writes are checked per var-bind.
  * Protocol faults act per request at the UDP transport, before the engine decodes anything:
    device_silent and an unpowered device drop the datagram, device_slow delays its processing
    with ``call_later`` (the loop keeps serving), auth_failure drops v2c requests (what agents do
    for a wrong community) and makes the v3 user's keys wrong for v3 ones (the client gets a
    wrongDigest report), malformed_reply corrupts the outgoing datagram (truncate / garbage) or
    answers a GET with one var-bind too few (wrong_length). snmp_no_such_object /
    snmp_wrong_type act in the controller on the OIDs under their ``oid_prefix``.
  * The UDP socket is bound before the engine starts (pysnmp loses bind errors otherwise);
    the engine runs on its own asyncio loop in a daemon thread; ``stop()`` joins it.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import ipaddress
import os
import random
import secrets
import socket
import threading
from collections.abc import Callable, Hashable
from typing import Any

from rackval.sim.model import RackModel
from rackval.sim.snmp_fastpath import UsmAgentState, answer_read
from rackval.sim.snmp_objects import SYS, Entry, Oid, RequestPlan, ServedIndex, oid, wrong_type_value

DEAD_SUBTREE = (0, 0)  # a view that matches nothing any agent serves

_VIEW_READ = "rv-read"
_VIEW_WRITE = "rv-write"
_VIEW_NONE = "rv-none"


def snmp_version_of(datagram: bytes) -> int | None:
    """The msgVersion of an SNMP message (0 v1, 1 v2c, 3 v3) from its BER header, or None."""
    if len(datagram) < 5 or datagram[0] != 0x30:
        return None
    pos = 1
    first = datagram[pos]
    pos += 1 + (first & 0x7F if first & 0x80 else 0)
    if pos + 2 >= len(datagram) or datagram[pos] != 0x02 or datagram[pos + 1] != 1:
        return None
    return datagram[pos + 2]


class MibController:
    """pysnmp MIB instrumentation over the agent's cached sorted index (duck-typed controller)."""

    def __init__(self, agent: SnmpAgentBase) -> None:
        from pysnmp.smi import error as smi_error
        from pysnmp.smi import exval

        self._agent = agent
        self._exval = exval
        self._err = smi_error

    def _read_allowed(self, context: dict[str, Any]) -> bool:
        """One VACM check per request (see the module docstring).

        Every principal of an agent has the same read view, and every served OID lies inside it
        (checked when the index is built), so asking VACM about one served object decides
        whether this principal may read at all; per-var-bind checks would only repeat it.
        """
        from pysnmp.proto import rfc1902

        ac = context.get("acFun")
        if ac is None:
            return True
        probe = (rfc1902.ObjectName((*SYS, 1, 0)), rfc1902.Null(""))
        return not ac("read", probe, **{**context, "idx": 0})

    def read_variables(self, *var_binds: Any, **context: Any) -> list[tuple[Any, Any]]:
        agent, plan = self._agent, self._agent.plan
        idx = agent.index
        if not self._read_allowed(context):
            return [(name, self._exval.noSuchObject) for name, _ in var_binds]
        out = []
        with agent.model.lock:
            for i, (name, _val) in enumerate(var_binds):
                key = tuple(name)
                entry = idx.entries.get(key)
                if entry is None or plan.hidden(key):
                    hidden = entry is not None or key[:-1] not in idx.columns
                    out.append((name, self._exval.noSuchObject if hidden else self._exval.noSuchInstance))
                    continue
                out.append((name, self._read(entry, key, name, i, plan)))
        if plan.malformed == "wrong_length" and out:
            out.pop()  # a GET response must carry every requested var-bind (RFC 3416 4.2.1)
        return out

    def read_next_variables(self, *var_binds: Any, **context: Any) -> list[tuple[Any, Any]]:
        from pysnmp.proto import rfc1902

        agent, plan = self._agent, self._agent.plan
        idx = agent.index
        if not self._read_allowed(context):
            return [(name, self._exval.endOfMibView) for name, _ in var_binds]
        keys = idx.keys
        out = []
        with agent.model.lock:
            for i, (name, _val) in enumerate(var_binds):
                pos = bisect.bisect_right(keys, tuple(name))
                while pos < len(keys) and plan.no_such and plan.hidden(keys[pos]):
                    pos += 1
                if pos >= len(keys):
                    out.append((name, self._exval.endOfMibView))
                    continue
                key = keys[pos]
                out.append((rfc1902.ObjectName(key), self._read(idx.entries[key], key, name, i, plan)))
        return out

    def write_variables(self, *var_binds: Any, **context: Any) -> list[tuple[Any, Any]]:
        agent = self._agent
        ac = context.get("acFun")
        plans = []
        for i, (name, val) in enumerate(var_binds):
            if ac is not None and ac("write", (name, val), **{**context, "idx": i}):
                raise self._err.NoAccessError(name=name, idx=i)
            key = tuple(name)
            entry = agent.index.entries.get(key)
            if entry is None or entry.check is None or entry.apply is None or agent.plan.hidden(key):
                raise self._err.NotWritableError(name=name, idx=i)
            try:
                entry.check(val)
            except self._err.MibOperationError as exc:
                exc.update({"name": name, "idx": i})
                raise
            plans.append((entry, val))
        # All var-binds validated: apply them together (SET is atomic per PDU).
        with agent.model.lock:
            for entry, val in plans:
                assert entry.apply is not None
                entry.apply(val)
        return list(var_binds)

    def _read(self, entry: Entry, key: Oid, name: Any, i: int, plan: RequestPlan) -> Any:
        try:
            value = entry.get()
        except Exception as exc:  # a model bug must become genErr, not a dead agent
            raise self._err.GenError(name=name, idx=i) from exc
        if plan.wrong_type and plan.mistyped(key):
            return wrong_type_value(value)
        return value


def _gated_transport_class() -> type:
    """A pysnmp UDP transport whose datagrams pass through the agent's fault gate."""
    from pysnmp.carrier.asyncio.dgram import udp

    class GatedUdpTransport(udp.UdpTransport):  # type: ignore[misc, valid-type]
        agent: SnmpAgentBase

        def datagram_received(self, datagram: bytes, address: Any) -> None:
            plan = self.agent._plan_for(datagram)
            if plan.drop:
                return
            if plan.delay_s > 0:
                self.loop.call_later(plan.delay_s, self._deliver, datagram, address, plan)
            else:
                self.loop.call_soon(self._deliver, datagram, address, plan)

        def _deliver(self, datagram: bytes, address: Any, plan: RequestPlan) -> None:
            if self._callback_function is None:
                return
            try:
                self.agent._begin(plan)
                answer = answer_read(self.agent, datagram) if self.agent.fast_path else None
                if answer is not None:
                    self.agent.fast_answers += 1
                    self.send_message(answer, address)
                else:
                    self._callback_function(self, address, datagram)
            finally:
                self.agent._end()

        def send_message(self, outgoing: bytes, address: Any) -> None:
            mode = self.agent.plan.malformed
            if mode == "truncate":
                outgoing = bytes(outgoing)[: max(len(outgoing) // 2, 1)]
            elif mode == "garbage":
                outgoing = os.urandom(len(outgoing))
            super().send_message(outgoing, address)

    return GatedUdpTransport


def check_start_args(
    host: str, community: str, v3_user: str | None, v3_auth_key: str | None, v3_priv_key: str | None
) -> None:
    """Refuse what a simulator must never do (non-loopback bind) and half-given v3 credentials."""
    if not ipaddress.ip_address(host).is_loopback:
        raise ValueError(f"the simulator binds loopback addresses only, not {host!r}")
    if not community:
        raise ValueError("community must not be empty")
    v3_parts = (v3_user, v3_auth_key, v3_priv_key)
    if any(v3_parts) and not all(v3_parts):
        raise ValueError("SNMPv3 needs v3_user, v3_auth_key and v3_priv_key together")
    if v3_auth_key is not None and (len(v3_auth_key) < 8 or len(v3_priv_key or "") < 8):
        raise ValueError("SNMPv3 keys must be at least 8 characters")


class SnmpAgentBase:
    """A running simulated SNMP agent: ``host``, ``port`` (actually bound) and ``stop()``.

    Subclasses set ``read_subtrees`` / ``write_subtrees`` and implement ``_build_entries``;
    they may override ``_topology_key`` (rebuild the index when it changes) and ``_powered``.
    ``community`` reads; ``write_community`` (may equal ``community``) also writes the write
    subtrees; the v3 user (SHA-256 + AES-128, authPriv) reads, and writes if ``v3_writes``.
    """

    read_subtrees: tuple[Oid, ...] = (SYS,)
    write_subtrees: tuple[Oid, ...] = ()
    kind = "device"

    def __init__(
        self,
        model: RackModel,
        device: str,
        *,
        host: str,
        community: str,
        write_community: str | None = None,
        v3_user: str | None = None,
        v3_auth_key: str | None = None,
        v3_priv_key: str | None = None,
        v3_writes: bool = False,
    ) -> None:
        self.model = model
        self.device = device
        self._community = community
        self._write_community = write_community
        # Communities whose v2c reads the fast path may answer (both principals read everything).
        self.communities = tuple(c for c in (community, write_community) if c)
        self._v3 = (v3_user, v3_auth_key, v3_priv_key) if v3_user else None
        self._v3_writes = v3_writes
        self._v3_wrong = False
        self.usm_state: UsmAgentState | None = None  # the v3 fast path's view of the engine
        self.fast_path = True  # False: every request through pysnmp (tests compare the two)
        self.fast_answers = 0
        self._lock = threading.Lock()
        self._stopped = False
        self._error: BaseException | None = None
        self._ready = threading.Event()
        self._engine: Any = None
        self._memo: dict[Hashable, Any] = {}
        self.plan = RequestPlan()
        self._index_key: Hashable = object()
        self.index = ServedIndex({})
        self._t0 = model.now()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self._sock.bind((host, 0))
        except OSError:
            self._sock.close()
            raise
        self.host, self.port = self._sock.getsockname()[:2]
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=f"snmp-{self.kind}-{device}", daemon=True)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.kind}={self.device!r}, host={self.host!r}, port={self.port})"

    # ---- for subclasses --------------------------------------------------------------------------
    def _build_entries(self) -> dict[Oid, Entry]:
        raise NotImplementedError

    def _topology_key(self) -> Hashable:
        """Changes whenever the set of served rows changes (default: never)."""
        return None

    def _powered(self) -> bool:
        return True

    def memo(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """``compute()`` once per request: several objects of one request share a model reading."""
        try:
            return self._memo[key]
        except KeyError:
            value = self._memo[key] = compute()
            return value

    def uptime_ticks(self) -> int:
        """sysUpTime in hundredths of a second of simulator (virtual) time since the agent started."""
        return int((self.model.now() - self._t0) * 100) % 2**32

    def system_entries(self, descr: str, object_id: str, location: str, services: int = 72) -> dict[Oid, Entry]:
        """SNMPv2-MIB system group."""
        from pysnmp.proto import rfc1902

        text = rfc1902.OctetString
        fixed = {
            1: text(descr),
            2: rfc1902.ObjectIdentifier(object_id),
            4: text("rackval simulator"),
            5: text(self.device),
            6: text(location),
            7: rfc1902.Integer32(services),
        }
        e = {(*SYS, col, 0): Entry(lambda v=v: v) for col, v in fixed.items()}
        e[(*SYS, 3, 0)] = Entry(lambda: rfc1902.TimeTicks(self.uptime_ticks()))
        return e

    # ---- per request (on the agent loop) ---------------------------------------------------------
    def _plan_for(self, datagram: bytes) -> RequestPlan:
        """Decide, from the device's active protocol faults, what happens to this request."""
        with self.model.lock:
            faults = self.model.active_faults(self.device)
            powered = self._powered()
        plan = RequestPlan()
        if not powered:
            plan.drop = True
            return plan
        version = None
        for f in faults:
            kind = f.kind
            if kind == "device_silent":
                plan.drop = True
            elif kind == "device_slow":
                plan.delay_s += float(f.param("delay_s")) + random.uniform(0.0, float(f.param("jitter_s")))
            elif kind == "auth_failure":
                version = snmp_version_of(datagram) if version is None else version
                if version == 3 and self._v3 is not None:
                    plan.v3_wrong_keys = True
                else:
                    plan.drop = True  # agents drop a wrong community silently
            elif kind == "malformed_reply":
                if random.random() < float(f.param("probability")):
                    plan.malformed = str(f.param("mode"))
            elif kind == "snmp_no_such_object":
                plan.no_such += (oid(str(f.param("oid_prefix"))),)
            elif kind == "snmp_wrong_type":
                plan.wrong_type += (oid(str(f.param("oid_prefix"))),)
        return plan

    def _begin(self, plan: RequestPlan) -> None:
        self.plan = plan
        self._memo.clear()
        if plan.v3_wrong_keys != self._v3_wrong:
            self._set_v3_keys(wrong=plan.v3_wrong_keys)
        self.refresh_index()

    def _end(self) -> None:
        self.plan = RequestPlan()
        self._memo.clear()

    def refresh_index(self) -> None:
        """Rebuild the sorted OID index if (and only if) the topology key changed."""
        with self.model.lock:
            key = self._topology_key()
            if key == self._index_key:
                return
            entries = self._build_entries()
        for k in entries:
            if not any(k[: len(s)] == s for s in self.read_subtrees):
                raise ValueError(f"{self.device}: served OID {'.'.join(map(str, k))} is outside the read view")
        self.index = ServedIndex(entries)
        self._index_key = key

    def _set_v3_keys(self, *, wrong: bool) -> None:
        """auth_failure on v3: the user exists but its keys no longer match the client's."""
        from pysnmp.entity import config

        assert self._v3 is not None
        user, auth_key, priv_key = self._v3
        if wrong:
            auth_key, priv_key = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
        config.add_v3_user(
            self._engine, user, config.USM_AUTH_HMAC192_SHA256, auth_key, config.USM_PRIV_CFB128_AES, priv_key
        )
        self._v3_wrong = wrong
        self.usm_state = None if wrong else self._usm_state(user, auth_key, priv_key)

    def _usm_state(self, user: str, auth_key: str, priv_key: str) -> UsmAgentState:
        """The engine's identity and clock as pysnmp keeps them, and the user's localized keys."""
        from rackval.drivers.transport import snmp_usm as usm

        builder = self._engine.get_mib_builder()
        boots, origin = builder.import_symbols("__SNMP-FRAMEWORK-MIB", "snmpEngineBoots", "snmpEngineTime")
        engine_id = bytes(self._engine.snmpEngineID)
        keys = usm.localized_keys(user, "SHA256", auth_key, "AES128", priv_key, engine_id)
        return UsmAgentState(engine_id, int(boots.syntax), float(int(origin.syntax)), keys)

    # ---- lifecycle -------------------------------------------------------------------------------
    def _start(self, timeout_s: float = 10.0) -> None:
        self._thread.start()
        if not self._ready.wait(timeout_s):
            self.stop()
            raise RuntimeError(f"SNMP agent for {self.device} did not start within {timeout_s} s")
        if self._error is not None:
            self.stop()
            raise RuntimeError(f"SNMP agent for {self.device} failed to start: {self._error}") from self._error

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
        self._on_shutdown()
        if self._engine is not None:
            self._engine.close_dispatcher()
        self._loop.stop()

    def _on_shutdown(self) -> None:
        """Cancel the subclass's own timers (runs on the loop)."""

    # ---- engine ----------------------------------------------------------------------------------
    def _build(self) -> None:
        from pysnmp.carrier.asyncio.dgram import udp
        from pysnmp.entity import config, engine
        from pysnmp.entity.rfc3413 import cmdrsp, context

        self.refresh_index()
        eng = engine.SnmpEngine()
        self._engine = eng
        transport = _gated_transport_class()()
        transport.agent = self
        config.add_transport(eng, udp.DOMAIN_NAME, transport.open_server_mode(sock=self._sock))
        for subtree in self.read_subtrees:
            config.add_vacm_view(eng, _VIEW_READ, "included", subtree, b"")
        for subtree in self.write_subtrees or (DEAD_SUBTREE,):
            config.add_vacm_view(eng, _VIEW_WRITE, "included", subtree, b"")
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
            self._set_v3_keys(wrong=False)
            self._grant(eng, 3, self._v3[0], "authPriv", write=self._v3_writes)
        ctx = context.SnmpContext(eng)
        ctx.unregister_context_name(b"")
        ctx.register_context_name(b"", MibController(self))
        cmdrsp.GetCommandResponder(eng, ctx)
        cmdrsp.NextCommandResponder(eng, ctx)
        cmdrsp.BulkCommandResponder(eng, ctx)
        cmdrsp.SetCommandResponder(eng, ctx)

    def _grant(self, eng: Any, security_model: int, security_name: str, level: str, *, write: bool) -> None:
        """VACM: this principal reads the device's subtrees; writes its write subtrees or nothing."""
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
            _VIEW_WRITE if write and self.write_subtrees else _VIEW_NONE,
            _VIEW_NONE,
        )
