"""Simulated switched, metered PDU: a real SNMP agent (pysnmp 7) on 127.0.0.1 serving the rack model.

One agent per PDU, speaking one vendor MIB (``mib=``), with numeric OIDs from the client maps so
the drivers read exactly what they expect:

``"apc"`` (default), PowerNet-MIB rPDU2 (``rackval.drivers.pdu.apc``; device index 1, flat outlets):
  * rPDU2IdentTable (name, location, hardware/firmware revision, manufacture date, model,
    serial), rPDU2DeviceProperties (outlet counts, 3 phases), rPDU2DeviceStatusPower
    (hundredths of kW).
  * rPDU2PhaseStatus per phase 1..3 (outlets are wired round-robin across phases in the model):
    module, number, load state, current (tenths of A), voltage (V), power (hundredths of kW).
  * rPDU2OutletSwitchedStatus name / state (off 1, on 2) / command pending,
    rPDU2OutletSwitchedControlCommand (GET: 1 = on, 2 = off, the MIB's opposite polarity;
    SET immediateOn 1 / immediateOff 2 / immediateReboot 3, anything else -> wrongValue),
    rPDU2OutletMeteredStatus name / current (tenths of A) / power (W).

``"raritan"``, PDU2-MIB (``rackval.drivers.pdu.raritan``; pduId 1, one inlet with 3 poles = phases):
  * pduNamePlate manufacturer / model / serial, boardFirmwareVersion (main controller),
    inletCount, outletCount, inletPoleCount, outletName.
  * switchingOperation (GET: on 1 / off 0; SET off 0, on 1, cycle 2) and outletSwitchingState
    (on 7, off 8).
  * measurementsOutletSensorValue rmsCurrent / rmsVoltage / activePower, measurementsInlet(Pole)
    SensorValue rmsCurrent / rmsVoltage / activePower, all Unsigned32 with their
    *SensorDecimalDigits (current 3, voltage 1, power 0): the driver must scale.
    The inlet's rmsCurrent is the highest pole current [U: Raritan's rule for multi-phase
    inlets as documented for PX3 web UI; not checked against a device].

``"servertech"``, Sentry4-MIB (``rackval.drivers.pdu.servertech``; unit 1, one input cord with 3 phases,
outlets {unit, cord 1, outlet}):
  * st4SystemProductName / FirmwareVersion, st4Unit name / serial / model / input cord count,
    st4InputCord phase count / outlet count / active power (W).
  * st4Phase voltage (tenths of V) / current (hundredths of A) / active power (W) per phase.
  * st4Outlet name, state (on 1, off 2), current (hundredths of A), voltage (tenths of V),
    active power (W); st4OutletControlAction (GET none 0; SET on 1, off 2, reboot 3).

Values come from the model through the PDU's meter (``model.pdu_reading_*``, phases
``model.pdu_phase_*``); identity is the model's ``DeviceInfo`` as is (set the model's vendor and
model to match the MIB you serve). A PDU whose feed is down (``model.feed_up(pdu.feed)`` false) is
unpowered and answers nothing. A stuck relay (fault) accepts commands and changes nothing (the
model does that). Protocol faults: see ``rackval.sim.snmp_engine``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from rackval.drivers.pdu import apc, raritan, servertech
from rackval.sim.model import RackModel
from rackval.sim.snmp_engine import SnmpAgentBase, check_start_args
from rackval.sim.snmp_objects import SYS, Entry, Oid, oid, subtrees

MIBS = ("apc", "raritan", "servertech")
_DEVICE = 1  # rPDU2 device index / Raritan pduId
_PHASES = (1, 2, 3)
_INLET = 1
# Raritan decimal digits per sensor type (value = raw / 10**digits)
_RARITAN_DIGITS = {raritan.RMS_CURRENT: 3, raritan.RMS_VOLTAGE: 1, raritan.ACTIVE_POWER: 0}


class SnmpAgentServer(SnmpAgentBase):
    """A running simulated PDU agent: ``host``, ``port`` (actually bound) and ``stop()``."""

    kind = "pdu"

    def __init__(self, model: RackModel, pdu: str, *, mib: str, reboot_duration_s: float, **kwargs: Any) -> None:
        self.pdu = pdu
        self.mib = mib
        if mib == "apc":
            self.read_subtrees = subtrees("1.3.6.1.2.1.1", apc.APC_ENTERPRISE)
            self.write_subtrees = subtrees(apc.OUTLET_SWITCHED_CONTROL_TABLE)
        elif mib == "raritan":
            self.read_subtrees = subtrees("1.3.6.1.2.1.1", raritan.PDU2)
            self.write_subtrees = subtrees(raritan.SWITCHING_OPERATION)
        else:
            self.read_subtrees = subtrees("1.3.6.1.2.1.1", servertech.ST4)
            self.write_subtrees = subtrees(servertech.OUTLET_CONTROL_ACTION)
        self._reboot_s = reboot_duration_s
        self._reboots: dict[int, asyncio.TimerHandle] = {}
        self._feed = model.pdus[pdu].feed
        super().__init__(model, pdu, v3_writes=True, **kwargs)

    def _powered(self) -> bool:
        return self.model.feed_up(self._feed)

    def _on_shutdown(self) -> None:
        for handle in self._reboots.values():
            handle.cancel()
        self._reboots.clear()

    # ---- served objects --------------------------------------------------------------------------
    def _build_entries(self) -> dict[Oid, Entry]:
        return {"apc": self._apc_entries, "raritan": self._raritan_entries, "servertech": self._sentry4_entries}[
            self.mib
        ]()

    def _reading(self, what: str, *args: int) -> float:
        """One meter reading per request and object kind, shared by the objects that show it."""
        model, name = self.model, self.pdu
        fns: dict[str, Callable[..., float]] = {
            "outlet_w": lambda i: model.pdu_reading_outlet_w(name, i),
            "outlet_a": lambda i: model.pdu_reading_outlet_a(name, i),
            "total_w": lambda: model.pdu_reading_total_w(name),
            "phase_w": lambda p: model.pdus[name].meter.read(model.pdu_phase_power_w(name, p)),
            "phase_a": lambda p: model.pdus[name].meter.read(model.pdu_phase_current_a(name, p)),
            "voltage": lambda: model.pdus[name].meter.read(model.pdus[name].voltage_v) if self._powered() else 0.0,
        }
        return float(self.memo((what, *args), lambda: fns[what](*args)))

    def _apc_entries(self) -> dict[Oid, Entry]:
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
        e = self.system_entries(sys_descr, apc.SYS_OBJECT_ID_RPDU2, f"simulated rack, feed {pdu.feed}")

        def info_now() -> Any:
            return model.pdus[name].info

        ident: dict[str, Callable[[], str]] = {
            apc.IDENT_NAME: lambda: name,
            apc.IDENT_LOCATION: lambda: f"feed {pdu.feed}",
            apc.IDENT_HARDWARE_REV: lambda: "02",
            apc.IDENT_FIRMWARE_REV: lambda: info_now().firmware,
            apc.IDENT_DATE_OF_MANUFACTURE: lambda: "01/15/2024",
            apc.IDENT_MODEL_NUMBER: lambda: info_now().model,
            apc.IDENT_SERIAL_NUMBER: lambda: info_now().serial,
        }
        for column, fn in ident.items():
            e[oid(column, _DEVICE)] = Entry(lambda fn=fn: text(fn()))
        for column in (apc.DEVICE_NUM_OUTLETS, apc.DEVICE_NUM_SWITCHED_OUTLETS, apc.DEVICE_NUM_METERED_OUTLETS):
            e[oid(column, _DEVICE)] = Entry(const(integer(n)))
        e[oid(apc.DEVICE_NUM_PHASES, _DEVICE)] = Entry(const(integer(len(_PHASES))))

        def hundredths_kw(watts: float) -> Any:
            return integer(round(watts / 10.0))

        e[oid(apc.DEVICE_STATUS_POWER, _DEVICE)] = Entry(lambda: hundredths_kw(self._reading("total_w")))
        phase_entry = apc.PHASE_STATUS_CURRENT.rsplit(".", 1)[0]
        for p in _PHASES:
            e[oid(phase_entry, 2, p)] = Entry(const(integer(_DEVICE)))  # rPDU2PhaseStatusModule
            e[oid(phase_entry, 3, p)] = Entry(const(integer(p)))  # rPDU2PhaseStatusNumber
            e[oid(phase_entry, 4, p)] = Entry(const(integer(2)))  # rPDU2PhaseStatusLoadState normal(2)
            e[oid(apc.PHASE_STATUS_CURRENT, p)] = Entry(lambda p=p: integer(round(10 * self._reading("phase_a", p))))
            e[oid(apc.PHASE_STATUS_VOLTAGE, p)] = Entry(lambda: integer(round(self._reading("voltage"))))
            e[oid(apc.PHASE_STATUS_POWER, p)] = Entry(lambda p=p: hundredths_kw(self._reading("phase_w", p)))

        def check_command(val: Any) -> None:
            if val.tagSet != rfc1902.Integer32.tagSet:
                raise smi_error.WrongTypeError()
            if int(val) not in (apc.CMD_IMMEDIATE_ON, apc.CMD_IMMEDIATE_OFF, apc.CMD_IMMEDIATE_REBOOT):
                raise smi_error.WrongValueError()

        for i in outlets:
            o = pdu.outlets[i]
            e[oid(apc.OUTLET_SWITCHED_STATUS_NAME, i)] = Entry(lambda o=o: text(o.name))
            e[oid(apc.OUTLET_SWITCHED_STATUS_STATE, i)] = Entry(
                lambda o=o: integer(apc.STATE_ON if o.on else apc.STATE_OFF)
            )
            e[oid(apc.OUTLET_SWITCHED_STATUS_COMMAND_PENDING, i)] = Entry(
                lambda i=i: integer(apc.COMMAND_PENDING if i in self._reboots else apc.COMMAND_NONE_PENDING)
            )
            e[oid(apc.OUTLET_SWITCHED_CONTROL_COMMAND, i)] = Entry(
                lambda o=o: integer(apc.CMD_IMMEDIATE_ON if o.on else apc.CMD_IMMEDIATE_OFF),
                check=check_command,
                apply=lambda val, i=i: self._switch(i, {1: "on", 2: "off", 3: "cycle"}[int(val)]),
            )
            e[oid(apc.OUTLET_METERED_STATUS_NAME, i)] = Entry(lambda o=o: text(o.name))
            e[oid(apc.OUTLET_METERED_STATUS_CURRENT, i)] = Entry(
                lambda i=i: integer(round(10 * self._reading("outlet_a", i)))
            )
            e[oid(apc.OUTLET_METERED_STATUS_POWER, i)] = Entry(lambda i=i: integer(round(self._reading("outlet_w", i))))
        return e

    def _raritan_entries(self) -> dict[Oid, Entry]:
        from pysnmp.proto import rfc1902
        from pysnmp.smi import error as smi_error

        model, name = self.model, self.pdu
        pdu = model.pdus[name]
        outlets = sorted(pdu.outlets)
        integer, text, unsigned = rfc1902.Integer32, rfc1902.OctetString, rfc1902.Unsigned32
        info = pdu.info
        # Raritan-style sysDescr [U: modelled on PX3 firmware 4.x, not copied from a device]
        e = self.system_entries(
            f"PX3 {info.firmware} (Raritan PDU2, simulated {info.model})",
            "1.3.6.1.4.1.13742.6",
            f"simulated rack, feed {pdu.feed}",
        )

        def info_now() -> Any:
            return model.pdus[name].info

        d = _DEVICE
        e[oid(raritan.NAMEPLATE_MANUFACTURER, d)] = Entry(lambda: text(info_now().vendor))
        e[oid(raritan.NAMEPLATE_MODEL, d)] = Entry(lambda: text(info_now().model))
        e[oid(raritan.NAMEPLATE_SERIAL, d)] = Entry(lambda: text(info_now().serial))
        e[oid(raritan.BOARD_FIRMWARE_VERSION, d, raritan.MAIN_CONTROLLER, 1)] = Entry(lambda: text(info_now().firmware))
        e[oid(raritan.INLET_COUNT, d)] = Entry(lambda: integer(1))
        n_outlets = len(outlets)
        e[oid(raritan.OUTLET_COUNT, d)] = Entry(lambda: integer(n_outlets))
        e[oid(raritan.INLET_POLE_COUNT, d, _INLET)] = Entry(lambda: integer(len(_PHASES)))

        def scaled(value: float, sensor: int) -> Any:
            return unsigned(max(round(value * 10 ** _RARITAN_DIGITS[sensor]), 0))

        inlet_fns: dict[int, Callable[[], float]] = {
            raritan.RMS_CURRENT: lambda: max(self._reading("phase_a", p) for p in _PHASES),
            raritan.RMS_VOLTAGE: lambda: self._reading("voltage"),
            raritan.ACTIVE_POWER: lambda: self._reading("total_w"),
        }
        for sensor, digits in _RARITAN_DIGITS.items():
            e[oid(raritan.INLET_SENSOR_DECIMAL_DIGITS, d, _INLET, sensor)] = Entry(lambda v=digits: integer(v))
            fn = inlet_fns[sensor]
            e[oid(raritan.INLET_SENSOR_VALUE, d, _INLET, sensor)] = Entry(lambda fn=fn, s=sensor: scaled(fn(), s))
            for p in _PHASES:
                e[oid(raritan.INLET_POLE_SENSOR_DECIMAL_DIGITS, d, _INLET, p, sensor)] = Entry(
                    lambda v=digits: integer(v)
                )
                pole_fn: Callable[[], float] = {
                    raritan.RMS_CURRENT: lambda p=p: self._reading("phase_a", p),
                    raritan.RMS_VOLTAGE: lambda: self._reading("voltage"),
                    raritan.ACTIVE_POWER: lambda p=p: self._reading("phase_w", p),
                }[sensor]
                e[oid(raritan.INLET_POLE_SENSOR_VALUE, d, _INLET, p, sensor)] = Entry(
                    lambda fn=pole_fn, s=sensor: scaled(fn(), s)
                )

        def check_operation(val: Any) -> None:
            if val.tagSet != rfc1902.Integer32.tagSet:
                raise smi_error.WrongTypeError()
            if int(val) not in (raritan.OP_OFF, raritan.OP_ON, raritan.OP_CYCLE):
                raise smi_error.WrongValueError()

        operations = {raritan.OP_OFF: "off", raritan.OP_ON: "on", raritan.OP_CYCLE: "cycle"}
        for i in outlets:
            o = pdu.outlets[i]
            e[oid(raritan.OUTLET_NAME, d, i)] = Entry(lambda o=o: text(o.name))
            e[oid(raritan.SWITCHING_OPERATION, d, i)] = Entry(
                lambda o=o: integer(raritan.OP_ON if o.on else raritan.OP_OFF),
                check=check_operation,
                apply=lambda val, i=i: self._switch(i, operations[int(val)]),
            )
            e[oid(raritan.OUTLET_SWITCHING_STATE, d, i)] = Entry(
                lambda o=o: integer(raritan.STATE_ON if o.on else raritan.STATE_OFF)
            )
            outlet_fns: dict[int, Callable[[], float]] = {
                raritan.RMS_CURRENT: lambda i=i: self._reading("outlet_a", i),
                raritan.RMS_VOLTAGE: lambda: self._reading("voltage"),
                raritan.ACTIVE_POWER: lambda i=i: self._reading("outlet_w", i),
            }
            for sensor, digits in _RARITAN_DIGITS.items():
                e[oid(raritan.OUTLET_SENSOR_DECIMAL_DIGITS, d, i, sensor)] = Entry(lambda v=digits: integer(v))
                fn = outlet_fns[sensor]
                e[oid(raritan.OUTLET_SENSOR_VALUE, d, i, sensor)] = Entry(lambda fn=fn, s=sensor: scaled(fn(), s))
        return e

    def _sentry4_entries(self) -> dict[Oid, Entry]:
        from pysnmp.proto import rfc1902
        from pysnmp.smi import error as smi_error

        st = servertech
        model, name = self.model, self.pdu
        pdu = model.pdus[name]
        outlets = sorted(pdu.outlets)
        integer, text = rfc1902.Integer32, rfc1902.OctetString
        info = pdu.info
        # Sentry4-style sysDescr [U: modelled on PRO2 firmware 8.x, not copied from a device]
        e = self.system_entries(
            f"Sentry Switched PDU, firmware {info.firmware} (simulated {info.model})",
            "1.3.6.1.4.1.1718.4",
            f"simulated rack, feed {pdu.feed}",
        )

        def info_now() -> Any:
            return model.pdus[name].info

        unit, cord = _DEVICE, 1
        n_outlets = len(outlets)
        e[oid(st.ST4, 1, 1, 1, 0)] = Entry(lambda: text(f"Sentry {info_now().model}"))  # st4SystemProductName
        e[oid(st.SYSTEM_FIRMWARE_VERSION)] = Entry(lambda: text(info_now().firmware))
        e[oid(st.UNIT_NAME, unit)] = Entry(lambda: text(name))
        e[oid(st.UNIT_PRODUCT_SN, unit)] = Entry(lambda: text(info_now().serial))
        e[oid(st.UNIT_MODEL, unit)] = Entry(lambda: text(info_now().model))
        e[oid(st.UNIT_INPUT_CORD_COUNT, unit)] = Entry(lambda: integer(1))
        e[oid(st.CORD_PHASE_COUNT, unit, cord)] = Entry(lambda: integer(len(_PHASES)))
        e[oid(st.CORD_OUTLET_COUNT, unit, cord)] = Entry(lambda: integer(n_outlets))
        e[oid(st.CORD_ACTIVE_POWER, unit, cord)] = Entry(lambda: integer(round(self._reading("total_w"))))
        for p in _PHASES:
            e[oid(st.PHASE_VOLTAGE, unit, cord, p)] = Entry(lambda: integer(round(10 * self._reading("voltage"))))
            e[oid(st.PHASE_CURRENT, unit, cord, p)] = Entry(
                lambda p=p: integer(round(100 * self._reading("phase_a", p)))
            )
            e[oid(st.PHASE_ACTIVE_POWER, unit, cord, p)] = Entry(
                lambda p=p: integer(round(self._reading("phase_w", p)))
            )

        def check_action(val: Any) -> None:
            if val.tagSet != rfc1902.Integer32.tagSet:
                raise smi_error.WrongTypeError()
            if int(val) not in (st.ACTION_ON, st.ACTION_OFF, st.ACTION_REBOOT):
                raise smi_error.WrongValueError()

        actions = {st.ACTION_ON: "on", st.ACTION_OFF: "off", st.ACTION_REBOOT: "cycle"}
        for i in outlets:
            o = pdu.outlets[i]
            at = (unit, cord, i)  # one input cord: cord-local outlet number = flat outlet number
            e[oid(st.OUTLET_NAME, *at)] = Entry(lambda o=o: text(o.name))
            e[oid(st.OUTLET_STATE, *at)] = Entry(lambda o=o: integer(st.STATE_ON if o.on else st.STATE_OFF))
            e[oid(st.OUTLET_CURRENT, *at)] = Entry(lambda i=i: integer(round(100 * self._reading("outlet_a", i))))
            e[oid(st.OUTLET_VOLTAGE, *at)] = Entry(lambda: integer(round(10 * self._reading("voltage"))))
            e[oid(st.OUTLET_ACTIVE_POWER, *at)] = Entry(lambda i=i: integer(round(self._reading("outlet_w", i))))
            e[oid(st.OUTLET_CONTROL_ACTION, *at)] = Entry(
                lambda: integer(st.ACTION_NONE),
                check=check_action,
                apply=lambda val, i=i: self._switch(i, actions[int(val)]),
            )
        return e

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

    ``mib``: "apc" (PowerNet-MIB rPDU2, default), "raritan" (PDU2-MIB) or "servertech"
    (Sentry4-MIB).
    ``community`` reads (system group + the vendor subtree) and cannot write; ``write_community``
    also writes the outlet control objects (pass the same string as ``community`` for one
    read-write community). ``v3_user`` with ``v3_auth_key`` / ``v3_priv_key`` adds an SNMPv3
    user, SHA-256 + AES-128, authPriv only, that reads and writes like ``write_community``.
    ``reboot_duration_s`` is how long a reboot / cycle command keeps an outlet off (wall time).
    """
    if pdu not in model.pdus:
        raise KeyError(f"no PDU {pdu!r} in the model (have {sorted(model.pdus)})")
    if mib not in MIBS:
        raise ValueError(f"mib must be one of {MIBS}, got {mib!r}")
    check_start_args(host, community, v3_user, v3_auth_key, v3_priv_key)
    server = SnmpAgentServer(
        model,
        pdu,
        mib=mib,
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


__all__ = ["MIBS", "SYS", "SnmpAgentServer", "start_pdu_agent"]
