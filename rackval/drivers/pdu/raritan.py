"""Raritan PX2/PX3 (PDU2-MIB) as an ``SnmpPduMap``, and the ``RaritanPdu2Pdu`` driver.

Sources (tags as in docs/reference/domain.md):
  [V] PDU2-MIB via domain.md §1 and the public object pages: switchingOperation
      .6.4.1.2.1.2 (off 0, on 1, cycle 2) and outletSwitchingState .6.4.1.2.1.3 (a
      SensorStateEnumeration: on 7, off 8, unavailable -1), indexed {pduId, outletId};
      measurementsOutletSensorValue .6.5.4.3.1.4 and measurementsInletSensorValue .6.5.2.3.1.4
      indexed {pduId, outletId|inletId, sensorType}; measurementsInletPoleSensorValue
      .6.5.2.4.1.4 {pduId, inletId, poleIndex, sensorType}; the *SensorDecimalDigits columns;
      outletCount .6.3.2.2.1.4, inletCount .6.3.2.2.1.2, outletName .6.3.5.3.1.3.
  [S] pduNamePlateTable .6.3.2.1.1.<col>.<pdu>: pduManufacturer 2, pduModel 3, pduSerialNumber 4;
      boardFirmwareVersion .6.3.2.3.1.6.<pdu>.<boardType mainController=1>.<boardIndex 1>;
      inletPoleCount .6.3.3.3.1.5.<pdu>.<inlet> (NUT raritan-px2-mib.c, with sample walks).
  [S] Sensor types: rmsCurrent 1, rmsVoltage 4, activePower 5 (domain.md, NUT).

Values are Unsigned32 scaled by 10^-DecimalDigits, read from the agent (not assumed: a
firmware may report current in 1 or 3 decimals). Energy counters (activeEnergy 8) are
Unsigned32 and wrap at 2^32 Wh: not read here; wrap handling is out of scope.
PDU2-MIB has no unit-total power object on single-inlet PDUs, so ``power_watts()`` is the
sum of the inlets' activePower. An outlet without a meter (no sensor row) makes ``outlets()``
fail with noSuchInstance naming the object [U: non-metered PX models not modelled].
"""

from __future__ import annotations

from rackval.drivers.pdu.snmp_pdu import SnmpPdu
from rackval.drivers.pdu.snmp_pdu_map import (
    AgentObject,
    AgentProfile,
    AgentQuantity,
    InletMap,
    Oid,
    OutletCommand,
    Reading,
    SnmpPduMap,
)

PDU2 = "1.3.6.1.4.1.13742.6"  # PDU2-MIB root (raritan 6) [V]

# configuration [V] / [S]
NAMEPLATE_MANUFACTURER = f"{PDU2}.3.2.1.1.2"  # [S]
NAMEPLATE_MODEL = f"{PDU2}.3.2.1.1.3"  # [S]
NAMEPLATE_SERIAL = f"{PDU2}.3.2.1.1.4"  # [S]
INLET_COUNT = f"{PDU2}.3.2.2.1.2"
OUTLET_COUNT = f"{PDU2}.3.2.2.1.4"
BOARD_FIRMWARE_VERSION = f"{PDU2}.3.2.3.1.6"  # {pdu}.{boardType}.{boardIndex} [S]
INLET_POLE_COUNT = f"{PDU2}.3.3.3.1.5"  # [S]
INLET_SENSOR_DECIMAL_DIGITS = f"{PDU2}.3.3.4.1.7"
INLET_POLE_SENSOR_DECIMAL_DIGITS = f"{PDU2}.3.3.6.1.7"
OUTLET_NAME = f"{PDU2}.3.5.3.1.3"
OUTLET_SENSOR_DECIMAL_DIGITS = f"{PDU2}.3.5.4.1.7"

# control [V]
SWITCHING_OPERATION = f"{PDU2}.4.1.2.1.2"
OUTLET_SWITCHING_STATE = f"{PDU2}.4.1.2.1.3"

# measurements [V]
INLET_SENSOR_VALUE = f"{PDU2}.5.2.3.1.4"
INLET_POLE_SENSOR_VALUE = f"{PDU2}.5.2.4.1.4"
OUTLET_SENSOR_VALUE = f"{PDU2}.5.4.3.1.4"

# value codes [V]
OP_OFF, OP_ON, OP_CYCLE = 0, 1, 2
STATE_ON, STATE_OFF, STATE_UNAVAILABLE = 7, 8, -1
MAIN_CONTROLLER = 1  # BoardTypeEnumeration mainController [S]

# SensorTypeEnumeration [V]
RMS_CURRENT, RMS_VOLTAGE, ACTIVE_POWER, APPARENT_POWER, POWER_FACTOR, ACTIVE_ENERGY = 1, 4, 5, 6, 7, 8


def _sensor(table: str, sensor: int, name: str) -> Reading:
    """A PDU2 sensor value with its decimal-digits object, for one table and sensor type."""
    value_col, digits_col, index, label = _TABLES[table]
    return Reading(
        Oid(f"{value_col}.{index}.{sensor}", f"measurements{label}SensorValue.{index}.{name}"),
        scale=1.0,
        digits=Oid(
            f"{digits_col}.{index}.{sensor}", f"{label[0].lower()}{label[1:]}SensorDecimalDigits.{index}.{name}"
        ),
    )


