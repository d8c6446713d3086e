"""One SNMP PDU driver for every vendor: the vendor is a table of OIDs, not a class tree.

``SnmpPduMap`` says where a PDU family keeps its identity, outlet names, states, switch commands
and meter readings, with each reading's scale to SI units. ``SnmpPdu`` speaks through
``drivers.transport.snmp.SnmpTransport`` using such a map; ``ApcRpdu2Pdu`` binds the APC
PowerNet-MIB rPDU2 map (``drivers.pdu.apc``). Raritan, ServerTech or Eaton become further maps
(their OIDs are in domain.md §1): indices are templates with ``{dev}`` and ``{outlet}``, and a
switch command is an (OID, value) pair per direction, which also covers Eaton's separate
On/Off command objects.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from drivers.config import DeviceConfig
from drivers.errors import ConfigError, DeviceError, DeviceProtocolError, DeviceTimeout
from drivers.protocols import Identity, OutletReading
from drivers.transport.snmp import SnmpTransport


@dataclass(frozen=True)
class Oid:
    """A numeric OID template and its MIB name template, e.g. "...9.2.3.1.5.{outlet}"."""

    template: str
    label: str

    def at(self, *, dev: int, outlet: int | None = None) -> tuple[str, str]:
        """(numeric OID, readable name) for one device / outlet."""
        return (
            self.template.format(dev=dev, outlet=outlet),
            self.label.format(dev=dev, outlet=outlet),
        )


@dataclass(frozen=True)
class Reading:
    """A numeric object and the factor that turns its raw integer into SI units."""

    oid: Oid
    scale: float


@dataclass(frozen=True)
class OutletCommand:
    """SET ``oid`` to ``value`` to switch an outlet one way."""

    oid: Oid
    value: int


@dataclass(frozen=True)
class SnmpPduMap:
    """Where one PDU family keeps what the driver needs. ``None`` readings are not metered."""

    vendor: str
    family: str
    ident_model: Oid
    ident_serial: Oid
    ident_firmware: Oid
    outlet_count: Oid
    device_power_w: Reading
    outlet_name: Oid
    outlet_state: Oid
    state_on: frozenset[int]
    state_off: frozenset[int]
    command_on: OutletCommand
    command_off: OutletCommand
    outlet_power_w: Reading | None = None
    outlet_current_a: Reading | None = None


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


class SnmpPdu:
    """A switched, metered PDU over SNMP, described by an ``SnmpPduMap``.

    Implements Device, PowerMeter and OutletSwitch.

    Options (``config.options``):
      * ``device_index`` (int, default 1): the PDU's index in the vendor tables (daisy chains).
      * ``confirm_timeout_s`` (float, default 10): how long ``set_outlet`` polls the outlet state
        after the command before it gives up (PDUs sequence outlets, so switching is not instant).
      * ``poll_interval_s`` (float, default 0.25): pause between those state polls.
      * ``max_oids_per_request`` (int, default 32): var-binds per GET; small agents reject big PDUs.
      * ``retries`` (int, default 1): passed to the SNMP transport.
    """

    def __init__(self, config: DeviceConfig, pdu_map: SnmpPduMap) -> None:
        self.config = config
        self.name = config.name
        self.map = pdu_map
        opts = config.options
        try:
            self.device_index = int(opts.get("device_index", 1))
            self.confirm_timeout_s = float(opts.get("confirm_timeout_s", 10.0))
            self.poll_interval_s = float(opts.get("poll_interval_s", 0.25))
            self.max_oids = int(opts.get("max_oids_per_request", 32))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{config.name}: bad PDU driver option: {exc}") from exc
        if self.device_index < 1 or self.max_oids < 1 or self.confirm_timeout_s < 0 or self.poll_interval_s <= 0:
            raise ConfigError(
                f"{config.name}: device_index and max_oids_per_request must be >= 1, "
                "confirm_timeout_s >= 0, poll_interval_s > 0"
            )
        self._snmp = SnmpTransport(config)
        self._outlet_count: int | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, address={self.config.address!r})"

    # ---- Device ----------------------------------------------------------------------------------
    def identify(self) -> Identity:
        m, dev = self.map, self.device_index
        fields = {"model": m.ident_model.at(dev=dev), "serial": m.ident_serial.at(dev=dev),
                  "firmware": m.ident_firmware.at(dev=dev)}  # fmt: skip
        values = self._get({oid: label for oid, label in fields.values()}, "read identity")
        return Identity(
            vendor=m.vendor,
            model=_text(values[fields["model"][0]]).strip(),
            serial=_text(values[fields["serial"][0]]).strip(),
            firmware=_text(values[fields["firmware"][0]]).strip(),
        )

    def close(self) -> None:
        self._snmp.close()

    # ---- PowerMeter ------------------------------------------------------------------------------
    def power_watts(self) -> float:
        """Total active power of the PDU (its outlets plus its own draw), in W."""
        oid, label = self.map.device_power_w.oid.at(dev=self.device_index)
        operation = f"read total power ({label})"
        raw = self._get({oid: label}, operation)[oid]
        watts = self._scaled(raw, self.map.device_power_w.scale, label, operation, allow_na=False)
        assert watts is not None  # allow_na=False raises instead
        return watts

    # ---- OutletSwitch ----------------------------------------------------------------------------
    def outlet_count(self) -> int:
        """Number of outlets, read once: it does not change while the PDU runs."""
        if self._outlet_count is None:
            oid, label = self.map.outlet_count.at(dev=self.device_index)
            operation = f"read outlet count ({label})"
            raw = self._get({oid: label}, operation)[oid]
            if not isinstance(raw, int) or not 0 < raw <= 1000:
                detail = f"implausible outlet count {raw!r}"
                raise DeviceProtocolError(self.name, self.config.address, operation, detail)
            self._outlet_count = raw
        return self._outlet_count

    def outlets(self) -> list[OutletReading]:
        """Every outlet's name, switch state, power (W) and current (A), in outlet order."""
        m, dev = self.map, self.device_index
        count = self.outlet_count()
        columns: dict[str, Oid] = {"name": m.outlet_name, "state": m.outlet_state}
        if m.outlet_power_w is not None:
            columns["power"] = m.outlet_power_w.oid
        if m.outlet_current_a is not None:
            columns["current"] = m.outlet_current_a.oid
        wanted = {(n, key): col.at(dev=dev, outlet=n) for n in range(1, count + 1) for key, col in columns.items()}
        operation = f"read {count} outlets ({m.family} outlet status)"
        values = self._get({oid: label for oid, label in wanted.values()}, operation)
        readings = []
        for n in range(1, count + 1):
            state_oid, state_label = wanted[(n, "state")]
            power = current = None
            if m.outlet_power_w is not None:
                oid, label = wanted[(n, "power")]
                power = self._scaled(values[oid], m.outlet_power_w.scale, label, operation)
            if m.outlet_current_a is not None:
                oid, label = wanted[(n, "current")]
                current = self._scaled(values[oid], m.outlet_current_a.scale, label, operation)
            readings.append(
                OutletReading(
                    outlet=n,
                    name=_text(values[wanted[(n, "name")][0]]).strip(),
                    on=self._state(values[state_oid], state_label, operation),
                    power_w=power,
                    current_a=current,
                )
            )
        return readings

    def set_outlet(self, outlet: int, on: bool) -> None:
        """Switch one outlet, then poll its state until it agrees (PDUs may sequence outlets).

        Destructive: callers go through the harness's safety gate.
        """
        verb = "on" if on else "off"
        operation = f"switch outlet {outlet} {verb}"
        count = self.outlet_count()
        if not isinstance(outlet, int) or isinstance(outlet, bool) or not 1 <= outlet <= count:
            raise DeviceError(self.name, self.config.address, operation, f"no such outlet (PDU has 1..{count})")
        command = self.map.command_on if on else self.map.command_off
        cmd_oid, cmd_label = command.oid.at(dev=self.device_index, outlet=outlet)
        self._snmp.set(cmd_oid, command.value, operation=f"{operation} ({cmd_label} = {command.value})")
        state_oid, state_label = self.map.outlet_state.at(dev=self.device_index, outlet=outlet)
        poll_op = f"{operation}: confirm {state_label}"
        deadline = time.monotonic() + self.confirm_timeout_s
        while True:
            raw = self._get({state_oid: state_label}, poll_op)[state_oid]
            if self._state(raw, state_label, poll_op) == on:
                return
            if time.monotonic() >= deadline:
                raise DeviceTimeout(
                    self.name,
                    self.config.address,
                    operation,
                    f"{state_label} still reports {'off' if on else 'on'} {self.confirm_timeout_s:g} s "
                    "after the command was accepted",
                )
            time.sleep(min(self.poll_interval_s, max(deadline - time.monotonic(), 0.0)))

    # ---- internals -------------------------------------------------------------------------------
    def _get(self, oid_labels: dict[str, str], operation: str) -> dict[str, object]:
        """GET in chunks of ``max_oids_per_request``; errors name the operation and the objects."""
        oids = list(oid_labels)
        result: dict[str, object] = {}
        for start in range(0, len(oids), self.max_oids):
            chunk = oids[start : start + self.max_oids]
            result.update(self._snmp.get(chunk, operation=operation, labels=oid_labels))
        return result

    def _state(self, raw: object, label: str, operation: str) -> bool:
        if raw in self.map.state_on:
            return True
        if raw in self.map.state_off:
            return False
        raise DeviceProtocolError(self.name, self.config.address, operation, f"{label} has unexpected value {raw!r}")

    def _scaled(self, raw: object, scale: float, label: str, operation: str, *, allow_na: bool = True) -> float | None:
        if not isinstance(raw, int):
            raise DeviceProtocolError(self.name, self.config.address, operation, f"{label} is not a number: {raw!r}")
        if raw < 0:  # vendors report -1 for "not available"
            if allow_na:
                return None
            raise DeviceProtocolError(self.name, self.config.address, operation, f"{label} is unavailable ({raw})")
        return round(raw * scale, 9)  # 24 * 0.1 -> 2.4, not 2.4000000000000004


class ApcRpdu2Pdu(SnmpPdu):
    """APC Switched/Metered-by-Outlet Rack PDU (AP86xx/AP88xx, PowerNet-MIB rPDU2 tables).

    ``identify()`` reports vendor "APC" with model, serial and firmware from rPDU2IdentTable;
    ``power_watts()`` is rPDU2DeviceStatusPower (hundredths of kW) in W; ``outlets()`` reads the
    switched-status name/state and metered-status power (W) / current (tenths of A -> A);
    ``set_outlet()`` writes rPDU2OutletSwitchedControlCommand immediateOn(1) / immediateOff(2)
    and polls rPDU2OutletSwitchedStatusState (on = 2, off = 1: the opposite polarity).
    Options: see ``SnmpPdu``.
    """

    def __init__(self, config: DeviceConfig) -> None:
        from drivers.pdu.apc import APC_RPDU2  # here, not at the top: apc.py imports this module

        super().__init__(config, APC_RPDU2)
