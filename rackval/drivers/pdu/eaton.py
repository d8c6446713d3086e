"""Eaton G3/G4 ePDU (EATON-EPDU-MIB) as an ``SnmpPduMap``, and the ``EatonEpduPdu`` driver.

Sources (tags as in docs/reference/domain.md); prefix eatonEpdu = .1.3.6.1.4.1.534.6.6.7:
  [V] MIB text (2023-03-31, as shipped in LibreNMS): units 1, inputs 3, groups 5, outlets 6.
      unitTable .1.2.1.<col>.<strappingIndex>: productName 2, partNumber 3, serialNumber 4,
      firmwareVersion 5, inputCount 20, outletCount 22. strappingIndex is 0 for a unit that
      does not strap (daisy-chain). inputTable .3.1.1: inputVoltageCount 5;
      inputVoltageTable .3.2.1: inputVoltage 3 (mV); inputCurrentTable .3.3.1: inputCurrent 4
      (mA); inputPowerTable .3.4.1: inputWatts 4 (W); inputTotalPowerTable .3.5.1.<strap>.<input>:
      inputTotalWatts 4 (W). Negative values mean "not available".
  [V] via domain.md §1: outletName .6.1.1.3, outletVoltage .6.3.1.2 (mV), outletCurrent .6.4.1.3
      (mA), outletWatts .6.5.1.3 (W), outletControlStatus .6.6.1.2 (off 0, on 1, pendingOff 2,
      pendingOn 3), outletControlOffCmd .6.6.1.3 / OnCmd .6.6.1.4 / RebootCmd .6.6.1.5, all
      indexed {strappingIndex, outletIndex}.
  [U] The per-phase rows of inputVoltageTable, inputCurrentTable and inputPowerTable are read
      with the same row number p = 1..inputVoltageCount; the MIB describes each row by a
      *MeasType column (e.g. inputCurrentTable may have a neutral row), which is not checked.

The on / off commands are separate objects whose written value is a DELAY in seconds
(0 = immediately, -1 = cancel): this driver writes 0. Writing 1 would mean "off in one
second", not "off" — the classic mistake this map exists to avoid.
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

EPDU = "1.3.6.1.4.1.534.6.6.7"  # eatonEpdu [V]

UNIT_PRODUCT_NAME = f"{EPDU}.1.2.1.2"
UNIT_PART_NUMBER = f"{EPDU}.1.2.1.3"
UNIT_SERIAL_NUMBER = f"{EPDU}.1.2.1.4"
UNIT_FIRMWARE_VERSION = f"{EPDU}.1.2.1.5"
UNIT_INPUT_COUNT = f"{EPDU}.1.2.1.20"
UNIT_OUTLET_COUNT = f"{EPDU}.1.2.1.22"
INPUT_VOLTAGE_COUNT = f"{EPDU}.3.1.1.5"
INPUT_VOLTAGE = f"{EPDU}.3.2.1.3"  # mV
INPUT_CURRENT = f"{EPDU}.3.3.1.4"  # mA
INPUT_WATTS = f"{EPDU}.3.4.1.4"  # W
INPUT_TOTAL_WATTS = f"{EPDU}.3.5.1.4"  # W
OUTLET_NAME = f"{EPDU}.6.1.1.3"
OUTLET_VOLTAGE = f"{EPDU}.6.3.1.2"  # mV
OUTLET_CURRENT = f"{EPDU}.6.4.1.3"  # mA
OUTLET_WATTS = f"{EPDU}.6.5.1.3"  # W
OUTLET_CONTROL_STATUS = f"{EPDU}.6.6.1.2"
OUTLET_CONTROL_OFF_CMD = f"{EPDU}.6.6.1.3"
OUTLET_CONTROL_ON_CMD = f"{EPDU}.6.6.1.4"
OUTLET_CONTROL_REBOOT_CMD = f"{EPDU}.6.6.1.5"

STATUS_OFF, STATUS_ON, STATUS_PENDING_OFF, STATUS_PENDING_ON = 0, 1, 2, 3
DELAY_IMMEDIATE = 0  # seconds until the command runs; -1 cancels a pending command
DELAY_CANCEL = -1

_OUTLET = "{dev}.{outlet}"
_INPUT = "{dev}.{inlet}"
_PHASE = "{dev}.{inlet}.{pole}"

# A typical G3 managed ePDU [U: part number, firmware and sysDescr are illustrative, not copied
# from a device; sysObjectID is the eatonEpdu subtree, as G3 units report it]. The command
# objects read back -1 (no command pending) [U]; the reboot command, like on / off, takes a delay.
_AGENT = AgentProfile(
    model="EMA111-10",
    firmware="04.01.0002",
    serial_prefix="EA",
    sys_descr="Eaton ePDU {model}, firmware {firmware} (simulated)",
    sys_object_id=EPDU,
    command_reboot=OutletCommand(
        Oid(f"{OUTLET_CONTROL_REBOOT_CMD}.{_OUTLET}", f"outletControlRebootCmd.{_OUTLET}"), DELAY_IMMEDIATE
    ),
    command_readback=DELAY_CANCEL,
    objects=(
        AgentObject(Oid(f"{UNIT_PRODUCT_NAME}.{{dev}}", "productName.{dev}"), "ePDU G3 Managed {model}"),
        AgentObject(
            Oid(f"{OUTLET_VOLTAGE}.{_OUTLET}", f"outletVoltage.{_OUTLET}"), AgentQuantity("voltage_v", scale=0.001)
        ),
    ),
)

EATON_EPDU = SnmpPduMap(
    vendor="Eaton",
    family="Eaton EATON-EPDU-MIB",
    first_device_index=0,  # strappingIndex of a stand-alone unit
    ident_model=Oid(f"{UNIT_PART_NUMBER}.{{dev}}", "partNumber.{dev}"),
    ident_serial=Oid(f"{UNIT_SERIAL_NUMBER}.{{dev}}", "serialNumber.{dev}"),
    ident_firmware=Oid(f"{UNIT_FIRMWARE_VERSION}.{{dev}}", "firmwareVersion.{dev}"),
    outlet_count=Oid(f"{UNIT_OUTLET_COUNT}.{{dev}}", "outletCount.{dev}"),
    device_power_w=None,  # sum of inputTotalWatts over the inputs
    outlet_name=Oid(f"{OUTLET_NAME}.{_OUTLET}", f"outletName.{_OUTLET}"),
    outlet_state=Oid(f"{OUTLET_CONTROL_STATUS}.{_OUTLET}", f"outletControlStatus.{_OUTLET}"),
    state_on=frozenset({STATUS_ON}),
    state_off=frozenset({STATUS_OFF}),
    state_on_pending=frozenset({STATUS_PENDING_OFF}),  # still on, turning off
    state_off_pending=frozenset({STATUS_PENDING_ON}),  # still off, turning on
    command_on=OutletCommand(
        Oid(f"{OUTLET_CONTROL_ON_CMD}.{_OUTLET}", f"outletControlOnCmd.{_OUTLET}"), DELAY_IMMEDIATE
    ),
    command_off=OutletCommand(
        Oid(f"{OUTLET_CONTROL_OFF_CMD}.{_OUTLET}", f"outletControlOffCmd.{_OUTLET}"), DELAY_IMMEDIATE
    ),
    outlet_power_w=Reading(Oid(f"{OUTLET_WATTS}.{_OUTLET}", f"outletWatts.{_OUTLET}"), scale=1.0),
    outlet_current_a=Reading(Oid(f"{OUTLET_CURRENT}.{_OUTLET}", f"outletCurrent.{_OUTLET}"), scale=0.001),
    inlets=InletMap(
        count=Oid(f"{UNIT_INPUT_COUNT}.{{dev}}", "inputCount.{dev}"),
        power_w=Reading(Oid(f"{INPUT_TOTAL_WATTS}.{_INPUT}", f"inputTotalWatts.{_INPUT}"), scale=1.0),
        pole_count=Oid(f"{INPUT_VOLTAGE_COUNT}.{_INPUT}", f"inputVoltageCount.{_INPUT}"),
        pole_voltage_v=Reading(Oid(f"{INPUT_VOLTAGE}.{_PHASE}", f"inputVoltage.{_PHASE}"), scale=0.001),
        pole_current_a=Reading(Oid(f"{INPUT_CURRENT}.{_PHASE}", f"inputCurrent.{_PHASE}"), scale=0.001),  # [U]
        pole_power_w=Reading(Oid(f"{INPUT_WATTS}.{_PHASE}", f"inputWatts.{_PHASE}"), scale=1.0),  # [U]
    ),
    agent=_AGENT,
)


class EatonEpduPdu(SnmpPdu):
    """Eaton switched ePDU (G3/G4, EATON-EPDU-MIB).

    ``identify()``: vendor "Eaton", model = partNumber (the orderable SKU, like APC's model
    number; productName is the marketing name), serialNumber, firmwareVersion — all in the
    vendor MIB's unitTable. ``outlets()``: outletName, outletControlStatus (on 1 / off 0;
    pendingOff 2 reports on, pendingOn 3 reports off), outletWatts (W), outletCurrent (mA -> A);
    negative = not available -> ``None``. ``power_watts()``: sum of inputTotalWatts.
    ``set_outlet()``: writes 0 (= no delay) to outletControlOnCmd / outletControlOffCmd, then
    polls until the status settles (a pending state does not confirm).
    ``inlet_readings()``: per input its total watts, and per phase row voltage (mV -> V),
    current (mA -> A) and watts.
    Options: see ``SnmpPdu`` (``device_index`` = strappingIndex, default 0).
    """

    MAP = EATON_EPDU
