"""One SNMP PDU driver for every vendor: the vendor is a table of OIDs, not a class tree.

``SnmpPdu`` speaks through ``rackval.drivers.transport.snmp.SnmpTransport`` using an
``SnmpPduMap`` (``rackval.drivers.pdu.snmp_pdu_map``: where a PDU family keeps its identity,
outlet names, states, switch commands and meter readings, with each reading's scale to SI units,
and how the map expresses what varies between vendors). Each vendor module binds its map to a
driver class by setting ``MAP``: ``rackval.drivers.pdu.apc`` (APC PowerNet-MIB rPDU2),
``rackval.drivers.pdu.raritan`` (Raritan PDU2-MIB), ``rackval.drivers.pdu.servertech`` (ServerTech
Sentry4-MIB) and ``rackval.drivers.pdu.eaton`` (EATON-EPDU-MIB). The simulator finds the maps it
can serve through the registered drivers' ``MAP``.

Absent is not failed: outlet state and outlet metering are read in separate requests, so a PDU
without outlet meters (APC's AP79xx switched rPDU2 units answer noSuchInstance for
rPDU2OutletMeteredStatusPower) still reports and switches every outlet, with ``power_w`` /
``current_a`` None. Any optional object a unit lacks (a meter column, an identity field, an
outlet name, a decimal-digits object) becomes None / "" for the rows that lack it, never an
error; a meter column the unit lacks for every outlet is not asked for again until the next
name refresh. Only the outlet state is required of ``outlets()``. A total the unit cannot give
(no total object, or its "-1 = not available") raises ``NotAvailable``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import ClassVar

from rackval.core.errors import ConfigError, DeviceError, DeviceProtocolError, DeviceTimeout, NotAvailable
from rackval.drivers.capabilities import Device, Identity, OutletReading, OutletSwitch, PowerMeter
from rackval.drivers.config import DeviceConfig
from rackval.drivers.options import SnmpPduOptions, parse_options
from rackval.drivers.pdu.snmp_pdu_map import Oid, Reading, SnmpPduMap
from rackval.drivers.transport.snmp import NotText, SnmpTransport, octet_text


@dataclass(frozen=True)
class InletReading:
    """One inlet (``pole`` None) or one of its phases / poles, in SI units; None: not available."""

    inlet: int
    pole: int | None
    voltage_v: float | None
    current_a: float | None
    power_w: float | None


NAME_REFRESH_EVERY = 60


class SnmpPdu(Device, PowerMeter, OutletSwitch):
    """A switched, metered PDU over SNMP, described by an ``SnmpPduMap``.

    Implements Device, PowerMeter and OutletSwitch; ``inlet_readings()`` adds per-inlet and
    per-phase readings where the map has them.

    Options (``config.options``):
      * ``device_index`` (int, default the map's first index: 1, or 0 for Eaton): the PDU's index
        in the vendor tables (daisy chains / strapping).
      * ``confirm_timeout_s`` (float, default 10): how long ``set_outlet`` polls the outlet state
        after the command before it gives up (PDUs sequence outlets, so switching is not instant).
      * ``poll_interval_s`` (float, default 0.25): pause between those state polls.
      * ``max_oids_per_request`` (int, default 32): var-binds per GET; small agents reject big PDUs.
      * ``retries`` (int, default 1): passed to the SNMP transport.

    A vendor's driver class sets ``MAP``; ``pdu_map`` overrides it (one-off maps, tests).
    """

    MAP: ClassVar[SnmpPduMap | None] = None

    options_model = SnmpPduOptions

    def __init__(self, config: DeviceConfig, pdu_map: SnmpPduMap | None = None) -> None:
        if pdu_map is None:
            pdu_map = self.MAP
        if pdu_map is None:
            raise TypeError(f"{type(self).__name__} has no SnmpPduMap: set MAP or pass pdu_map")
        self.config = config
        self.name = config.name
        self.map = pdu_map
        opts = parse_options(self.options_model, config.options, config.name)
        self.device_index = pdu_map.first_device_index if opts.device_index is None else opts.device_index
        self.confirm_timeout_s = opts.confirm_timeout_s
        self.poll_interval_s = opts.poll_interval_s
        self.max_oids = opts.max_oids_per_request
        if self.device_index < pdu_map.first_device_index:
            raise ConfigError(
                f"device {config.name}: option 'device_index': must be at least {pdu_map.first_device_index} "
                f"for this PDU family, got {self.device_index}"
            )
        self._snmp = SnmpTransport(config)
        self._outlet_count: int | None = None
        self._outlet_index: list[dict[str, int]] | None = None  # flat outlet n-1 -> template index
        self._digits: dict[str, int | None] = {}  # decimal-digits OID -> value (None: absent), read once
        # Outlet names are labels an operator sets, not telemetry: read with the first outlets()
        # call and again every NAME_REFRESH_EVERY calls, so a 1 Hz poll does not fetch them each time.
        self._names: dict[int, str] = {}
        self._outlet_calls = 0
        self._absent_columns: set[str] = set()  # outlet meter columns ("power", "current") the unit lacks

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, address={self.config.address!r})"

    # ---- Device ----------------------------------------------------------------------------------
    def identify(self) -> Identity:
        m, dev = self.map, self.device_index
        fields = {"model": m.ident_model.at(dev=dev), "serial": m.ident_serial.at(dev=dev),
                  "firmware": m.ident_firmware.at(dev=dev)}  # fmt: skip
        if m.ident_vendor is not None:
            fields["vendor"] = m.ident_vendor.at(dev=dev)
        values = self._get({oid: label for oid, label in fields.values()}, "read identity", missing_ok=True)

        def text(key: str) -> str:  # a field the unit does not have is "" (Identity's rule)
            oid, label = fields.get(key, (None, ""))
            return self._text(values[oid], label, "read identity").strip() if oid in values else ""

        return Identity(vendor=text("vendor") or m.vendor, model=text("model"), serial=text("serial"),
                        firmware=text("firmware"))  # fmt: skip

    def close(self) -> None:
        self._snmp.close()

    # ---- PowerMeter ------------------------------------------------------------------------------
    def power_watts(self) -> float:
        """Total active power of the PDU (its outlets plus its own draw), in W.

        From the map's unit-total object, or else the sum of every inlet's active power.
        """
        reading = self.map.device_power_w
        if reading is None:
            return self._inlet_power_sum()
        oid, label = reading.oid.at(dev=self.device_index)
        operation = f"read total power ({label})"
        raw = self._get({oid: label}, operation, missing_ok=True).get(oid)
        watts = None if raw is None else self._scaled(raw, reading.scale, label, operation)
        if watts is not None:
            return watts
        if self.map.inlets is not None and self.map.inlets.power_w is not None:
            return self._inlet_power_sum()
        said = "the agent does not have it" if raw is None else f"it reads {raw} (not available)"
        raise NotAvailable(self.name, self.config.address, operation, f"no total power on this device: {said}")

    # ---- OutletSwitch ----------------------------------------------------------------------------
    def outlet_count(self) -> int:
        """Number of outlets, read once: it does not change while the PDU runs."""
        if self._outlet_count is None:
            self._outlet_index = self._read_outlet_layout()
            self._outlet_count = len(self._outlet_index)
        return self._outlet_count

    def outlets(self) -> list[OutletReading]:
        """Every outlet's name, switch state, power (W) and current (A), in outlet order.

        The states are one request (required: a unit that lacks them is not an OutletSwitch); the
        names and meters another, in which what the unit lacks is None (meters) or "" (names).
        """
        m = self.map
        count = self.outlet_count()
        if self._outlet_calls % NAME_REFRESH_EVERY == 0:
            self._names = {}
            self._absent_columns = set()  # look again: a meter module may have been fitted
        self._outlet_calls += 1
        operation = f"read {count} outlets ({m.family} outlet status)"
        outlets = range(1, count + 1)
        states = {n: self._at(m.outlet_state, n) for n in outlets}
        state_values = self._get(dict(states.values()), operation)
        readings = {key: r for key, r in (("power", m.outlet_power_w), ("current", m.outlet_current_a))
                    if r is not None and key not in self._absent_columns}  # fmt: skip
        optional: dict[tuple[int, str], tuple[str, str]] = {
            (n, key): self._at(r.oid, n) for n in outlets for key, r in readings.items()
        }
        if not self._names:
            optional.update({(n, "name"): self._at(m.outlet_name, n) for n in outlets})
        self._load_digits([(r, self._index(n)) for n in outlets for r in readings.values()], operation)
        values = self._get(dict(optional.values()), f"{operation}: names and meters", missing_ok=True)
        if (1, "name") in optional:
            name_oids = {n: optional[(n, "name")] for n in outlets}
            self._names = {n: self._text(values[oid], label, operation).strip() if oid in values else ""
                           for n, (oid, label) in name_oids.items()}  # fmt: skip
        for key in readings:
            if not any(optional[(n, key)][0] in values for n in outlets):
                self._absent_columns.add(key)  # the unit has no such meter on any outlet
        result = []
        for n in outlets:
            scaled: dict[str, float | None] = {"power": None, "current": None}
            for key, reading in readings.items():
                oid, label = optional[(n, key)]
                scale = self._scale_of(reading, self._index(n))
                if oid in values and scale is not None:
                    scaled[key] = self._scaled(values[oid], scale, label, operation)
            state_oid, state_label = states[n]
            on = self._state(state_values[state_oid], state_label, operation)
            result.append(OutletReading(n, self._names[n], on, power_w=scaled["power"], current_a=scaled["current"]))
        return result

    def set_outlet(self, outlet: int, on: bool) -> None:
        """Switch one outlet, then poll its state until it settles there (PDUs may sequence outlets).

        A transitional state (Eaton pendingOff / pendingOn) does not confirm: polling goes on
        until the settled code. Destructive: callers go through the harness's safety gate.
        """
        verb = "on" if on else "off"
        operation = f"switch outlet {outlet} {verb}"
        count = self.outlet_count()
        if not isinstance(outlet, int) or isinstance(outlet, bool) or not 1 <= outlet <= count:
            raise DeviceError(self.name, self.config.address, operation, f"no such outlet (PDU has 1..{count})")
        command = self.map.command_on if on else self.map.command_off
        cmd_oid, cmd_label = self._at(command.oid, outlet)
        self._snmp.set(cmd_oid, command.value, operation=f"{operation} ({cmd_label} = {command.value})")
        state_oid, state_label = self._at(self.map.outlet_state, outlet)
        settled = self.map.state_on if on else self.map.state_off
        poll_op = f"{operation}: confirm {state_label}"
        deadline = time.monotonic() + self.confirm_timeout_s
        while True:
            raw = self._get({state_oid: state_label}, poll_op)[state_oid]
            now_on = self._state(raw, state_label, poll_op)
            if raw in settled:
                return
            if time.monotonic() >= deadline:
                still = ("on" if now_on else "off") + (" (switch pending)" if raw not in self._settled() else "")
                raise DeviceTimeout(
                    self.name,
                    self.config.address,
                    operation,
                    f"{state_label} still reports {still} (raw {raw!r}) {self.confirm_timeout_s:g} s "
                    "after the command was accepted",
                )
            time.sleep(min(self.poll_interval_s, max(deadline - time.monotonic(), 0.0)))

    # ---- inlets / phases -------------------------------------------------------------------------
    def inlet_readings(self) -> list[InletReading]:
        """Each inlet's totals (``pole`` None), followed by its per-phase (pole) readings.

        Empty when the map has no inlet tables. Counts are read on every call (cheap, and a
        hot-swapped inlet module would change them).
        """
        inlets = self.map.inlets
        if inlets is None:
            return []
        dev = self.device_index
        operation = f"read inlets ({self.map.family})"
        n_inlets = self._count(inlets.count, {}, operation)
        poles: dict[int, int] = {}
        if inlets.pole_count is not None:
            for i in range(1, n_inlets + 1):
                poles[i] = self._count(inlets.pole_count, {"inlet": i}, operation, allow_zero=True, absent=0)
        rows: list[tuple[int, int | None, dict[str, int]]] = []
        for i in range(1, n_inlets + 1):
            rows.append((i, None, {"inlet": i}))
            rows.extend((i, p, {"inlet": i, "pole": p}) for p in range(1, poles.get(i, 0) + 1))
        plan: list[tuple[int, int | None, str, Reading, dict[str, int]]] = []
        for i, pole, index in rows:
            kinds = (
                {"voltage": inlets.voltage_v, "current": inlets.current_a, "power": inlets.power_w}
                if pole is None
                else {"voltage": inlets.pole_voltage_v, "current": inlets.pole_current_a, "power": inlets.pole_power_w}
            )
            plan.extend((i, pole, kind, r, index) for kind, r in kinds.items() if r is not None)
        self._load_digits([(r, index) for _, _, _, r, index in plan], operation)
        wanted = {(i, pole, kind): r.oid.at(dev=dev, **index) for i, pole, kind, r, index in plan}
        values = self._get({oid: label for oid, label in wanted.values()}, operation, missing_ok=True)
        result = []
        for i, pole, _index in rows:
            got: dict[str, float | None] = {"voltage": None, "current": None, "power": None}
            for pi, pp, kind, reading, pindex in plan:
                if (pi, pp) != (i, pole):
                    continue
                oid, label = wanted[(pi, pp, kind)]
                scale = self._scale_of(reading, pindex)
                if oid in values and scale is not None:  # what the unit lacks stays None
                    got[kind] = self._scaled(values[oid], scale, label, operation)
            result.append(InletReading(i, pole, got["voltage"], got["current"], got["power"]))
        return result

    # ---- internals -------------------------------------------------------------------------------
    def _settled(self) -> frozenset[int]:
        return self.map.state_on | self.map.state_off

    def _index(self, outlet: int) -> dict[str, int]:
        """Template index of flat outlet ``outlet`` ({outlet} or {cord, outlet})."""
        self.outlet_count()
        assert self._outlet_index is not None
        return self._outlet_index[outlet - 1]

    def _at(self, oid: Oid, outlet: int) -> tuple[str, str]:
        return oid.at(dev=self.device_index, **self._index(outlet))

    def _read_outlet_layout(self) -> list[dict[str, int]]:
        cords = self.map.outlet_cords
        if cords is None:
            assert self.map.outlet_count is not None, "map needs outlet_count or outlet_cords"
            label = self.map.outlet_count.at(dev=self.device_index)[1]
            count = self._count(self.map.outlet_count, {}, f"read outlet count ({label})")
            return [{"outlet": n} for n in range(1, count + 1)]
        operation = "read outlet layout (outlets per input cord)"
        n_cords = self._count(cords.cord_count, {}, operation)
        layout = []
        for cord in range(1, n_cords + 1):
            per_cord = self._count(cords.cord_outlet_count, {"cord": cord}, operation, allow_zero=True)
            layout.extend({"cord": cord, "outlet": n} for n in range(1, per_cord + 1))
        if not layout or len(layout) > 1000:
            detail = f"implausible outlet count {len(layout)} over {n_cords} cord(s)"
            raise DeviceProtocolError(self.name, self.config.address, operation, detail)
        return layout

    def _count(
        self, oid_t: Oid, index: dict[str, int], operation: str, *, allow_zero: bool = False, absent: int | None = None
    ) -> int:
        """A count object; one the unit lacks is ``absent``, or NotAvailable when None."""
        oid, label = oid_t.at(dev=self.device_index, **index)
        raw = self._get({oid: label}, operation, missing_ok=True).get(oid)
        if raw is None:
            if absent is not None:
                return absent
            raise NotAvailable(self.name, self.config.address, operation, f"the agent does not have {label}")
        low = 0 if allow_zero else 1
        if not isinstance(raw, int) or not low <= raw <= 1000:
            detail = f"implausible count {raw!r} in {label}"
            raise DeviceProtocolError(self.name, self.config.address, operation, detail)
        return raw

    def _digits_oid(self, reading: Reading, index: dict[str, int]) -> tuple[str, str] | None:
        if reading.digits is None:
            return None
        return reading.digits.at(dev=self.device_index, **index)

    def _load_digits(self, needs: list[tuple[Reading, dict[str, int]]], operation: str) -> None:
        """Read the decimal-digit objects not read yet, in one batched GET."""
        missing: dict[str, str] = {}
        for reading, index in needs:
            at = self._digits_oid(reading, index)
            if at is not None and at[0] not in self._digits:
                missing[at[0]] = at[1]
        if not missing:
            return
        values = self._get(missing, f"{operation}: read decimal digits", missing_ok=True)
        for oid, raw in values.items():
            if not isinstance(raw, int) or not 0 <= raw <= 9:
                detail = f"{missing.get(oid, oid)} is not a decimal-digit count: {raw!r}"
                raise DeviceProtocolError(self.name, self.config.address, operation, detail)
        self._digits.update({oid: values.get(oid) for oid in missing})  # None: the unit lacks it

    def _scale_of(self, reading: Reading, index: dict[str, int]) -> float | None:
        """The reading's factor to SI units; None when its decimal-digits object is absent (unknown scale)."""
        at = self._digits_oid(reading, index)
        if at is None:
            return reading.scale
        digits = self._digits.get(at[0])
        return None if digits is None else reading.scale / 10**digits

    def _inlet_power_sum(self) -> float:
        inlets = self.map.inlets
        operation = "read total power (sum of inlet active power)"
        if inlets is None or inlets.power_w is None:
            raise NotAvailable(self.name, self.config.address, operation, f"{self.map.family} has no power object")
        n_inlets = self._count(inlets.count, {}, operation)
        reading = inlets.power_w
        indices = [{"inlet": i} for i in range(1, n_inlets + 1)]
        self._load_digits([(reading, index) for index in indices], operation)
        wanted = [reading.oid.at(dev=self.device_index, **index) for index in indices]
        values = self._get(dict(wanted), operation, missing_ok=True)
        total = 0.0
        for (oid, label), index in zip(wanted, indices, strict=True):
            scale = self._scale_of(reading, index)
            watts = None if oid not in values or scale is None else self._scaled(values[oid], scale, label, operation)
            if watts is None:  # a sum without one inlet would be a wrong total, not a smaller one
                raise NotAvailable(self.name, self.config.address, operation, f"{label} is not available")
            total += watts
        return round(total, 9)

    def _get(self, oid_labels: dict[str, str], operation: str, *, missing_ok: bool = False) -> dict[str, object]:
        """GET in chunks of ``max_oids_per_request``; errors name the operation and the objects.

        ``missing_ok``: objects the agent does not have are left out of the result (optional columns).
        """
        oids = list(oid_labels)
        result: dict[str, object] = {}
        for start in range(0, len(oids), self.max_oids):
            chunk = oids[start : start + self.max_oids]
            result.update(self._snmp.get(chunk, operation=operation, labels=oid_labels, missing_ok=missing_ok))
        return result

    def _text(self, raw: object, label: str, operation: str) -> str:
        """An OCTET STRING object as text; a number where text belongs is a protocol error."""
        try:
            return octet_text(raw, label)
        except NotText as exc:
            raise DeviceProtocolError(self.name, self.config.address, operation, str(exc)) from None

    def _state(self, raw: object, label: str, operation: str) -> bool:
        """The outlet's present physical state: settled or transitional codes both answer."""
        m = self.map
        if raw in m.state_on or raw in m.state_on_pending:
            return True
        if raw in m.state_off or raw in m.state_off_pending:
            return False
        raise DeviceProtocolError(self.name, self.config.address, operation, f"{label} has unexpected value {raw!r}")

    def _scaled(self, raw: object, scale: float, label: str, operation: str) -> float | None:
        if not isinstance(raw, int):
            raise DeviceProtocolError(self.name, self.config.address, operation, f"{label} is not a number: {raw!r}")
        if raw < 0:  # vendors report -1 for "not available"
            return None
        return round(raw * scale, 9)  # 24 * 0.1 -> 2.4, not 2.4000000000000004
