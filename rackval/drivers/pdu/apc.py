"""APC PowerNet-MIB rPDU2 objects as an ``SnmpPduMap``, and the ``ApcRpdu2Pdu`` driver.

The generic SNMP PDU driver (``rackval.drivers.pdu.snmp_pdu``) reads these; the simulated agent
(``rackval.sim.snmp_agent``) serves the same map, plus the objects ``_AGENT`` adds (identity
name / location, device properties, the phase table, the command-pending column). Other vendors
(Raritan PDU2-MIB, ServerTech Sentry4-MIB, Eaton EATON-EPDU-MIB) are more ``SnmpPduMap`` instances
like ``APC_RPDU2``.

Sources (tags as in docs/reference/domain.md):
  [V] PowerNet-MIB rev 2023-08-01 via domain.md §1: device properties / status, outlet switched
      status / control, outlet metered status, phase status columns, value codes and units.
  [S] rPDU2IdentTable columns (.26.2.1.<col>.<dev>): Name 3, Location 4, HardwareRev 5,
      FirmwareRev 6, DateOfManufacture 7, ModelNumber 8, SerialNumber 9. Two independent public
      clients agree (a Torrus PowerNet discovery plugin and a pysnmp APC PDU client); not checked
      against the MIB text itself.
  [S] sysObjectID of rPDU2 devices .1.3.6.1.4.1.318.1.3.4.5 (NUT apc-pdu-mib.c).
  [U] rPDU2OutletMeteredStatusPower unit is W (domain.md marks it [U]).
"""

from __future__ import annotations

from rackval.drivers.pdu.snmp_pdu import SnmpPdu
from rackval.drivers.pdu.snmp_pdu_map import (
    AgentFlag,
    AgentObject,
    AgentProfile,
    AgentQuantity,
    Oid,
    OutletCommand,
    Reading,
    SnmpPduMap,
)

APC_ENTERPRISE = "1.3.6.1.4.1.318"
RPDU2 = "1.3.6.1.4.1.318.1.1.26"  # PowerNet-MIB rPDU2 subtree [V]
SYS_OBJECT_ID_RPDU2 = "1.3.6.1.4.1.318.1.3.4.5"  # [S]

# rPDU2IdentTable, index {dev} [S]
IDENT_NAME = f"{RPDU2}.2.1.3"
IDENT_LOCATION = f"{RPDU2}.2.1.4"
IDENT_HARDWARE_REV = f"{RPDU2}.2.1.5"
IDENT_FIRMWARE_REV = f"{RPDU2}.2.1.6"
IDENT_DATE_OF_MANUFACTURE = f"{RPDU2}.2.1.7"
IDENT_MODEL_NUMBER = f"{RPDU2}.2.1.8"
IDENT_SERIAL_NUMBER = f"{RPDU2}.2.1.9"

# rPDU2DevicePropertiesTable / rPDU2DeviceStatusTable, index {dev} [V]
DEVICE_NUM_OUTLETS = f"{RPDU2}.4.2.1.4"
DEVICE_NUM_SWITCHED_OUTLETS = f"{RPDU2}.4.2.1.5"
DEVICE_NUM_METERED_OUTLETS = f"{RPDU2}.4.2.1.6"
DEVICE_NUM_PHASES = f"{RPDU2}.4.2.1.7"
DEVICE_STATUS_POWER = f"{RPDU2}.4.3.1.5"  # hundredths of kW
DEVICE_STATUS_ENERGY = f"{RPDU2}.4.3.1.9"  # tenths of kWh

# rPDU2PhaseStatusTable, index {phase} [V]
PHASE_STATUS_CURRENT = f"{RPDU2}.6.3.1.5"  # tenths of A
PHASE_STATUS_VOLTAGE = f"{RPDU2}.6.3.1.6"  # V (-1 = unsupported)
PHASE_STATUS_POWER = f"{RPDU2}.6.3.1.7"  # hundredths of kW

# rPDU2OutletSwitchedStatusTable / ControlTable, flat outlet index [V]
OUTLET_SWITCHED_STATUS_NAME = f"{RPDU2}.9.2.3.1.3"
OUTLET_SWITCHED_STATUS_STATE = f"{RPDU2}.9.2.3.1.5"  # off(1), on(2)
OUTLET_SWITCHED_STATUS_COMMAND_PENDING = f"{RPDU2}.9.2.3.1.6"  # commandPending 1, none 2, unknown 3
OUTLET_SWITCHED_CONTROL_TABLE = f"{RPDU2}.9.2.4"
OUTLET_SWITCHED_CONTROL_COMMAND = f"{RPDU2}.9.2.4.1.5"

