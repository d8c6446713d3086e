"""Simulated switched, metered PDU: a real SNMP agent (pysnmp 7) on 127.0.0.1 serving the rack model.

One agent per PDU, speaking one vendor's MIB from the very map its driver reads
(``rackval.drivers.pdu.snmp_pdu_map.SnmpPduMap``; the vendors are those of
``rackval.sim.pdu_vendors``). The agent has no knowledge of any vendor: it serves

* every object the map points the driver at, with the map's encoding: identity (vendor, model,
  serial, firmware of the model's ``DeviceInfo``), outlet count or cord layout, names, state
  codes (``state_on`` / ``state_off``), readings in raw units (value / ``Reading.scale``, times
  10**digits with a served decimal-digits object), inlet and per-phase (pole) tables;
* the outlet command objects (``command_on`` / ``command_off`` and the profile's
  ``command_reboot``): a SET of one of their values switches the outlet on, off, or off for
  ``reboot_duration_s`` (wall time); any other value is wrongValue, a non-INTEGER wrongType; a GET
  reads the profile's ``command_readback`` or else the command matching the present state;
* the further objects of the map's ``AgentProfile`` (constants, text from the unit's identity,
  readings, flags) and its sysDescr / sysObjectID.

Layout of the simulated unit: device index ``first_device_index``, one inlet (input cord 1)
with three phases (poles), outlets 1..N wired round-robin across the phases (cord-local numbers
equal the flat ones). Readings come from the model through the PDU's meter
(``model.pdu_reading_*``, phases ``model.pdu_phase_*``), one reading per request and quantity
shared by every object that shows it; the inlet current is the highest phase current [U:
Raritan's rule for multi-phase inlets as documented for PX3 web UI; not checked against a
device]. The read view is the system group plus the map's vendor subtree (the longest prefix its
objects share); writes reach only the command columns. A PDU whose feed is down is unpowered and
answers nothing. A stuck relay (fault) accepts commands and changes nothing (the model does
that). Protocol faults: see ``rackval.sim.snmp_engine``.
"""

from __future__ import annotations

import asyncio
import string
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rackval.drivers.pdu.snmp_pdu_map import (
    AGENT_CONDITIONS,
    AGENT_QUANTITIES,
    AGENT_TEXT_FIELDS,
    AgentFlag,
    AgentQuantity,
    Oid,
    Reading,
    SnmpPduMap,
)
from rackval.sim import pdu_vendors
from rackval.sim.model import RackModel
from rackval.sim.snmp_engine import SnmpAgentBase, check_start_args
from rackval.sim.snmp_objects import SYS, Entry, oid, subtrees

PHASES = (1, 2, 3)
_INLET = _CORD = 1


@dataclass(frozen=True)
class OutletState:
    """The outlet's state column: ``on`` or ``off`` code."""

    on: int
    off: int


@dataclass(frozen=True)
class OutletControl:
    """A command column: written value -> on | off | cycle; ``readback`` None = the state's command."""

    actions: dict[int, str]
    readback: int | None
    on: int
    off: int


Served = str | int | AgentQuantity | AgentFlag | OutletState | OutletControl


