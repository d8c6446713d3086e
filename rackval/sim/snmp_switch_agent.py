"""Simulated switch: a real SNMP agent (pysnmp 7) on 127.0.0.1 serving the standard MIBs from the model.

What it serves, exactly what ``rackval.drivers.switch.snmp_switch.SnmpSwitch`` reads (numeric OIDs from
``rackval.drivers.switch.mibs``), values from ``model.switches[switch]`` at request time:

* SNMPv2-MIB system group (SONiC-style sysDescr, net-snmp Linux sysObjectID as SONiC reports).
* IF-MIB ifNumber and ifTable (ifIndex, ifDescr, ifType ethernetCsmacd 6, ifMtu 9100, ifSpeed,
  ifPhysAddress, ifAdminStatus, ifOperStatus, ifIn/OutOctets (Counter32, low 32 bits),
  ifIn/OutDiscards 0, ifInErrors (Counter32 of the model's in_errors), ifOutErrors 0) and
  ifXTable (ifName, ifHCIn/OutOctets Counter64, ifHighSpeed Mb/s, ifAlias,
  ifCounterDiscontinuityTime 0). ifIndex = ``IF_INDEX_BASE`` + port index (1001, 1002 ...).
* LLDP-MIB local system (chassis MAC, sysName), lldpLocPortTable indexed by lldpLocPortNum = the
  port index, which is deliberately NOT the ifIndex (ID subtype interfaceName(5) = port name,
  PortDesc = alias), and lldpRemTable {TimeMark 0, LocalPortNum, RemIndex 1} for every oper-up
  port with a peer: chassis ID (a MAC derived from the node name), port ID subtype
  interfaceName(5) = the NIC, PortDesc = the NIC, SysName = the node. A miscabled_port fault
  swaps peers in the model, so the neighbours swap here.
* ENTITY-MIB: chassis row 1 (class chassis 3, contained in 0, vendor / model / serial from the
  model's DeviceInfo, software rev = its main firmware, firmware rev = ONIE) and sensor rows 2..
  (class sensor 8, contained in 1); ENTITY-SENSOR-MIB for them: ASIC temperature (celsius,
  units, precision 1), PSU1/PSU2 input power (watts), Fan1..Fan4 (rpm).
  Power = ``BASE_POWER_W`` + ``PORT_POWER_W`` per oper-up port, split over two PSUs; ASIC
  temperature = ambient + ``ASIC_C_PER_W`` x power; fan speed follows the ASIC temperature.
  [U: plausible figures for a 400G ToR, not measured on a device.]

Every principal is read-only (write view matches nothing). sysUpTime is simulator (virtual) time
since the agent started, so counters and uptime advance together on a virtual clock. The sorted
OID index is rebuilt only when the port list or the set of LLDP neighbours changes.
Protocol faults: see ``rackval.sim.snmp_engine``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Hashable
from typing import Any

from rackval.drivers.switch import mibs
from rackval.sim.model import Port, RackModel
from rackval.sim.snmp_engine import SnmpAgentBase, check_start_args
from rackval.sim.snmp_objects import Entry, Oid, oid, subtrees

IF_INDEX_BASE = 1000
BASE_POWER_W = 240.0
PORT_POWER_W = 11.0  # optics + SerDes per active 400G port
ASIC_C_PER_W = 0.09
FANS = 4
SONIC_SYS_OBJECT_ID = "1.3.6.1.4.1.8072.3.2.10"  # net-snmp linux: what SONiC's snmpd reports [S]

_IF_ENTRY = "1.3.6.1.2.1.2.2.1"
_IFX_ENTRY = "1.3.6.1.2.1.31.1.1.1"
_LLDP = "1.0.8802.1.1.2.1"
_ENT = "1.3.6.1.2.1.47.1.1.1.1"
_SENSOR = "1.3.6.1.2.1.99.1.1.1"

READ_SUBTREES = subtrees(
    "1.3.6.1.2.1.1",  # system
    "1.3.6.1.2.1.2",  # interfaces
    "1.3.6.1.2.1.31",  # ifMIB
    "1.3.6.1.2.1.47",  # ENTITY-MIB
    "1.3.6.1.2.1.99",  # ENTITY-SENSOR-MIB
    "1.0.8802.1.1.2",  # LLDP-MIB
)


def stable_mac(*parts: str) -> bytes:
    """A locally administered unicast MAC derived from names (stable across runs)."""
    digest = hashlib.sha256("/".join(parts).encode()).digest()
    return bytes([0x02, *digest[:5]])


def _mac_bytes(text: str) -> bytes:
    return bytes(int(x, 16) for x in text.split(":"))


class SnmpSwitchAgent(SnmpAgentBase):
    """A running simulated switch agent: ``host``, ``port`` (actually bound) and ``stop()``."""

    kind = "switch"
    read_subtrees = READ_SUBTREES
    write_subtrees = ()

    def __init__(self, model: RackModel, switch: str, **kwargs: Any) -> None:
        self.switch = switch
        super().__init__(model, switch, **kwargs)

    # ---- per-request model view ------------------------------------------------------------------
    def _ports(self) -> dict[int, Port]:
        """Port index -> Port, brought up to date once per request (reading fields is then cheap)."""
        return self.memo("ports", lambda: {p.index: p for p in self.model.switches[self.switch].ports})

    def _port(self, index: int) -> Port:
        return self._ports()[index]

    def _topology_key(self) -> Hashable:
        # Through the per-request port view: one model update serves the key and the values.
        return tuple((p.index, p.name, p.oper_up) for p in self._ports().values())

    def power_w(self) -> float:
        up = sum(1 for p in self._ports().values() if p.oper_up)
        return BASE_POWER_W + PORT_POWER_W * up

    def asic_temp_c(self) -> float:
        return self.model.ambient_c + ASIC_C_PER_W * self.power_w()

    def fan_rpm(self, fan: int) -> int:
        rpm = 5200 + 180 * max(self.asic_temp_c() - 30.0, 0.0)
        return int(min(rpm, 21000) * (1 + 0.01 * (fan - 1)))

    # ---- served objects --------------------------------------------------------------------------
    def _build_entries(self) -> dict[Oid, Entry]:
        from pysnmp.proto import rfc1902

        model, name = self.model, self.switch
        sw = model.switches[name]
        integer, text = rfc1902.Integer32, rfc1902.OctetString
        gauge, c32, c64 = rfc1902.Gauge32, rfc1902.Counter32, rfc1902.Counter64
        info = sw.info

        def info_now() -> Any:
            return self.memo("info", lambda: model.switches[name].info)

        def const(value: Any) -> Callable[[], Any]:
            return lambda: value

        e = self.system_entries(
            f"SONiC Software Version: {info.firmware} - HwSku: {info.model} - Distribution: Debian 12.5 - "
            "Kernel: 6.1.0-11-2-amd64",
            SONIC_SYS_OBJECT_ID,
            "simulated rack",
        )
        ports = sorted(sw.ports, key=lambda p: p.index)
        e[oid("1.3.6.1.2.1.2.1.0")] = Entry(const(integer(len(ports))))  # ifNumber

        def counter(index: int, field: str) -> int:
            counters = self.memo(("counters", index), lambda: dict(self._port(index).counters))
            return int(counters[field])

        for p in ports:
            i, ifx = p.index, IF_INDEX_BASE + p.index
            speed_bps = min(p.speed_mbps * 1_000_000, 2**32 - 1)
            mac = stable_mac(name, p.name)
            if_cols: dict[int, Callable[[], Any]] = {
                1: const(integer(ifx)),
                2: const(text(p.name)),
                3: const(integer(6)),  # ethernetCsmacd
                4: const(integer(9100)),
                5: const(gauge(speed_bps)),
                6: const(text(mac)),
                7: lambda i=i: integer(1 if self._port(i).admin_up else 2),
                8: lambda i=i: integer(1 if self._port(i).oper_up else 2),
                10: lambda i=i: c32(counter(i, "in_octets") % 2**32),
                13: const(c32(0)),
                14: lambda i=i: c32(counter(i, "in_errors") % 2**32),
                16: lambda i=i: c32(counter(i, "out_octets") % 2**32),
                19: const(c32(0)),
                20: const(c32(0)),
            }
            for col, fn in if_cols.items():
                e[oid(_IF_ENTRY, col, ifx)] = Entry(fn)
            ifx_cols: dict[int, Callable[[], Any]] = {
                1: const(text(p.name)),
                6: lambda i=i: c64(counter(i, "in_octets")),
                10: lambda i=i: c64(counter(i, "out_octets")),
                15: const(gauge(p.speed_mbps)),
                18: lambda i=i: text(self._port(i).alias),
                19: const(rfc1902.TimeTicks(0)),
            }
            for col, fn in ifx_cols.items():
                e[oid(_IFX_ENTRY, col, ifx)] = Entry(fn)
            # lldpLocPortTable, indexed by lldpLocPortNum = port index (not ifIndex)
            e[oid(mibs.LLDP_LOC_PORT_ID_SUBTYPE.oid, i)] = Entry(const(integer(mibs.PORT_ID_INTERFACE_NAME)))
            e[oid(mibs.LLDP_LOC_PORT_ID.oid, i)] = Entry(const(text(p.name)))
            e[oid(mibs.LLDP_LOC_PORT_DESC.oid, i)] = Entry(lambda i=i: text(self._port(i).alias))
        e[oid(_LLDP, 3, 1, 0)] = Entry(const(integer(mibs.CHASSIS_ID_MAC_ADDRESS)))  # lldpLocChassisIdSubtype
        e[oid(_LLDP, 3, 2, 0)] = Entry(const(text(_mac_bytes(sw.mgmt_mac))))  # lldpLocChassisId
        e[oid(_LLDP, 3, 3, 0)] = Entry(const(text(name)))  # lldpLocSysName

        def peer(index: int) -> tuple[str, str]:
            found = self._port(index).peer
            return found if found is not None else ("", "")

        for p in ports:
            if not p.oper_up or p.peer is None:
                continue
            row = (0, p.index, 1)  # {lldpRemTimeMark, lldpRemLocalPortNum, lldpRemIndex}
            i = p.index
            rem: dict[str, Callable[[], Any]] = {
                mibs.LLDP_REM_CHASSIS_ID_SUBTYPE.oid: const(integer(mibs.CHASSIS_ID_MAC_ADDRESS)),
                mibs.LLDP_REM_CHASSIS_ID.oid: lambda i=i: text(stable_mac("node", peer(i)[0])),
                mibs.LLDP_REM_PORT_ID_SUBTYPE.oid: const(integer(mibs.PORT_ID_INTERFACE_NAME)),
                mibs.LLDP_REM_PORT_ID.oid: lambda i=i: text(peer(i)[1]),
                mibs.LLDP_REM_PORT_DESC.oid: lambda i=i: text(peer(i)[1]),
                mibs.LLDP_REM_SYS_NAME.oid: lambda i=i: text(peer(i)[0]),
            }
            for column, fn in rem.items():
                e[oid(column, *row)] = Entry(fn)

        # ENTITY-MIB: chassis 1, sensors 2.. contained in it
        chassis: dict[str, Callable[[], Any]] = {
            mibs.ENT_PHYSICAL_DESCR.oid: lambda: text(f"{info_now().vendor} {info_now().model} chassis"),
            mibs.ENT_PHYSICAL_CONTAINED_IN.oid: const(integer(0)),
            mibs.ENT_PHYSICAL_CLASS.oid: const(integer(mibs.ENT_CLASS_CHASSIS)),
            mibs.ENT_PHYSICAL_NAME.oid: const(text("Chassis")),
            mibs.ENT_PHYSICAL_FIRMWARE_REV.oid: lambda: text(model.firmware(name).get("ONIE", "")),
            mibs.ENT_PHYSICAL_SOFTWARE_REV.oid: lambda: text(info_now().firmware),
            mibs.ENT_PHYSICAL_SERIAL_NUM.oid: lambda: text(info_now().serial),
            mibs.ENT_PHYSICAL_MFG_NAME.oid: lambda: text(info_now().vendor),
            mibs.ENT_PHYSICAL_MODEL_NAME.oid: lambda: text(info_now().model),
        }
        for column, fn in chassis.items():
            e[oid(column, 1)] = Entry(fn)
        # (name, description, EntitySensorDataType, precision, value in the sensor's units)
        sensors: list[tuple[str, str, int, int, Callable[[], float]]] = [
            ("ASIC temperature", "Switch ASIC die temperature", 8, 1, self.asic_temp_c),
        ]
        sensors += [
            (f"PSU{n} power", f"Power supply {n} input power", 6, 0, lambda: self.power_w() / 2) for n in (1, 2)
        ]
        sensors += [(f"Fan{n}", f"Fan tray {n} speed", 10, 0, lambda n=n: self.fan_rpm(n)) for n in range(1, FANS + 1)]
        for k, (s_name, descr, s_type, precision, fn) in enumerate(sensors, start=2):
            e[oid(mibs.ENT_PHYSICAL_DESCR.oid, k)] = Entry(const(text(descr)))
            e[oid(mibs.ENT_PHYSICAL_CONTAINED_IN.oid, k)] = Entry(const(integer(1)))
            e[oid(mibs.ENT_PHYSICAL_CLASS.oid, k)] = Entry(const(integer(8)))  # sensor(8)
            e[oid(mibs.ENT_PHYSICAL_NAME.oid, k)] = Entry(const(text(s_name)))
            e[oid(mibs.ENT_SENSOR_TYPE.oid, k)] = Entry(const(integer(s_type)))
            e[oid(mibs.ENT_SENSOR_SCALE.oid, k)] = Entry(const(integer(mibs.SENSOR_SCALE_UNITS)))
            e[oid(mibs.ENT_SENSOR_PRECISION.oid, k)] = Entry(const(integer(precision)))
            e[oid(mibs.ENT_SENSOR_VALUE.oid, k)] = Entry(
                lambda fn=fn, precision=precision: integer(round(fn() * 10**precision))
            )
            e[oid(mibs.ENT_SENSOR_OPER_STATUS.oid, k)] = Entry(const(integer(1)))  # ok(1)
        return e


def start_switch_snmp_agent(
    model: RackModel,
    switch: str,
    *,
    host: str = "127.0.0.1",
    community: str,
    v3_user: str | None = None,
    v3_auth_key: str | None = None,
    v3_priv_key: str | None = None,
) -> SnmpSwitchAgent:
    """Start a simulated switch agent for ``model.switches[switch]`` on ``host`` (loopback only).

    ``community`` (v2c) and the optional v3 user (SHA-256 + AES-128, authPriv) read IF-MIB,
    LLDP-MIB, ENTITY-MIB and ENTITY-SENSOR-MIB and the system group; nobody can write.
    """
    if switch not in model.switches:
        raise KeyError(f"no switch {switch!r} in the model (have {sorted(model.switches)})")
    check_start_args(host, community, v3_user, v3_auth_key, v3_priv_key)
    agent = SnmpSwitchAgent(
        model, switch, host=host, community=community, v3_user=v3_user, v3_auth_key=v3_auth_key, v3_priv_key=v3_priv_key
    )
    agent._start()
    return agent
