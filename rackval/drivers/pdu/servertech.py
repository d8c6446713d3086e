"""ServerTech Sentry4 (PRO1 / PRO2, Sentry4-MIB) as an ``SnmpPduMap``, and its driver.

Sources (tags as in docs/reference/domain.md), all [V] against the Sentry4-MIB text
(2017-06-15, as shipped in LibreNMS), prefix st4Objects = .1.3.6.1.4.1.1718.4.1:
  * st4SystemConfig .1.1.<n>.0: st4SystemProductName 1, st4SystemFirmwareVersion 3.
  * st4UnitConfigTable .2.2.1.<col>.<unit>: st4UnitName 3, st4UnitProductSN 4, st4UnitModel 5,
    st4UnitInputCordCount 30.
  * st4InputCordConfigTable .3.2.1.<col>.<unit>.<cord>: st4InputCordPhaseCount 21,
    st4InputCordOutletCount 24; st4InputCordMonitorTable .3.3.1: st4InputCordActivePower 3 (W).
  * st4PhaseMonitorTable .5.3.1.<col>.<unit>.<cord>.<phase>: st4PhaseVoltage 3 (tenth V),
    st4PhaseCurrent 6 (hundredth A), st4PhaseActivePower 8 (W). [S: st4Phases = st4Objects 5 is
    read from the MIB's section order; st4OverCurrentProtectors 6 and st4Outlets 8 are explicit.]
  * st4OutletConfigTable .8.2.1: st4OutletName 3; st4OutletMonitorTable .8.3.1: st4OutletState 1
    (DeviceState unknown 0, on 1, off 2), st4OutletCurrent 3 (hundredth A), st4OutletVoltage 6
    (tenth V), st4OutletActivePower 7 (W); st4OutletControlTable .8.5.1: st4OutletControlAction 2
    (none 0, on 1, off 2, reboot 3, queueOn 4, queueOff 5, queueReboot 6). All outlet tables are
    indexed {st4UnitIndex, st4InputCordIndex, st4OutletIndex}.
  * Measurements are Integer32 with -1 = not available: reported as ``None``.

The unit's serial number is in the vendor MIB (st4UnitProductSN), so identity needs no
ENTITY-MIB / sysDescr fallback. Firmware is per system (one NIC for all linked units).
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
    OutletCords,
    Reading,
    SnmpPduMap,
)

ST4 = "1.3.6.1.4.1.1718.4.1"  # st4Objects [V]

SYSTEM_FIRMWARE_VERSION = f"{ST4}.1.1.3.0"
UNIT_NAME = f"{ST4}.2.2.1.3"
UNIT_PRODUCT_SN = f"{ST4}.2.2.1.4"
UNIT_MODEL = f"{ST4}.2.2.1.5"
UNIT_INPUT_CORD_COUNT = f"{ST4}.2.2.1.30"
CORD_PHASE_COUNT = f"{ST4}.3.2.1.21"
CORD_OUTLET_COUNT = f"{ST4}.3.2.1.24"
CORD_ACTIVE_POWER = f"{ST4}.3.3.1.3"  # W
PHASE_VOLTAGE = f"{ST4}.5.3.1.3"  # tenth V
PHASE_CURRENT = f"{ST4}.5.3.1.6"  # hundredth A
PHASE_ACTIVE_POWER = f"{ST4}.5.3.1.8"  # W
OUTLET_NAME = f"{ST4}.8.2.1.3"
OUTLET_STATE = f"{ST4}.8.3.1.1"
OUTLET_CURRENT = f"{ST4}.8.3.1.3"  # hundredth A
OUTLET_VOLTAGE = f"{ST4}.8.3.1.6"  # tenth V
OUTLET_ACTIVE_POWER = f"{ST4}.8.3.1.7"  # W
OUTLET_CONTROL_ACTION = f"{ST4}.8.5.1.2"

STATE_UNKNOWN, STATE_ON, STATE_OFF = 0, 1, 2
ACTION_NONE, ACTION_ON, ACTION_OFF, ACTION_REBOOT = 0, 1, 2, 3

_OUTLET = "{dev}.{cord}.{outlet}"
_CORD = "{dev}.{inlet}"  # the driver's "inlet" is a Sentry4 input cord
_PHASE = "{dev}.{inlet}.{pole}"

_CONTROL = Oid(f"{OUTLET_CONTROL_ACTION}.{_OUTLET}", f"st4OutletControlAction.{_OUTLET}")

# A typical PRO2 switched PDU with firmware 8.x: sysDescr [U: modelled on PRO2 firmware 8.x, not
# copied from a device]; st4OutletControlAction reads back none(0); reboot(3) cycles an outlet.
_AGENT = AgentProfile(
    model="C2WG36TE-DQME2M66/C",
    firmware="8.0r",
    serial_prefix="ST",
    sys_descr="Sentry Switched PDU, firmware {firmware} (simulated {model})",
    sys_object_id="1.3.6.1.4.1.1718.4",
    command_reboot=OutletCommand(_CONTROL, ACTION_REBOOT),
    command_readback=ACTION_NONE,
    objects=(
        AgentObject(Oid(f"{ST4}.1.1.1.0", "st4SystemProductName.0"), "Sentry {model}"),
        AgentObject(Oid(f"{UNIT_NAME}.{{dev}}", "st4UnitName.{dev}"), "{name}"),
        AgentObject(
            Oid(f"{OUTLET_VOLTAGE}.{_OUTLET}", f"st4OutletVoltage.{_OUTLET}"), AgentQuantity("voltage_v", scale=0.1)
        ),
    ),
)

SENTRY4 = SnmpPduMap(
    vendor="ServerTech",
    family="ServerTech Sentry4-MIB",
    ident_model=Oid(f"{UNIT_MODEL}.{{dev}}", "st4UnitModel.{dev}"),
    ident_serial=Oid(f"{UNIT_PRODUCT_SN}.{{dev}}", "st4UnitProductSN.{dev}"),
    ident_firmware=Oid(SYSTEM_FIRMWARE_VERSION, "st4SystemFirmwareVersion.0"),
    outlet_count=None,
    outlet_cords=OutletCords(
        cord_count=Oid(f"{UNIT_INPUT_CORD_COUNT}.{{dev}}", "st4UnitInputCordCount.{dev}"),
        cord_outlet_count=Oid(f"{CORD_OUTLET_COUNT}.{{dev}}.{{cord}}", "st4InputCordOutletCount.{dev}.{cord}"),
    ),
    device_power_w=None,  # sum of the cords' st4InputCordActivePower
    outlet_name=Oid(f"{OUTLET_NAME}.{_OUTLET}", f"st4OutletName.{_OUTLET}"),
    outlet_state=Oid(f"{OUTLET_STATE}.{_OUTLET}", f"st4OutletState.{_OUTLET}"),
    state_on=frozenset({STATE_ON}),
    state_off=frozenset({STATE_OFF}),
    command_on=OutletCommand(_CONTROL, ACTION_ON),
    command_off=OutletCommand(_CONTROL, ACTION_OFF),
    outlet_power_w=Reading(Oid(f"{OUTLET_ACTIVE_POWER}.{_OUTLET}", f"st4OutletActivePower.{_OUTLET}"), scale=1.0),
    outlet_current_a=Reading(Oid(f"{OUTLET_CURRENT}.{_OUTLET}", f"st4OutletCurrent.{_OUTLET}"), scale=0.01),
    inlets=InletMap(
        count=Oid(f"{UNIT_INPUT_CORD_COUNT}.{{dev}}", "st4UnitInputCordCount.{dev}"),
        power_w=Reading(Oid(f"{CORD_ACTIVE_POWER}.{_CORD}", f"st4InputCordActivePower.{_CORD}"), scale=1.0),
        pole_count=Oid(f"{CORD_PHASE_COUNT}.{_CORD}", f"st4InputCordPhaseCount.{_CORD}"),
        pole_voltage_v=Reading(Oid(f"{PHASE_VOLTAGE}.{_PHASE}", f"st4PhaseVoltage.{_PHASE}"), scale=0.1),
        pole_current_a=Reading(Oid(f"{PHASE_CURRENT}.{_PHASE}", f"st4PhaseCurrent.{_PHASE}"), scale=0.01),
        pole_power_w=Reading(Oid(f"{PHASE_ACTIVE_POWER}.{_PHASE}", f"st4PhaseActivePower.{_PHASE}"), scale=1.0),
    ),
    agent=_AGENT,
)


class ServerTechSentry4Pdu(SnmpPdu):
    """ServerTech Sentry4 (PRO1/PRO2 Smart and Switched CDUs/PDUs) over Sentry4-MIB.

    Outlets are numbered 1..N across the unit's input cords in cord order (cord A's outlets
    first): outlet 4 on a unit whose cord A has 3 outlets is {unit, cord 2, outlet 1}.
    ``identify()``: vendor "ServerTech", st4UnitModel, st4UnitProductSN, st4SystemFirmwareVersion.
    ``outlets()``: st4OutletName, st4OutletState (on 1 / off 2), st4OutletActivePower (W) and
    st4OutletCurrent (hundredths of A); -1 (not available) becomes ``None``.
    ``power_watts()``: sum of the cords' st4InputCordActivePower. ``set_outlet()``: writes
    st4OutletControlAction on(1) / off(2), then polls st4OutletState.
    ``inlet_readings()``: per cord (inlet) its active power, and per phase (pole) voltage,
    current and active power.
    Options: see ``SnmpPdu`` (``device_index`` = st4UnitIndex, A = 1 (default), B = 2, ...).
    """

    MAP = SENTRY4