def served_objects(m: SnmpPduMap) -> list[tuple[Oid, Served]]:
    """Every object an agent of map ``m`` serves, as (OID template, what it shows)."""
    agent = m.agent
    if agent is None:
        raise ValueError(f"{m.family}: the map has no agent profile, the simulator cannot serve it")
    out: list[tuple[Oid, Served]] = [(m.ident_model, "{model}"), (m.ident_serial, "{serial}")]
    out += [(m.ident_firmware, "{firmware}"), (m.outlet_name, "{outlet_name}")]
    out.append((m.outlet_state, OutletState(min(m.state_on), min(m.state_off))))
    if m.ident_vendor is not None:
        out.append((m.ident_vendor, "{vendor}"))
    counts: list[tuple[Oid | None, str]] = [(m.outlet_count, "outlet_count")]
    readings: list[tuple[Reading | None, str]] = [
        (m.device_power_w, "total_power_w"),
        (m.outlet_power_w, "outlet_power_w"),
        (m.outlet_current_a, "outlet_current_a"),
    ]
    if m.outlet_cords is not None:
        counts += [(m.outlet_cords.cord_count, "inlet_count"), (m.outlet_cords.cord_outlet_count, "outlet_count")]
    if m.inlets is not None:
        i = m.inlets
        counts += [(i.count, "inlet_count"), (i.pole_count, "phase_count")]
        readings += [(i.power_w, "total_power_w"), (i.voltage_v, "voltage_v"), (i.current_a, "inlet_current_a")]
        readings += [(i.pole_voltage_v, "voltage_v"), (i.pole_current_a, "phase_current_a")]
        readings += [(i.pole_power_w, "phase_power_w")]
    out += [(where, AgentQuantity(name)) for where, name in counts if where is not None]
    out += [(r.oid, AgentQuantity(name, r.scale, r.digits)) for r, name in readings if r is not None]
    commands = [(m.command_on, "on"), (m.command_off, "off")]
    if agent.command_reboot is not None:
        commands.append((agent.command_reboot, "cycle"))
    for column in dict.fromkeys(c.oid for c, _ in commands):
        actions = {c.value: action for c, action in commands if c.oid == column}
        out.append((column, OutletControl(actions, agent.command_readback, m.command_on.value, m.command_off.value)))
    out += [(o.oid, o.value) for o in agent.objects]
    for template, value in out:
        problem = _unknown_name(value)
        if problem:
            raise ValueError(f"{m.family}: {template.label}: {problem}")
    return out


def _unknown_name(value: Served) -> str | None:
    """What in ``value`` the simulator does not know (a quantity, condition or text field)."""
    if isinstance(value, AgentQuantity) and value.name not in AGENT_QUANTITIES:
        return f"unknown quantity {value.name!r} (known: {', '.join(AGENT_QUANTITIES)})"
    if isinstance(value, AgentFlag) and value.condition not in AGENT_CONDITIONS:
        return f"unknown condition {value.condition!r} (known: {', '.join(AGENT_CONDITIONS)})"
    if isinstance(value, str):
        unknown = {f for _, f, _, _ in string.Formatter().parse(value) if f} - set(AGENT_TEXT_FIELDS)
        if unknown:
            return f"unknown text field(s) {', '.join(sorted(unknown))} (known: {', '.join(AGENT_TEXT_FIELDS)})"
    return None


def _vendor_prefix(templates: list[Oid]) -> str:
    """The longest whole-arc prefix the templates' numeric parts share: the agent's vendor subtree."""
    arcs = [t.template.split("{", 1)[0].strip(".").split(".") for t in templates]
    prefix: list[str] = []
    for parts in zip(*arcs, strict=False):
        if len(set(parts)) != 1:
            break
        prefix.append(parts[0])
    return ".".join(prefix)


def _column(template: Oid) -> str:
    return template.template.split("{", 1)[0].rstrip(".")


