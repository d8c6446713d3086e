"""Any switch that speaks the standard MIBs: identity, ports, LLDP, counters and sensors over SNMP.

Every vendor implements IF-MIB, and most implement LLDP-MIB, ENTITY-MIB and ENTITY-SENSOR-MIB;
reading those gives one driver for switches we have no CLI driver for (and a cross-check for
those we do). The OIDs are data in ``rackval.drivers.switch.mibs``; reads are column walks (GETBULK)
with numeric OIDs, never MIB lookups.

Two things here are easy to get wrong and are the reason this module is more than a few walks:

* LLDP's local port number (lldpRemLocalPortNum) is *not* necessarily an ifIndex. It is mapped
  through lldpLocPortTable (lldpLocPortIdSubtype / lldpLocPortId / lldpLocPortDesc) to a name.
* Counters are only meaningful as differences. ``counters()`` reports, with the raw values,
  what ``rackval.drivers.capabilities.CounterTracker`` needs to turn two polls into deltas: the
  counters' widths (Counter32/Counter64 wrap), ifCounterDiscontinuityTime and the agent's uptime
  (a changed one is a reset rather than a huge or negative growth).

What an agent lacks is absent, not an error: a column it does not serve is None / "" in the rows
(speed, alias, counters, sensor values, identity fields), ifDescr stands in for a missing ifName,
the 32-bit octet counters for missing ifHC ones. ``lldp_neighbors()`` tells "no neighbours" (an
empty list) from "LLDP-MIB not served" (``NotAvailable``); ``sensors()`` is empty without
ENTITY-SENSOR-MIB.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal

from rackval.core.errors import DeviceError, DeviceProtocolError, NotAvailable, protocol_errors
from rackval.drivers.capabilities import (
    Device,
    Identity,
    LldpNeighbor,
    NetSwitch,
    PortCounters,
    PortCounterSource,
    PortStatus,
    SensorReading,
    Sensors,
)
from rackval.drivers.config import DeviceConfig
from rackval.drivers.options import SnmpSwitchOptions, parse_options
from rackval.drivers.switch import mibs
from rackval.drivers.switch.mibs import MibObject
from rackval.drivers.transport.snmp import SnmpTransport, octet_text


# ---- value helpers -------------------------------------------------------------------------------
def _text(value: object, label: str = "an OCTET STRING object") -> str:
    """Text of an OCTET STRING ("" when absent); a number there raises ``NotText`` naming ``label``
    (the public methods turn it into a DeviceProtocolError naming the operation)."""
    return octet_text(value, label)


def _raw_bytes(value: object) -> bytes:
    """The octets an OCTET STRING carried (the transport turns printable ones into str)."""
    if isinstance(value, bytes):
        return value
    return _text(value).encode("utf-8")


def format_mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def render_lldp_id(subtype: int | None, value: object, *, mac_subtype: int, net_subtype: int) -> str:
    """An LLDP chassis/port ID as text: MACs as aa:bb:.., IPv4 network addresses dotted, else text."""
    raw = _raw_bytes(value)
    if subtype == mac_subtype and len(raw) == 6:
        return format_mac(raw)
    if subtype == net_subtype and len(raw) == 5 and raw[0] == 1:  # IANA address family 1 = IPv4
        return ".".join(str(b) for b in raw[1:])
    if isinstance(value, bytes) and not all(32 <= b < 127 for b in value):
        return format_mac(value)  # opaque binary: hex is the only honest rendering
    return _text(value)


class _IfLookup:
    """IF-MIB columns the LLDP port mapping may need, walked only when first asked for."""

    def __init__(self, walk: Callable[[MibObject], dict[int, object]], names: Callable[[], dict[int, str]]) -> None:
        self._walk = walk
        self._names_fn = names
        self._names: dict[int, str] | None = None
        self._by_alias: dict[str, str] | None = None
        self._by_mac: dict[bytes, str] | None = None

    @property
    def names(self) -> dict[int, str]:
        if self._names is None:
            self._names = self._names_fn()
        return self._names

    def _unique(self, column: dict[int, object], key: Callable[[object], object]) -> dict:
        found: dict[object, str | None] = {}
        for index, value in column.items():
            k = key(value)
            if not k or index not in self.names:
                continue
            found[k] = None if k in found else self.names[index]  # ambiguous -> None
        return {k: v for k, v in found.items() if v is not None}

    def by_alias(self, alias: str) -> str | None:
        if self._by_alias is None:
            self._by_alias = self._unique(self._walk(mibs.IF_ALIAS), _text)
        return self._by_alias.get(alias)

    def by_mac(self, mac: bytes) -> str | None:
        if self._by_mac is None:
            self._by_mac = self._unique(self._walk(mibs.IF_PHYS_ADDRESS), _raw_bytes)
        return self._by_mac.get(mac)


def local_port_name(num: int, subtype: int | None, port_id: object, desc: object, ifs: _IfLookup) -> str:
    """Name the local port an LLDP neighbour was seen on, from its lldpLocPortTable row.

    interfaceName(5): the ID is the name. Otherwise a description equal to an ifName wins
    (most agents put ifName or ifDescr there); local(7) IDs that are an ifIndex map through
    ifName; interfaceAlias(1) / macAddress(3) IDs map through a unique ifAlias / ifPhysAddress.
    Failing all that: the description, then the rendered ID. No row at all: "lldp-port-<num>",
    never a guess that the number is an ifIndex.
    """
    if subtype is None and port_id is None:
        return f"lldp-port-{num}"
    text_id = _text(port_id)
    if subtype == mibs.PORT_ID_INTERFACE_NAME and text_id:
        return text_id
    description = _text(desc).strip()
    if description and description in ifs.names.values():
        return description
    if subtype == mibs.PORT_ID_LOCAL and text_id.isdigit() and int(text_id) in ifs.names:
        return ifs.names[int(text_id)]
    if subtype == mibs.PORT_ID_INTERFACE_ALIAS and text_id:
        found = ifs.by_alias(text_id)
        if found:
            return found
    if subtype == mibs.PORT_ID_MAC_ADDRESS:
        found = ifs.by_mac(_raw_bytes(port_id))
        if found:
            return found
    if description:
        return description
    return (
        render_lldp_id(subtype, port_id, mac_subtype=mibs.PORT_ID_MAC_ADDRESS, net_subtype=mibs.PORT_ID_NETWORK_ADDRESS)
        or f"lldp-port-{num}"
    )


def scaled_sensor_value(raw: int, scale: int, precision: int) -> float:
    """entPhySensorValue x 10^(scale exponent) / 10^precision, computed exactly then made a float."""
    return float(Decimal(raw).scaleb(mibs.sensor_scale_exponent(scale) - precision))


# Var-binds per GET when re-reading known counter rows (well under any agent's PDU size limit).
GET_CHUNK = 48
RELAYOUT_EVERY = 60
_ERROR_COLUMNS = (
    mibs.IF_IN_ERRORS,
    mibs.IF_OUT_ERRORS,
    mibs.IF_IN_DISCARDS,
    mibs.IF_OUT_DISCARDS,
    mibs.IF_COUNTER_DISCONTINUITY,
)


class SnmpSwitch(Device, NetSwitch, PortCounterSource, Sensors):
    """A switch read through standard MIBs over SNMP v2c/v3.

    Credentials and transport options are those of ``rackval.drivers.transport.snmp.SnmpTransport``
    (``snmp_version``, ``community`` or v3 user/keys; option ``retries``). Further options:

    - ``max_repetitions`` (int, default 32): GETBULK repetitions per request in column walks;
      lower it for agents that answer "tooBig" on large switches.

    Read-only: it never SETs anything. Methods return ports in ifIndex order and LLDP neighbours
    in local-port order. ``counters()`` returns raw counters: feed them to ``CounterTracker``.
    """

    options_model = SnmpSwitchOptions

    def __init__(self, config: DeviceConfig) -> None:
        self.name = config.name
        self._address = config.address
        self._max_rep = parse_options(self.options_model, config.options, config.name).max_repetitions
        self._snmp = SnmpTransport(config)
        # (ifIndex -> name, the rows each counter column has), learnt by the first counters() walk
        self._counter_layout: tuple[dict[int, str], dict[MibObject, tuple[int, ...]]] | None = None
        self._counter_calls = 0

    def __repr__(self) -> str:
        return f"SnmpSwitch({self.name!r}, {self._address!r})"

    # ---- reading ---------------------------------------------------------------------------------
    def _walk(self, obj: MibObject) -> dict[tuple[int, ...], object]:
        """One column: {index tuple: value}."""
        rows = self._snmp.walk(obj.oid, self._max_rep, operation=f"SNMP walk {obj.name}")
        skip = obj.oid.count(".") + 1
        return {tuple(int(p) for p in oid.split(".")[skip:]): value for oid, value in rows}

    def _walk1(self, obj: MibObject) -> dict[int, object]:
        """A column of a table indexed by one integer."""
        return {index[0]: value for index, value in self._walk(obj).items() if len(index) == 1}

    def _err(self, cls: type[DeviceError], operation: str, detail: str) -> DeviceError:
        return cls(self.name, self._address, operation, detail)

    def _int(self, value: object, obj: MibObject, index: object) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise DeviceProtocolError(
            self.name, self._address, f"SNMP walk {obj.name}", f"row {index}: expected an integer, got {value!r}"
        )

    def _opt_int(self, column: Mapping[int, object], index: int, obj: MibObject) -> int | None:
        value = column.get(index)
        return None if value is None else self._int(value, obj, index)

    def _if_names(self) -> dict[int, str]:
        """ifIndex -> ifName, falling back to ifDescr for agents (or rows) without ifName."""
        names = {i: _text(v, f"{mibs.IF_NAME.name}.{i}") for i, v in self._walk1(mibs.IF_NAME).items()}
        if not names or not all(names.values()):
            for i, v in self._walk1(mibs.IF_DESCR).items():
                if not names.get(i):
                    names[i] = _text(v, f"{mibs.IF_DESCR.name}.{i}")
        return dict(sorted(names.items()))

    # ---- Device ----------------------------------------------------------------------------------
    @protocol_errors("identify (ENTITY-MIB chassis row or sysDescr)")
    def identify(self) -> Identity:
        """From the ENTITY-MIB chassis row; from sysDescr / sysObjectID when there is none."""
        classes = self._walk1(mibs.ENT_PHYSICAL_CLASS)
        chassis = [i for i, c in sorted(classes.items()) if c == mibs.ENT_CLASS_CHASSIS]
        if not chassis:
            return self._identify_from_system()
        contained = self._walk1(mibs.ENT_PHYSICAL_CONTAINED_IN)
        top = [i for i in chassis if contained.get(i) == 0] or chassis
        index = top[0]
        objects = (
            mibs.ENT_PHYSICAL_MFG_NAME,
            mibs.ENT_PHYSICAL_MODEL_NAME,
            mibs.ENT_PHYSICAL_SERIAL_NUM,
            mibs.ENT_PHYSICAL_SOFTWARE_REV,
            mibs.ENT_PHYSICAL_FIRMWARE_REV,
        )
        oids = {f"{o.oid}.{index}": f"{o.name}.{index}" for o in objects}
        values = self._snmp.get(
            list(oids), operation=f"SNMP GET chassis identity (ENTITY-MIB row {index})", labels=oids, missing_ok=True
        )
        mfg, model, serial, software, firmware = (_text(values.get(oid), name).strip() for oid, name in oids.items())
        if not mfg or not model:
            fallback = self._identify_from_system()
            mfg = mfg or fallback.vendor
            model = model or fallback.model
        return Identity(vendor=mfg, model=model, serial=serial, firmware=software or firmware)

    def _identify_from_system(self) -> Identity:
        values = self._snmp.get(
            [mibs.SYS_DESCR.oid, mibs.SYS_OBJECT_ID.oid],
            operation="SNMP GET sysDescr/sysObjectID (no ENTITY-MIB chassis row)",
            labels={mibs.SYS_DESCR.oid: mibs.SYS_DESCR.name, mibs.SYS_OBJECT_ID.oid: mibs.SYS_OBJECT_ID.name},
        )
        descr = _text(values[mibs.SYS_DESCR.oid], mibs.SYS_DESCR.name).strip()
        object_id = _text(values[mibs.SYS_OBJECT_ID.oid], mibs.SYS_OBJECT_ID.name)
        vendor = ""
        if object_id.startswith(mibs.ENTERPRISES_PREFIX):
            number = object_id[len(mibs.ENTERPRISES_PREFIX) :].split(".")[0]
            if number.isdigit():
                vendor = mibs.ENTERPRISES.get(int(number), f"enterprise {number}")
        first_line = descr.splitlines()[0].strip() if descr else ""
        return Identity(vendor=vendor, model=first_line, serial="", firmware="")

    # ---- NetSwitch -------------------------------------------------------------------------------
    @protocol_errors("read ports (IF-MIB)")
    def ports(self) -> list[PortStatus]:
        names = self._if_names()
        admin = self._walk1(mibs.IF_ADMIN_STATUS)
        oper = self._walk1(mibs.IF_OPER_STATUS)
        speed = self._walk1(mibs.IF_HIGH_SPEED)
        alias = self._walk1(mibs.IF_ALIAS)
        ports = []
        for index, name in names.items():
            mbps = self._opt_int(speed, index, mibs.IF_HIGH_SPEED)
            ports.append(
                PortStatus(
                    name=name,
                    oper_up=self._opt_int(oper, index, mibs.IF_OPER_STATUS) == mibs.IF_STATUS_UP,
                    admin_up=self._opt_int(admin, index, mibs.IF_ADMIN_STATUS) == mibs.IF_STATUS_UP,
                    speed_mbps=mbps or None,  # 0 = the agent does not know
                    alias=_text(alias.get(index), f"{mibs.IF_ALIAS.name}.{index}"),
                )
            )
        return ports

    @protocol_errors("read LLDP neighbours (LLDP-MIB)")
    def lldp_neighbors(self) -> list[LldpNeighbor]:
        chassis_id = self._walk(mibs.LLDP_REM_CHASSIS_ID)
        port_id = self._walk(mibs.LLDP_REM_PORT_ID)
        rows = sorted(k for k in set(chassis_id) | set(port_id) if len(k) == 3)
        if not rows:
            if not self._walk1(mibs.LLDP_LOC_PORT_ID_SUBTYPE):  # no local ports either: LLDP-MIB not served
                raise NotAvailable(
                    self.name,
                    self._address,
                    "SNMP walk LLDP-MIB",
                    "the agent serves no lldpRemTable and no lldpLocPortTable",
                )
            return []
        chassis_subtype = self._walk(mibs.LLDP_REM_CHASSIS_ID_SUBTYPE)
        port_subtype = self._walk(mibs.LLDP_REM_PORT_ID_SUBTYPE)
        port_desc = self._walk(mibs.LLDP_REM_PORT_DESC)
        sys_name = self._walk(mibs.LLDP_REM_SYS_NAME)
        loc_subtype = self._walk1(mibs.LLDP_LOC_PORT_ID_SUBTYPE)
        loc_id = self._walk1(mibs.LLDP_LOC_PORT_ID)
        loc_desc = self._walk1(mibs.LLDP_LOC_PORT_DESC)
        ifs = _IfLookup(self._walk1, self._if_names)

        neighbors = []
        for key in sorted(rows, key=lambda k: (k[1], k[2], k[0])):  # local port, remote index, time
            _, local_num, _ = key
            local = local_port_name(
                local_num,
                self._opt_int(loc_subtype, local_num, mibs.LLDP_LOC_PORT_ID_SUBTYPE),
                loc_id.get(local_num),
                loc_desc.get(local_num),
                ifs,
            )
            p_subtype = port_subtype.get(key)
            p_subtype = self._int(p_subtype, mibs.LLDP_REM_PORT_ID_SUBTYPE, key) if p_subtype is not None else None
            remote_port = render_lldp_id(
                p_subtype,
                port_id.get(key),
                mac_subtype=mibs.PORT_ID_MAC_ADDRESS,
                net_subtype=mibs.PORT_ID_NETWORK_ADDRESS,
            )
            row = ".".join(map(str, key))
            description = _text(port_desc.get(key), f"{mibs.LLDP_REM_PORT_DESC.name}.{row}").strip()
            if p_subtype in (mibs.PORT_ID_MAC_ADDRESS, mibs.PORT_ID_NETWORK_ADDRESS) and description:
                # Linux lldpd sends the MAC as port ID and the interface name as description:
                # the name is what a cabling plan lists.
                remote_port = description
            system = _text(sys_name.get(key), f"{mibs.LLDP_REM_SYS_NAME.name}.{row}").strip()
            if not system:
                c_subtype = chassis_subtype.get(key)
                system = render_lldp_id(
                    c_subtype if isinstance(c_subtype, int) else None,
                    chassis_id.get(key),
                    mac_subtype=mibs.CHASSIS_ID_MAC_ADDRESS,
                    net_subtype=mibs.CHASSIS_ID_NETWORK_ADDRESS,
                )
            neighbors.append(LldpNeighbor(local_port=local, remote_system=system, remote_port=remote_port))
        return neighbors

    # ---- counters and sensors --------------------------------------------------------------------
    def counters(self) -> list[PortCounters]:
        """Raw per-port counters: 64-bit octets (ifHC*), 32-bit errors/discards, discontinuity time.

        Agents without ifXTable counters fall back to the 32-bit ifInOctets/ifOutOctets, and
        the result says so (``octet_bits=32``). The first call walks the columns; later calls GET
        exactly the rows the walk found (a telemetry poll at 1 Hz costs the agent half as much:
        a column walk's last GETBULK overshoots into the next column). They walk again when the
        agent no longer has one of those rows, and every RELAYOUT_EVERY calls, so a port added at
        run time shows up within that many polls.
        """
        uptime = self._snmp.get(
            [mibs.SYS_UPTIME.oid],
            operation=f"SNMP GET {mibs.SYS_UPTIME.name}",
            labels={mibs.SYS_UPTIME.oid: mibs.SYS_UPTIME.name},
            missing_ok=True,
        ).get(mibs.SYS_UPTIME.oid)
        uptime_s = None if uptime is None else self._int(uptime, mibs.SYS_UPTIME, 0) / 100.0
        self._counter_calls += 1
        if self._counter_calls % RELAYOUT_EVERY == 0:
            self._counter_layout = None
        layout = self._counter_layout
        columns: dict[MibObject, dict[int, object]] | None = None
        if layout is not None:
            try:
                columns = self._get_columns(layout[1])
            except DeviceProtocolError:
                columns = None  # the agent's rows changed: walk again
        if columns is None or layout is None:
            names = self._if_names()
            in_obj, out_obj = mibs.IF_HC_IN_OCTETS, mibs.IF_HC_OUT_OCTETS
            in_octets, out_octets = self._walk1(in_obj), self._walk1(out_obj)
            if not in_octets and not out_octets:
                in_obj, out_obj = mibs.IF_IN_OCTETS, mibs.IF_OUT_OCTETS
                in_octets, out_octets = self._walk1(in_obj), self._walk1(out_obj)
            objs = (in_obj, out_obj, *_ERROR_COLUMNS)
            columns = {in_obj: in_octets, out_obj: out_octets}
            columns.update({obj: self._walk1(obj) for obj in objs[2:]})
            present = {obj: tuple(columns[obj]) for obj in objs if columns[obj]}
            self._counter_layout = layout = (names, present)
        names, present = layout
        octet_bits = 64 if mibs.IF_HC_IN_OCTETS in present or mibs.IF_HC_OUT_OCTETS in present else 32
        in_obj = mibs.IF_HC_IN_OCTETS if octet_bits == 64 else mibs.IF_IN_OCTETS
        out_obj = mibs.IF_HC_OUT_OCTETS if octet_bits == 64 else mibs.IF_OUT_OCTETS
        empty: dict[int, object] = {}

        def col(obj: MibObject) -> dict[int, object]:
            return columns.get(obj, empty) if columns is not None else empty

        result = []
        for index, name in names.items():
            result.append(
                PortCounters(
                    name=name,
                    in_octets=self._opt_int(col(in_obj), index, in_obj),
                    out_octets=self._opt_int(col(out_obj), index, out_obj),
                    in_errors=self._opt_int(col(mibs.IF_IN_ERRORS), index, mibs.IF_IN_ERRORS),
                    out_errors=self._opt_int(col(mibs.IF_OUT_ERRORS), index, mibs.IF_OUT_ERRORS),
                    in_discards=self._opt_int(col(mibs.IF_IN_DISCARDS), index, mibs.IF_IN_DISCARDS),
                    out_discards=self._opt_int(col(mibs.IF_OUT_DISCARDS), index, mibs.IF_OUT_DISCARDS),
                    octet_bits=octet_bits,
                    error_bits=32,
                    discontinuity=self._opt_int(
                        col(mibs.IF_COUNTER_DISCONTINUITY), index, mibs.IF_COUNTER_DISCONTINUITY
                    ),
                    uptime_s=uptime_s,
                )
            )
        return result

    def _get_columns(self, rows: dict[MibObject, tuple[int, ...]]) -> dict[MibObject, dict[int, object]]:
        """GET exactly the rows each column had, in requests of at most GET_CHUNK var-binds."""
        wanted = [(obj, i, f"{obj.oid}.{i}") for obj, indices in rows.items() for i in indices]
        out: dict[MibObject, dict[int, object]] = {obj: {} for obj in rows}
        for start in range(0, len(wanted), GET_CHUNK):
            chunk = wanted[start : start + GET_CHUNK]
            values = self._snmp.get(
                [oid for _, _, oid in chunk],
                operation=f"SNMP GET port counters ({len(chunk)} objects)",
                labels={oid: f"{obj.name}.{i}" for obj, i, oid in chunk},
            )
            for obj, i, oid in chunk:
                out[obj][i] = values[oid]
        return out

    @protocol_errors("read sensors (ENTITY-SENSOR-MIB)")
    def sensors(self) -> list[SensorReading]:
        """ENTITY-SENSOR-MIB readings, scaled; named by entPhysicalName (else entPhysicalDescr).

        ``description`` is the entity's entPhysicalDescr. A value is reported only when the
        sensor's operStatus is ok(1); otherwise ``value`` is None and ``status`` says why.
        """
        types = self._walk1(mibs.ENT_SENSOR_TYPE)
        if not types:
            return []
        scales = self._walk1(mibs.ENT_SENSOR_SCALE)
        precisions = self._walk1(mibs.ENT_SENSOR_PRECISION)
        values = self._walk1(mibs.ENT_SENSOR_VALUE)
        statuses = self._walk1(mibs.ENT_SENSOR_OPER_STATUS)
        names = {i: _text(v, f"{mibs.ENT_PHYSICAL_NAME.name}.{i}").strip()
                 for i, v in self._walk1(mibs.ENT_PHYSICAL_NAME).items()}  # fmt: skip
        descrs = {i: _text(v, f"{mibs.ENT_PHYSICAL_DESCR.name}.{i}").strip()
                  for i, v in self._walk1(mibs.ENT_PHYSICAL_DESCR).items()}  # fmt: skip
        readings = []
        for index in sorted(types):
            sensor_type = self._int(types[index], mibs.ENT_SENSOR_TYPE, index)
            kind, unit = mibs.SENSOR_TYPES.get(sensor_type, ("other", ""))
            status_code = self._opt_int(statuses, index, mibs.ENT_SENSOR_OPER_STATUS)
            status = mibs.SENSOR_STATUS.get(status_code or 0, f"status {status_code}")
            raw = self._opt_int(values, index, mibs.ENT_SENSOR_VALUE)
            value = None
            if status == "ok" and raw is not None:
                scale = self._opt_int(scales, index, mibs.ENT_SENSOR_SCALE) or mibs.SENSOR_SCALE_UNITS
                precision = self._opt_int(precisions, index, mibs.ENT_SENSOR_PRECISION) or 0
                value = scaled_sensor_value(raw, scale, precision)
            name = names.get(index) or descrs.get(index) or f"sensor {index}"
            readings.append(
                SensorReading(
                    name=name,
                    kind=kind,
                    value=value,
                    unit=unit,
                    status=status,
                    description=descrs.get(index, ""),
                )
            )
        return readings

    def close(self) -> None:
        self._snmp.close()