_OUTLET = "{dev}.{outlet}"
_INLET = "{dev}.{inlet}"
_POLE = "{dev}.{inlet}.{pole}"
_TABLES = {
    "outlet": (OUTLET_SENSOR_VALUE, OUTLET_SENSOR_DECIMAL_DIGITS, _OUTLET, "Outlet"),
    "inlet": (INLET_SENSOR_VALUE, INLET_SENSOR_DECIMAL_DIGITS, _INLET, "Inlet"),
    "pole": (INLET_POLE_SENSOR_VALUE, INLET_POLE_SENSOR_DECIMAL_DIGITS, _POLE, "InletPole"),
}

_SWITCHING = Oid(f"{SWITCHING_OPERATION}.{_OUTLET}", f"switchingOperation.{_OUTLET}")
_OUTLET_VOLTAGE = _sensor("outlet", RMS_VOLTAGE, "rmsVoltage")

# A typical PX3 with firmware 4.x: sysDescr [U: modelled on PX3 firmware 4.x, not copied from a
# device]; sensor values Unsigned32 with current in 3 decimals, voltage in 1, power in none;
# switchingOperation reads back on(1) / off(0); cycle(2) is the reboot command.
_AGENT = AgentProfile(
    model="PX3-5902V",
    firmware="4.0.20.5-48096",
    serial_prefix="RA",
    sys_descr="PX3 {firmware} (Raritan PDU2, simulated {model})",
    sys_object_id=PDU2,
    command_reboot=OutletCommand(_SWITCHING, OP_CYCLE),
    decimal_digits={"A": 3, "V": 1, "W": 0},
    unsigned=True,
    objects=(AgentObject(_OUTLET_VOLTAGE.oid, AgentQuantity("voltage_v", digits=_OUTLET_VOLTAGE.digits)),),
)

RARITAN_PDU2 = SnmpPduMap(
    vendor="Raritan",
    family="Raritan PDU2-MIB",
    ident_vendor=Oid(f"{NAMEPLATE_MANUFACTURER}.{{dev}}", "pduManufacturer.{dev}"),
    ident_model=Oid(f"{NAMEPLATE_MODEL}.{{dev}}", "pduModel.{dev}"),
    ident_serial=Oid(f"{NAMEPLATE_SERIAL}.{{dev}}", "pduSerialNumber.{dev}"),
    ident_firmware=Oid(
        f"{BOARD_FIRMWARE_VERSION}.{{dev}}.{MAIN_CONTROLLER}.1", "boardFirmwareVersion.{dev}.mainController.1"
    ),
    outlet_count=Oid(f"{OUTLET_COUNT}.{{dev}}", "outletCount.{dev}"),
    device_power_w=None,  # sum of inlets' activePower
    outlet_name=Oid(f"{OUTLET_NAME}.{_OUTLET}", f"outletName.{_OUTLET}"),
    outlet_state=Oid(f"{OUTLET_SWITCHING_STATE}.{_OUTLET}", f"outletSwitchingState.{_OUTLET}"),
    state_on=frozenset({STATE_ON}),
    state_off=frozenset({STATE_OFF}),
    command_on=OutletCommand(_SWITCHING, OP_ON),
    command_off=OutletCommand(_SWITCHING, OP_OFF),
    outlet_power_w=_sensor("outlet", ACTIVE_POWER, "activePower"),
    outlet_current_a=_sensor("outlet", RMS_CURRENT, "rmsCurrent"),
    inlets=InletMap(
        count=Oid(f"{INLET_COUNT}.{{dev}}", "inletCount.{dev}"),
        power_w=_sensor("inlet", ACTIVE_POWER, "activePower"),
        voltage_v=_sensor("inlet", RMS_VOLTAGE, "rmsVoltage"),
        current_a=_sensor("inlet", RMS_CURRENT, "rmsCurrent"),
        pole_count=Oid(f"{INLET_POLE_COUNT}.{_INLET}", f"inletPoleCount.{_INLET}"),
        pole_voltage_v=_sensor("pole", RMS_VOLTAGE, "rmsVoltage"),
        pole_current_a=_sensor("pole", RMS_CURRENT, "rmsCurrent"),
        pole_power_w=_sensor("pole", ACTIVE_POWER, "activePower"),
    ),
    agent=_AGENT,
)


class RaritanPdu2Pdu(SnmpPdu):
    """Raritan PX2/PX3 (and other PDU2-MIB agents, e.g. Legrand) switched, metered PDU.

    ``identify()``: vendor from pduManufacturer ("Raritan" if empty), model / serial from the
    nameplate table, firmware from the main controller's boardFirmwareVersion.
    ``outlets()``: outletName, outletSwitchingState (on 7 / off 8) and the outlet activePower /
    rmsCurrent sensors scaled by their DecimalDigits. ``power_watts()``: sum of the inlets'
    activePower. ``set_outlet()``: switchingOperation on(1) / off(0), then polls the state.
    ``inlet_readings()``: each inlet's rmsVoltage / rmsCurrent / activePower and, per pole
    (phase), the same from the inlet pole sensors.
    Options: see ``SnmpPdu`` (``device_index`` = pduId, default 1; daisy-chained PDUs 2..n).
    """

    MAP = RARITAN_PDU2