class SnmpAgentServer(SnmpAgentBase):
    """A running simulated PDU agent: ``host``, ``port`` (actually bound) and ``stop()``."""

    kind = "pdu"

    def __init__(
        self, model: RackModel, pdu: str, *, vendor: pdu_vendors.SnmpPduVendor, reboot_duration_s: float, **kwargs: Any
    ) -> None:
        self.pdu = pdu
        self.vendor = vendor
        self.map = vendor.map
        self._served = served_objects(vendor.map)
        self.read_subtrees = (SYS, *subtrees(_vendor_prefix([t for t, _ in self._served])))
        self.write_subtrees = subtrees(*[_column(t) for t, v in self._served if isinstance(v, OutletControl)])
        self._reboot_s = reboot_duration_s
        self._reboots: dict[int, asyncio.TimerHandle] = {}
        self._feed = model.pdus[pdu].feed
        super().__init__(model, pdu, v3_writes=True, **kwargs)
        self._readers: dict[str, Callable[[dict[str, int]], float]] = {
            "total_power_w": lambda ix: model.pdu_reading_total_w(pdu),
            "voltage_v": lambda ix: self._meter_read(model.pdus[pdu].voltage_v) if self._powered() else 0.0,
            "phase_power_w": lambda ix: self._meter_read(model.pdu_phase_power_w(pdu, ix["pole"])),
            "phase_current_a": lambda ix: self._meter_read(model.pdu_phase_current_a(pdu, ix["pole"])),
            "inlet_current_a": lambda ix: max(self._reading("phase_current_a", {"pole": p}) for p in PHASES),
            "outlet_power_w": lambda ix: model.pdu_reading_outlet_w(pdu, ix["outlet"]),
            "outlet_current_a": lambda ix: model.pdu_reading_outlet_a(pdu, ix["outlet"]),
            "outlet_count": lambda ix: len(model.pdus[pdu].outlets),
            "inlet_count": lambda ix: 1,
            "phase_count": lambda ix: len(PHASES),
            "phase": lambda ix: ix["pole"],
        }
        self._conditions: dict[str, Callable[[dict[str, int]], bool]] = {
            "reboot_pending": lambda ix: ix["outlet"] in self._reboots,
        }

    def _powered(self) -> bool:
        return self.model.feed_up(self._feed)

    def _on_shutdown(self) -> None:
        for handle in self._reboots.values():
            handle.cancel()
        self._reboots.clear()

    def _meter_read(self, value: float) -> float:
        return self.model.pdus[self.pdu].meter.read(value)

    def _reading(self, name: str, ix: dict[str, int]) -> float:
        """One reading per request, quantity and outlet / phase, shared by the objects showing it."""
        where = ix.get("outlet") if name.startswith("outlet") else ix.get("pole") if name.startswith("phase") else None
        key = (name, where)
        return float(self.memo(key, lambda: self._readers[name](ix)))

    # ---- served objects --------------------------------------------------------------------------
    def _indices(self, template: Oid) -> list[dict[str, int]]:
        """The index values a template is served at: per outlet, per phase, or once."""
        fields = {f for _, f, _, _ in string.Formatter().parse(template.template) if f}
        if "outlet" in fields:
            return [{"outlet": i, "cord": _CORD} for i in sorted(self.model.pdus[self.pdu].outlets)]
        if "pole" in fields:
            return [{"inlet": _INLET, "pole": p} for p in PHASES]
        return [{"inlet": _INLET, "cord": _CORD}]

    def _build_entries(self) -> dict[Oid, Entry]:
        m, agent, pdu = self.map, self.vendor.agent, self.model.pdus[self.pdu]
        e = self.system_entries(
            agent.sys_descr.format(**self._fields({})), agent.sys_object_id, f"simulated rack, feed {pdu.feed}"
        )
        dev = m.first_device_index
        for template, value in self._served:
            for ix in self._indices(template):
                e[oid(template.at(dev=dev, **ix)[0])] = self._entry(value, ix)
                if isinstance(value, AgentQuantity) and value.digits is not None:
                    digits = agent.decimal_digits.get(AGENT_QUANTITIES[value.name][0], 0)
                    e[oid(value.digits.at(dev=dev, **ix)[0])] = self._entry(digits, ix)
        return e

    def _fields(self, ix: dict[str, int]) -> dict[str, str]:
        pdu = self.model.pdus[self.pdu]
        info = pdu.info
        fields = {"name": self.pdu, "feed": pdu.feed, "vendor": info.vendor, "model": info.model,
                  "serial": info.serial, "firmware": info.firmware,
                  "firmware_digits": "".join(c for c in info.firmware if c.isdigit())}  # fmt: skip
        if "outlet" in ix:
            fields["outlet_name"] = pdu.outlets[ix["outlet"]].name
        return fields

    def _entry(self, value: Served, ix: dict[str, int]) -> Entry:
        from pysnmp.proto import rfc1902

        integer = rfc1902.Integer32
        if isinstance(value, str):
            return Entry(lambda: rfc1902.OctetString(value.format(**self._fields(ix))))
        if isinstance(value, int):
            return Entry(lambda: integer(value))
        if isinstance(value, AgentQuantity):
            return Entry(lambda: self._number(value, ix))
        if isinstance(value, AgentFlag):
            holds = self._conditions[value.condition]
            return Entry(lambda: integer(value.true if holds(ix) else value.false))
        outlet = self.model.pdus[self.pdu].outlets[ix["outlet"]]
        if isinstance(value, OutletState):
            return Entry(lambda: integer(value.on if outlet.on else value.off))
        return self._control_entry(value, ix["outlet"], outlet)

    def _number(self, q: AgentQuantity, ix: dict[str, int]) -> Any:
        """A quantity in the map's raw units and ASN.1 type (readings Unsigned32 if the profile says)."""
        from pysnmp.proto import rfc1902

        unit = AGENT_QUANTITIES[q.name][0]
        if not unit:
            return rfc1902.Integer32(round(self._readers[q.name](ix)))
        digits = self.vendor.agent.decimal_digits.get(unit, 0) if q.digits is not None else 0
        raw = round(self._reading(q.name, ix) * (10**digits / q.scale))
        if self.vendor.agent.unsigned:
            return rfc1902.Unsigned32(max(raw, 0))
        return rfc1902.Integer32(raw)

    def _control_entry(self, c: OutletControl, index: int, outlet: Any) -> Entry:
        from pysnmp.proto import rfc1902
        from pysnmp.smi import error as smi_error

        def check(val: Any) -> None:
            if val.tagSet != rfc1902.Integer32.tagSet:
                raise smi_error.WrongTypeError()
            if int(val) not in c.actions:
                raise smi_error.WrongValueError()

        def read() -> Any:
            if c.readback is not None:
                return rfc1902.Integer32(c.readback)
            return rfc1902.Integer32(c.on if outlet.on else c.off)

        return Entry(read, check=check, apply=lambda val: self._switch(index, c.actions[int(val)]))

    def _switch(self, outlet: int, action: str) -> None:
        """Apply a validated on / off / cycle command (runs on the agent loop, under model.lock)."""
        pending = self._reboots.pop(outlet, None)
        if pending is not None:
            pending.cancel()
        if action in ("on", "off"):
            self.model.set_outlet(self.pdu, outlet, action == "on")
            return
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
    mib: str = "apc",
) -> SnmpAgentServer:
    """Start a simulated PDU agent for ``model.pdus[pdu]`` on ``host`` (loopback only).

    ``mib``: which vendor's MIB to speak: a PDU make of ``rackval.sim.pdu_vendors`` ("apc",
    default, "raritan", "servertech", "eaton" ... or a driver name such as "raritan-pdu2").
    ``community`` reads (system group + the vendor subtree) and cannot write; ``write_community``
    also writes the outlet control objects (pass the same string as ``community`` for one
    read-write community). ``v3_user`` with ``v3_auth_key`` / ``v3_priv_key`` adds an SNMPv3
    user, SHA-256 + AES-128, authPriv only, that reads and writes like ``write_community``.
    ``reboot_duration_s`` is how long a reboot / cycle command keeps an outlet off (wall time).
    """
    if pdu not in model.pdus:
        raise KeyError(f"no PDU {pdu!r} in the model (have {sorted(model.pdus)})")
    try:
        vendor = pdu_vendors.vendor(mib)
    except ValueError as exc:
        raise ValueError(f"mib must name a PDU make the simulator serves: {exc}") from None
    check_start_args(host, community, v3_user, v3_auth_key, v3_priv_key)
    server = SnmpAgentServer(
        model,
        pdu,
        vendor=vendor,
        reboot_duration_s=reboot_duration_s,
        host=host,
        community=community,
        write_community=write_community,
        v3_user=v3_user,
        v3_auth_key=v3_auth_key,
        v3_priv_key=v3_priv_key,
    )
    server._start()
    return server


__all__ = ["SnmpAgentServer", "served_objects", "start_pdu_agent"]