# rPDU2OutletMeteredStatusTable, flat outlet index [V]
OUTLET_METERED_STATUS_NAME = f"{RPDU2}.9.4.3.1.3"
OUTLET_METERED_STATUS_CURRENT = f"{RPDU2}.9.4.3.1.6"  # tenths of A
OUTLET_METERED_STATUS_POWER = f"{RPDU2}.9.4.3.1.7"  # W [U]

# Value codes [V]. StatusState and ControlCommand have OPPOSITE polarity: a GET of the control
# command returns immediateOn(1) for an outlet that is on, while StatusState says on(2).
STATE_OFF = 1
STATE_ON = 2
COMMAND_PENDING = 1
COMMAND_NONE_PENDING = 2
CMD_IMMEDIATE_ON = 1
CMD_IMMEDIATE_OFF = 2
CMD_IMMEDIATE_REBOOT = 3
CMD_DELAYED_ON = 5
CMD_DELAYED_OFF = 6
CMD_DELAYED_REBOOT = 7
CMD_CANCEL_PENDING = 8

_CONTROL = Oid(f"{OUTLET_SWITCHED_CONTROL_COMMAND}.{{outlet}}", "rPDU2OutletSwitchedControlCommand.{outlet}")
_PHASE_STATUS = f"{RPDU2}.6.3.1"

# A typical AP8886 with AOS 7.x. sysDescr [U: format modelled on AOS 7.x cards, not copied from a
# device]; the control column reads back immediateOn(1) for an outlet that is on, immediateOff(2)
# for one that is off (the MIB's opposite polarity to StatusState).
_AGENT = AgentProfile(
    model="AP8886",
    firmware="v7.0.4",
    serial_prefix="5A",
    sys_descr=(
        "APC Web/SNMP Management Card (MB:v4.2.1 PF:{firmware} PN:apc_hw05_aos_{firmware_digits}.bin "
        "AF1:{firmware} AN1:apc_hw05_rpdu2g_{firmware_digits}.bin MN:{model} HR:02 "
        "SN: {serial} MD:01/15/2024) (Embedded PowerNet SNMP Agent SW v2.2 compatible)"
    ),
    sys_object_id=SYS_OBJECT_ID_RPDU2,
    command_reboot=OutletCommand(_CONTROL, CMD_IMMEDIATE_REBOOT),
    objects=(
        AgentObject(Oid(f"{IDENT_NAME}.{{dev}}", "rPDU2IdentName.{dev}"), "{name}"),
        AgentObject(Oid(f"{IDENT_LOCATION}.{{dev}}", "rPDU2IdentLocation.{dev}"), "feed {feed}"),
        AgentObject(Oid(f"{IDENT_HARDWARE_REV}.{{dev}}", "rPDU2IdentHardwareRev.{dev}"), "02"),
        AgentObject(Oid(f"{IDENT_DATE_OF_MANUFACTURE}.{{dev}}", "rPDU2IdentDateOfManufacture.{dev}"), "01/15/2024"),
        AgentObject(
            Oid(f"{DEVICE_NUM_SWITCHED_OUTLETS}.{{dev}}", "rPDU2DevicePropertiesNumSwitchedOutlets.{dev}"),
            AgentQuantity("outlet_count"),
        ),
        AgentObject(
            Oid(f"{DEVICE_NUM_METERED_OUTLETS}.{{dev}}", "rPDU2DevicePropertiesNumMeteredOutlets.{dev}"),
            AgentQuantity("outlet_count"),
        ),
        AgentObject(
            Oid(f"{DEVICE_NUM_PHASES}.{{dev}}", "rPDU2DevicePropertiesNumPhases.{dev}"), AgentQuantity("phase_count")
        ),
        AgentObject(Oid(f"{_PHASE_STATUS}.2.{{pole}}", "rPDU2PhaseStatusModule.{pole}"), 1),
        AgentObject(Oid(f"{_PHASE_STATUS}.3.{{pole}}", "rPDU2PhaseStatusNumber.{pole}"), AgentQuantity("phase")),
        AgentObject(Oid(f"{_PHASE_STATUS}.4.{{pole}}", "rPDU2PhaseStatusLoadState.{pole}"), 2),  # normal(2)
        AgentObject(
            Oid(f"{PHASE_STATUS_CURRENT}.{{pole}}", "rPDU2PhaseStatusCurrent.{pole}"),
            AgentQuantity("phase_current_a", scale=0.1),  # tenths of A
        ),
        AgentObject(
            Oid(f"{PHASE_STATUS_VOLTAGE}.{{pole}}", "rPDU2PhaseStatusVoltage.{pole}"), AgentQuantity("voltage_v")
        ),
        AgentObject(
            Oid(f"{PHASE_STATUS_POWER}.{{pole}}", "rPDU2PhaseStatusPower.{pole}"),
            AgentQuantity("phase_power_w", scale=10.0),  # hundredths of kW
        ),
        AgentObject(
            Oid(
                f"{OUTLET_SWITCHED_STATUS_COMMAND_PENDING}.{{outlet}}",
                "rPDU2OutletSwitchedStatusCommandPending.{outlet}",
            ),
            AgentFlag("reboot_pending", COMMAND_PENDING, COMMAND_NONE_PENDING),
        ),
        AgentObject(
            Oid(f"{OUTLET_METERED_STATUS_NAME}.{{outlet}}", "rPDU2OutletMeteredStatusName.{outlet}"), "{outlet_name}"
        ),
    ),
)

