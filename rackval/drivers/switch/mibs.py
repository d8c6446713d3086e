"""IF-MIB, LLDP-MIB, ENTITY-MIB and ENTITY-SENSOR-MIB objects as plain data (numeric OIDs only).

The SNMP switch driver never loads MIB files: resolving names through pysnmp's MIB layer costs
about 2x in walks, and a rack host should not need vendor MIB directories. The OIDs and
enumerations below were checked against the IETF/IEEE MIB modules (IF-MIB RFC 2863,
ENTITY-MIB RFC 6933, ENTITY-SENSOR-MIB RFC 3433, IEEE 802.1AB LLDP-MIB 2005) and
docs/reference/domain.md section 2. Each object carries its MIB name so error messages
say "IF-MIB::ifHCInOctets", which an engineer can look up, rather than a bare number.
"""

from __future__ import annotations

from typing import NamedTuple


class MibObject(NamedTuple):
    """A MIB column or scalar: readable name and numeric OID (no leading dot)."""

    name: str
    oid: str


# ---- SNMPv2-MIB system group ---------------------------------------------------------------------
SYS_DESCR = MibObject("SNMPv2-MIB::sysDescr.0", "1.3.6.1.2.1.1.1.0")
SYS_OBJECT_ID = MibObject("SNMPv2-MIB::sysObjectID.0", "1.3.6.1.2.1.1.2.0")
SYS_UPTIME = MibObject("SNMPv2-MIB::sysUpTime.0", "1.3.6.1.2.1.1.3.0")  # TimeTicks, 1/100 s

# ---- IF-MIB ------------------------------------------------------------------------------------
_IF_ENTRY = "1.3.6.1.2.1.2.2.1"
_IFX_ENTRY = "1.3.6.1.2.1.31.1.1.1"
IF_DESCR = MibObject("IF-MIB::ifDescr", f"{_IF_ENTRY}.2")
IF_PHYS_ADDRESS = MibObject("IF-MIB::ifPhysAddress", f"{_IF_ENTRY}.6")
IF_ADMIN_STATUS = MibObject("IF-MIB::ifAdminStatus", f"{_IF_ENTRY}.7")
IF_OPER_STATUS = MibObject("IF-MIB::ifOperStatus", f"{_IF_ENTRY}.8")
IF_IN_OCTETS = MibObject("IF-MIB::ifInOctets", f"{_IF_ENTRY}.10")  # Counter32: fallback only
IF_IN_DISCARDS = MibObject("IF-MIB::ifInDiscards", f"{_IF_ENTRY}.13")  # Counter32
IF_IN_ERRORS = MibObject("IF-MIB::ifInErrors", f"{_IF_ENTRY}.14")  # Counter32
IF_OUT_OCTETS = MibObject("IF-MIB::ifOutOctets", f"{_IF_ENTRY}.16")  # Counter32: fallback only
IF_OUT_DISCARDS = MibObject("IF-MIB::ifOutDiscards", f"{_IF_ENTRY}.19")  # Counter32
IF_OUT_ERRORS = MibObject("IF-MIB::ifOutErrors", f"{_IF_ENTRY}.20")  # Counter32
IF_NAME = MibObject("IF-MIB::ifName", f"{_IFX_ENTRY}.1")
IF_HC_IN_OCTETS = MibObject("IF-MIB::ifHCInOctets", f"{_IFX_ENTRY}.6")  # Counter64
IF_HC_OUT_OCTETS = MibObject("IF-MIB::ifHCOutOctets", f"{_IFX_ENTRY}.10")  # Counter64
IF_HIGH_SPEED = MibObject("IF-MIB::ifHighSpeed", f"{_IFX_ENTRY}.15")  # Gauge32, Mb/s
IF_ALIAS = MibObject("IF-MIB::ifAlias", f"{_IFX_ENTRY}.18")
IF_COUNTER_DISCONTINUITY = MibObject("IF-MIB::ifCounterDiscontinuityTime", f"{_IFX_ENTRY}.19")

IF_STATUS_UP = 1  # ifAdminStatus / ifOperStatus up(1); down 2, testing 3, ... lowerLayerDown 7

# ---- LLDP-MIB (IEEE 802.1AB-2005, lldpObjects 1.0.8802.1.1.2.1) ---------------------------------
_LLDP = "1.0.8802.1.1.2.1"
_LLDP_LOC_PORT_ENTRY = f"{_LLDP}.3.7.1"  # indexed {lldpLocPortNum}
_LLDP_REM_ENTRY = f"{_LLDP}.4.1.1"  # indexed {lldpRemTimeMark, lldpRemLocalPortNum, lldpRemIndex}
LLDP_LOC_PORT_ID_SUBTYPE = MibObject("LLDP-MIB::lldpLocPortIdSubtype", f"{_LLDP_LOC_PORT_ENTRY}.2")
LLDP_LOC_PORT_ID = MibObject("LLDP-MIB::lldpLocPortId", f"{_LLDP_LOC_PORT_ENTRY}.3")
LLDP_LOC_PORT_DESC = MibObject("LLDP-MIB::lldpLocPortDesc", f"{_LLDP_LOC_PORT_ENTRY}.4")
LLDP_REM_CHASSIS_ID_SUBTYPE = MibObject("LLDP-MIB::lldpRemChassisIdSubtype", f"{_LLDP_REM_ENTRY}.4")
LLDP_REM_CHASSIS_ID = MibObject("LLDP-MIB::lldpRemChassisId", f"{_LLDP_REM_ENTRY}.5")
LLDP_REM_PORT_ID_SUBTYPE = MibObject("LLDP-MIB::lldpRemPortIdSubtype", f"{_LLDP_REM_ENTRY}.6")
LLDP_REM_PORT_ID = MibObject("LLDP-MIB::lldpRemPortId", f"{_LLDP_REM_ENTRY}.7")
LLDP_REM_PORT_DESC = MibObject("LLDP-MIB::lldpRemPortDesc", f"{_LLDP_REM_ENTRY}.8")
LLDP_REM_SYS_NAME = MibObject("LLDP-MIB::lldpRemSysName", f"{_LLDP_REM_ENTRY}.9")

