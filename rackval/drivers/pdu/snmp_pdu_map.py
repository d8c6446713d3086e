"""An SNMP PDU family as data: where it keeps what the driver reads, and what its agent serves.

``SnmpPduMap`` says where a PDU family keeps its identity, outlet names, states, switch commands
and meter readings, with each reading's scale to SI units. The driver
(``rackval.drivers.pdu.snmp_pdu.SnmpPdu``) reads through it; each vendor module
(``rackval.drivers.pdu.apc``, ``raritan``, ``servertech``, ``eaton``) is one map and the driver
class that binds it (``MAP``).

What varies between vendors, and how a map expresses it:

* **Indexing.** OID templates take ``{dev}`` (the PDU's index: APC/Raritan/Sentry4 count from 1,
  Eaton's strappingIndex from 0, see ``first_device_index``), ``{outlet}``, and where a table
  needs them ``{cord}`` (Sentry4 numbers outlets per input cord: ``outlet_cords``), ``{inlet}``
  and ``{pole}`` (inlet / phase tables). Fixed sub-indices (Raritan's sensorType) are literal
  parts of the template.
* **Scaling.** ``Reading.scale`` turns the raw integer into SI units; ``Reading.digits`` names an
  object holding a power-of-ten divisor (Raritan's *SensorDecimalDigits*), read once and cached.
  Negative raw values mean "not available" (Sentry4 and Eaton use -1) and become ``None``.
* **Polarity.** ``state_on`` / ``state_off`` are the settled codes; ``state_on_pending`` /
  ``state_off_pending`` are transitional codes (Eaton pendingOff = still on, pendingOn = still
  off): they report the present physical state but never confirm a switch.
* **Commands.** A switch command is an (OID, value) pair per direction, so Eaton's separate
  On/Off command objects whose written value is a *delay in seconds* (0 = now) fit as data.
* **Totals.** ``device_power_w`` reads one object; without it ``power_watts()`` sums the inlets'
  active power (``inlets``), for MIBs that have no unit total.

What an agent of the family serves beyond that is ``AgentProfile`` (``SnmpPduMap.agent``): a
typical unit's identity, its sysDescr / sysObjectID, the reboot command and what a GET of a
command object returns, the decimal digits it reports, the ASN.1 type of its readings, and the
further objects it serves (``AgentObject``: constants, text from the unit's identity, readings
named in ``AGENT_QUANTITIES``, codes by ``AGENT_CONDITIONS``). The simulated PDU agent
(``rackval.sim.snmp_agent``) serves any map from these, so a new vendor needs no simulator code.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Oid:
    """A numeric OID template and its MIB name template, e.g. "...9.2.3.1.5.{outlet}"."""

    template: str
    label: str

    def at(self, *, dev: int, outlet: int | None = None, **index: int) -> tuple[str, str]:
        """(numeric OID, readable name) for one device / outlet (/ cord, inlet, pole)."""
        return (
            self.template.format(dev=dev, outlet=outlet, **index),
            self.label.format(dev=dev, outlet=outlet, **index),
        )


@dataclass(frozen=True)
class Reading:
    """A numeric object and the factor that turns its raw integer into SI units.

    ``digits``: an object (same index placeholders) holding a count of decimal digits; the value
    is then ``raw * scale / 10**digits`` (Raritan PDU2-MIB). Read once per object, then cached:
    it is configuration, not a measurement.
    """

    oid: Oid
    scale: float
    digits: Oid | None = None


@dataclass(frozen=True)
class OutletCommand:
    """SET ``oid`` to ``value`` to switch an outlet one way."""

    oid: Oid
    value: int


@dataclass(frozen=True)
class OutletCords:
    """Outlets numbered per input cord (Sentry4 {unit, cord, outlet}).

    The driver numbers outlets 1..N across cords in cord order (cord 1's outlets first), so a
    rack file says "outlet 4" whatever the cord layout; templates receive ``{cord}`` and the
    cord-local ``{outlet}``.
    """

    cord_count: Oid  # {dev}
    cord_outlet_count: Oid  # {dev}, {cord}


@dataclass(frozen=True)
class InletMap:
    """Where the inlet (input cord) and per-phase (pole) readings live. ``None``: not metered."""

    count: Oid  # {dev}
    power_w: Reading | None = None  # {dev}, {inlet}
    voltage_v: Reading | None = None  # {dev}, {inlet}
    current_a: Reading | None = None  # {dev}, {inlet}
    pole_count: Oid | None = None  # {dev}, {inlet}
    pole_voltage_v: Reading | None = None  # {dev}, {inlet}, {pole}
    pole_current_a: Reading | None = None  # {dev}, {inlet}, {pole}
    pole_power_w: Reading | None = None  # {dev}, {inlet}, {pole}


# Readings the simulated PDU can show (name -> (unit, meaning)); the unit ("" for counts and
# numbers) selects the decimal digits an agent reports (``AgentProfile.decimal_digits``).
AGENT_QUANTITIES: dict[str, tuple[str, str]] = {
    "total_power_w": ("W", "the PDU's total active power (its outlets plus itself)"),
    "voltage_v": ("V", "the supply voltage, the same at every inlet, phase and outlet"),
    "inlet_current_a": ("A", "the inlet's current: its highest phase current"),
    "phase_power_w": ("W", "active power of phase {pole}"),
    "phase_current_a": ("A", "current of phase {pole}"),
    "outlet_power_w": ("W", "active power of outlet {outlet}"),
    "outlet_current_a": ("A", "current of outlet {outlet}"),
    "outlet_count": ("", "number of outlets"),
    "inlet_count": ("", "number of inlets (input cords): 1"),
    "phase_count": ("", "number of phases (poles) of the inlet: 3"),
    "phase": ("", "the phase number {pole} itself (index columns)"),
}
# Conditions an ``AgentFlag`` shows as one of two codes.
AGENT_CONDITIONS: dict[str, str] = {
    "reboot_pending": "a reboot / cycle command holds outlet {outlet} off for a while",
}
# Fields a text object's template may use: the unit's identity and place, and per outlet its name.
AGENT_TEXT_FIELDS = ("name", "feed", "vendor", "model", "serial", "firmware", "firmware_digits", "outlet_name")


@dataclass(frozen=True)
class AgentQuantity:
    """A reading (one of ``AGENT_QUANTITIES``) in raw units: value / scale (x 10**digits)."""

    name: str
    scale: float = 1.0
    digits: Oid | None = None  # the object holding the decimal digits (served too)


@dataclass(frozen=True)
class AgentFlag:
    """``true`` while a condition (one of ``AGENT_CONDITIONS``) holds, else ``false``."""

    condition: str
    true: int
    false: int


@dataclass(frozen=True)
class AgentObject:
    """One more object a real agent of the family serves, which the driver does not read.

    ``value``: an int (a constant INTEGER), a str (an OCTET STRING template over
    ``AGENT_TEXT_FIELDS``, e.g. "feed {feed}"), an ``AgentQuantity`` or an ``AgentFlag``.
    """

    oid: Oid
    value: int | str | AgentQuantity | AgentFlag


@dataclass(frozen=True)
class AgentProfile:
    """What an agent of the family looks like beyond the objects the driver reads.

    The identity is a typical unit's (the serial is ``serial_prefix`` + digits); ``sys_descr`` is
    a template over ``AGENT_TEXT_FIELDS``. ``command_readback``: what a GET of a command object
    returns (None: the command matching the outlet's present state, for MIBs whose control
    column also reads back the state). ``decimal_digits`` by unit ("A", "V", "W"): what the
    agent reports in the digits objects of its readings. ``unsigned``: readings are Unsigned32.
    """

    model: str
    firmware: str
    serial_prefix: str
    sys_descr: str
    sys_object_id: str
    command_reboot: OutletCommand | None = None
    command_readback: int | None = None
    decimal_digits: dict[str, int] = field(default_factory=dict)
    unsigned: bool = False
    objects: tuple[AgentObject, ...] = ()


@dataclass(frozen=True)
class SnmpPduMap:
    """Where one PDU family keeps what the driver needs. ``None`` readings are not metered."""

    vendor: str
    family: str
    ident_model: Oid
    ident_serial: Oid
    ident_firmware: Oid
    outlet_count: Oid | None  # None when ``outlet_cords`` says how to count
    device_power_w: Reading | None  # None: sum of the inlets' power (``inlets``)
    outlet_name: Oid
    outlet_state: Oid
    state_on: frozenset[int]
    state_off: frozenset[int]
    command_on: OutletCommand
    command_off: OutletCommand
    outlet_power_w: Reading | None = None
    outlet_current_a: Reading | None = None
    ident_vendor: Oid | None = None  # read the manufacturer from the agent; ``vendor`` if empty
    first_device_index: int = 1  # index of the first (or only) PDU; Eaton's strappingIndex is 0
    state_on_pending: frozenset[int] = frozenset()  # physically on, about to switch off
    state_off_pending: frozenset[int] = frozenset()  # physically off, about to switch on
    outlet_cords: OutletCords | None = None
    inlets: InletMap | None = None
    agent: AgentProfile | None = None  # how its agent looks (the simulator serves the map with it)