APC_RPDU2 = SnmpPduMap(
    vendor="APC",
    family="APC PowerNet-MIB rPDU2",
    ident_model=Oid(f"{IDENT_MODEL_NUMBER}.{{dev}}", "rPDU2IdentModelNumber.{dev}"),
    ident_serial=Oid(f"{IDENT_SERIAL_NUMBER}.{{dev}}", "rPDU2IdentSerialNumber.{dev}"),
    ident_firmware=Oid(f"{IDENT_FIRMWARE_REV}.{{dev}}", "rPDU2IdentFirmwareRev.{dev}"),
    outlet_count=Oid(f"{DEVICE_NUM_OUTLETS}.{{dev}}", "rPDU2DevicePropertiesNumOutlets.{dev}"),
    device_power_w=Reading(
        Oid(f"{DEVICE_STATUS_POWER}.{{dev}}", "rPDU2DeviceStatusPower.{dev}"), scale=10.0
    ),  # hundredths of kW -> W
    outlet_name=Oid(f"{OUTLET_SWITCHED_STATUS_NAME}.{{outlet}}", "rPDU2OutletSwitchedStatusName.{outlet}"),
    outlet_state=Oid(f"{OUTLET_SWITCHED_STATUS_STATE}.{{outlet}}", "rPDU2OutletSwitchedStatusState.{outlet}"),
    state_on=frozenset({STATE_ON}),
    state_off=frozenset({STATE_OFF}),
    command_on=OutletCommand(_CONTROL, CMD_IMMEDIATE_ON),
    command_off=OutletCommand(_CONTROL, CMD_IMMEDIATE_OFF),
    outlet_power_w=Reading(
        Oid(f"{OUTLET_METERED_STATUS_POWER}.{{outlet}}", "rPDU2OutletMeteredStatusPower.{outlet}"), scale=1.0
    ),
    outlet_current_a=Reading(
        Oid(f"{OUTLET_METERED_STATUS_CURRENT}.{{outlet}}", "rPDU2OutletMeteredStatusCurrent.{outlet}"),
        scale=0.1,
    ),  # tenths of A -> A
    agent=_AGENT,
)


class ApcRpdu2Pdu(SnmpPdu):
    """APC Switched/Metered-by-Outlet Rack PDU (AP86xx/AP88xx, PowerNet-MIB rPDU2 tables).

    ``identify()`` reports vendor "APC" with model, serial and firmware from rPDU2IdentTable;
    ``power_watts()`` is rPDU2DeviceStatusPower (hundredths of kW) in W; ``outlets()`` reads the
    switched-status name/state and metered-status power (W) / current (tenths of A -> A);
    ``set_outlet()`` writes rPDU2OutletSwitchedControlCommand immediateOn(1) / immediateOff(2)
    and polls rPDU2OutletSwitchedStatusState (on = 2, off = 1: the opposite polarity).
    Options: see ``SnmpPdu``.
    """

    MAP = APC_RPDU2