# LldpPortIdSubtype
PORT_ID_INTERFACE_ALIAS = 1
PORT_ID_PORT_COMPONENT = 2
PORT_ID_MAC_ADDRESS = 3
PORT_ID_NETWORK_ADDRESS = 4
PORT_ID_INTERFACE_NAME = 5
PORT_ID_AGENT_CIRCUIT_ID = 6
PORT_ID_LOCAL = 7

# LldpChassisIdSubtype (numbered differently from the port subtypes)
CHASSIS_ID_MAC_ADDRESS = 4
CHASSIS_ID_NETWORK_ADDRESS = 5

# ---- ENTITY-MIB entPhysicalTable ----------------------------------------------------------------
_ENT_PHYSICAL_ENTRY = "1.3.6.1.2.1.47.1.1.1.1"
ENT_PHYSICAL_DESCR = MibObject("ENTITY-MIB::entPhysicalDescr", f"{_ENT_PHYSICAL_ENTRY}.2")
ENT_PHYSICAL_CONTAINED_IN = MibObject("ENTITY-MIB::entPhysicalContainedIn", f"{_ENT_PHYSICAL_ENTRY}.4")
ENT_PHYSICAL_CLASS = MibObject("ENTITY-MIB::entPhysicalClass", f"{_ENT_PHYSICAL_ENTRY}.5")
ENT_PHYSICAL_NAME = MibObject("ENTITY-MIB::entPhysicalName", f"{_ENT_PHYSICAL_ENTRY}.7")
ENT_PHYSICAL_FIRMWARE_REV = MibObject("ENTITY-MIB::entPhysicalFirmwareRev", f"{_ENT_PHYSICAL_ENTRY}.9")
ENT_PHYSICAL_SOFTWARE_REV = MibObject("ENTITY-MIB::entPhysicalSoftwareRev", f"{_ENT_PHYSICAL_ENTRY}.10")
ENT_PHYSICAL_SERIAL_NUM = MibObject("ENTITY-MIB::entPhysicalSerialNum", f"{_ENT_PHYSICAL_ENTRY}.11")
ENT_PHYSICAL_MFG_NAME = MibObject("ENTITY-MIB::entPhysicalMfgName", f"{_ENT_PHYSICAL_ENTRY}.12")
ENT_PHYSICAL_MODEL_NAME = MibObject("ENTITY-MIB::entPhysicalModelName", f"{_ENT_PHYSICAL_ENTRY}.13")

ENT_CLASS_CHASSIS = 3  # PhysicalClass chassis(3); stack(11) may contain several chassis

# ---- ENTITY-SENSOR-MIB entPhySensorTable (indexed by entPhysicalIndex) --------------------------
_ENT_SENSOR_ENTRY = "1.3.6.1.2.1.99.1.1.1"
ENT_SENSOR_TYPE = MibObject("ENTITY-SENSOR-MIB::entPhySensorType", f"{_ENT_SENSOR_ENTRY}.1")
ENT_SENSOR_SCALE = MibObject("ENTITY-SENSOR-MIB::entPhySensorScale", f"{_ENT_SENSOR_ENTRY}.2")
ENT_SENSOR_PRECISION = MibObject("ENTITY-SENSOR-MIB::entPhySensorPrecision", f"{_ENT_SENSOR_ENTRY}.3")
ENT_SENSOR_VALUE = MibObject("ENTITY-SENSOR-MIB::entPhySensorValue", f"{_ENT_SENSOR_ENTRY}.4")
ENT_SENSOR_OPER_STATUS = MibObject("ENTITY-SENSOR-MIB::entPhySensorOperStatus", f"{_ENT_SENSOR_ENTRY}.5")

# EntitySensorDataType -> (kind, unit) as SensorReading reports them
SENSOR_TYPES: dict[int, tuple[str, str]] = {
    1: ("other", ""),
    2: ("unknown", ""),
    3: ("voltage", "V AC"),
    4: ("voltage", "V"),
    5: ("current", "A"),
    6: ("power", "W"),
    7: ("frequency", "Hz"),
    8: ("temperature", "C"),
    9: ("humidity", "%RH"),
    10: ("fan", "rpm"),
    11: ("airflow", "cmm"),
    12: ("truthvalue", ""),
}

# EntitySensorStatus
SENSOR_STATUS: dict[int, str] = {1: "ok", 2: "unavailable", 3: "nonoperational"}

SENSOR_SCALE_UNITS = 9  # EntitySensorDataScale: yocto(1) ... units(9) ... yotta(17), steps of 10^3


def sensor_scale_exponent(scale: int) -> int:
    """EntitySensorDataScale -> power of ten: units(9) -> 0, milli(8) -> -3, kilo(10) -> 3."""
    return (scale - SENSOR_SCALE_UNITS) * 3


# ---- enterprise numbers seen in sysObjectID, for the sysDescr fallback identity -----------------
ENTERPRISES: dict[int, str] = {
    9: "Cisco",
    11: "HPE",
    674: "Dell",
    2011: "Huawei",
    2636: "Juniper",
    6027: "Dell EMC Networking",
    8072: "net-snmp",
    25506: "H3C",
    30065: "Arista",
    33049: "NVIDIA (Mellanox)",
    40310: "Cumulus",
    47196: "NVIDIA",
}
ENTERPRISES_PREFIX = "1.3.6.1.4.1."
