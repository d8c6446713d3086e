"""A power shelf over DMTF Redfish: ``PowerEquipment/PowerShelves`` and its chassis ``PowerSubsystem``.

A power shelf (rectifiers turning AC feeds into a DC busbar, with battery backup units) is a
PowerDistribution resource of type PowerShelf plus the PowerSupplies and Batteries of its
chassis. What this driver reads [V: DMTF's public-power-shelf mockup; U: Batteries, which the
mockup does not have, per the Battery / BatteryMetrics schemas]:

* ``/redfish/v1/PowerEquipment/PowerShelves/{id}``: identity; ``Mains`` (the AC feeds: each
  circuit's ``Voltage``, ``CurrentAmps``, ``PowerWatts``, ``FrequencyHz`` readings,
  ``PowerState`` or ``BreakerState``); ``Branches`` / ``Subfeeds`` (the DC output: the first
  circuit whose ``VoltageType`` is DC); ``Metrics`` (``PowerWatts``: the shelf's input power);
  ``Links.Chassis``.
* the chassis ``PowerSubsystem``: ``PowerSupplyRedundancy``, ``PowerSupplies`` (each PSU's
  Status, ``LineInputStatus``, ``PowerCapacityWatts``, ``OutputRails`` and its ``Metrics``:
  ``InputPowerWatts``, ``OutputPowerWatts``, ``RailVoltage[]``, ``RailCurrentAmps[]`` of the
  DC bus rail), ``Batteries`` [U] (``ChargeState``, ``StateOfHealthPercent`` and the Metrics'
  ``ChargePercent``, ``StoredEnergyWattHours``).

The mockup's oddities are the device's, read as such: its chassis links ``PowerSubsystem`` to
the Sensors collection (the driver then uses the canonical ``{chassis}/PowerSubsystem``), its
PowerSupplies collection lists Bay3 twice and leaves Bay2 out (the driver reads each PSU once,
adding those the redundancy group names), and its Metrics cite sensors that do not exist (the
driver reads the excerpts' own readings, never the DataSourceUri).

Efficiency is output / input power when the PSU reports both (``efficiency_measured`` False: a
ratio, not a meter). A battery's holdup is stored energy / its share of the DC output power
(the load split evenly over the batteries), marked ``holdup_estimated``.

Controls (through the safety gate): ``set_rectifier`` posts ``PowerSupply.Reset``
{"ResetType": "On" | "ForceOff"}; ``set_feed`` posts ``Circuit.BreakerControl`` {"PowerState":
"On" | "Off"} to a Mains circuit; a PSU or feed without the action is refused unsent.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from rackval.core.errors import DeviceError, NotAvailable, protocol_errors
from rackval.drivers.capabilities import (
    BatteryState,
    DcOutput,
    Device,
    FeedReading,
    PowerMeter,
    PowerShelf,
    RectifierState,
    RedundancyGroup,
    Sensors,
    ShelfControl,
)
from rackval.drivers.config import DeviceConfig
from rackval.drivers.cooling.redfish_payloads import redundancy
from rackval.drivers.options import RedfishPowerShelfOptions, parse_options
from rackval.drivers.transport.redfish_json import link, member_text, number, reading
from rackval.drivers.transport.redfish_resources import RedfishEquipment, linked, members, name_of, optional, status

SHELVES = "/redfish/v1/PowerEquipment/PowerShelves"
_INPUT_OK = {"Normal": True, "LossOfInput": False, "OutOfRange": False}
_ON = {"On": True, "Off": False, "PoweringOn": False, "PoweringOff": True}
_BREAKER_ON = {"Normal": True, "Tripped": False, "Off": False}


def _dc_rail(psu: Mapping[str, Any], metrics: Mapping[str, Any]) -> int:
    """Index of the DC bus rail in the PSU's RailVoltage / RailCurrentAmps arrays.

    The schema orders them like ``OutputRails``; when the readings disagree with that order
    (DMTF's mockup lists the 120 V rail first in RailVoltage but the 48 V DCBus rail first in
    OutputRails), the reading nearest the DCBus rail's NominalVoltage is taken.
    """
    rails = psu.get("OutputRails")
    rails = rails if isinstance(rails, list) else []
    index = next((i for i, r in enumerate(rails) if isinstance(r, dict) and r.get("PhysicalContext") == "DCBus"), 0)
    nominal = rails[index].get("NominalVoltage") if index < len(rails) and isinstance(rails[index], dict) else None
    volts = metrics.get("RailVoltage")
    if not isinstance(nominal, int | float) or isinstance(nominal, bool) or not isinstance(volts, list):
        return index
    readings = [(i, v.get("Reading")) for i, v in enumerate(volts) if isinstance(v, dict)]
    numeric = [(abs(r - nominal), i) for i, r in readings if isinstance(r, int | float) and not isinstance(r, bool)]
    return min(numeric)[1] if numeric else index


def _rail(metrics: Mapping[str, Any], key: str, index: int, where: str) -> float | None:
    rails = metrics.get(key)
    if not isinstance(rails, list) or index >= len(rails) or not isinstance(rails[index], dict):
        return None
    return number(rails[index].get("Reading"), f"{where} {key}[{index}].Reading")


class RedfishPowerShelf(RedfishEquipment, Device, PowerMeter, PowerShelf, ShelfControl, Sensors):
    """A power shelf reached over Redfish. Device, PowerMeter, PowerShelf, ShelfControl, Sensors.

    Options, besides the transport's: ``shelf_id``, which member of
    /redfish/v1/PowerEquipment/PowerShelves this device is (default: the first listed). Feeds,
    rectifiers and batteries are named by their Redfish ``Id`` ("AC1", "Bay1").
    """

    options_model = RedfishPowerShelfOptions
    COLLECTION = SHELVES
    WHAT = "power shelf"

    def __init__(self, config: DeviceConfig) -> None:
        opts = parse_options(self.options_model, config.options, config.name)
        super().__init__(config, opts.shelf_id, opts.expand)

    # ---- the chassis PowerSubsystem ------------------------------------------------------------
    def _subsystem(self, operation: str) -> tuple[str, dict[str, Any]]:
        chassis = self._chassis(operation)
        doc = self._transport.get(chassis)
        found = linked(self._transport, doc, "PowerSubsystem", f"{chassis}/PowerSubsystem", "PowerSupplies")
        if found is None:
            raise self._err(NotAvailable, f"{operation} (GET {chassis})", "the chassis has no PowerSubsystem")
        return found

    def _psus(self, operation: str) -> tuple[dict[str, Any], list[str]]:
        path, subsystem = self._subsystem(operation)
        collection = link(subsystem, "PowerSupplies")
        if collection is None:
            raise self._err(NotAvailable, f"{operation} (GET {path})", "the PowerSubsystem has no PowerSupplies")
        group = redundancy(subsystem, "PowerSupplyRedundancy", path)
        extra = [f"{collection}/{m}" for m in group.members] if group else []
        return subsystem, members(self._transport, collection, extra)

    # ---- PowerShelf ----------------------------------------------------------------------------
    @protocol_errors("read feeds")
    def feeds(self) -> list[FeedReading]:
        """Every Mains circuit: voltage, current, power, frequency and whether it is energised."""
        return [self._feed(doc, p) for p, doc in self._list_docs("Mains", "read feeds")]

    def _feed(self, doc: Mapping[str, Any], path: str) -> FeedReading:
        state, health = status(doc, path)
        power_state = member_text(doc, "PowerState", f"{path} PowerState")
        breaker = member_text(doc, "BreakerState", f"{path} BreakerState")
        on = _ON.get(power_state, _BREAKER_ON.get(breaker))
        return FeedReading(
            name=name_of(doc, path),
            state=state,
            health=health,
            voltage_v=reading(doc, "Voltage", f"{path} Voltage"),
            current_a=reading(doc, "CurrentAmps", f"{path} CurrentAmps"),
            power_w=reading(doc, "PowerWatts", f"{path} PowerWatts"),
            frequency_hz=reading(doc, "FrequencyHz", f"{path} FrequencyHz"),
            on=on,
        )

    @protocol_errors("read rectifiers")
    def rectifiers(self) -> list[RectifierState]:
        """Every PSU bay (an absent bay too: State Absent, no readings)."""
        _, paths = self._psus("read rectifiers")
        return [self._rectifier(self._transport.get(p), p) for p in paths]

    def _rectifier(self, doc: Mapping[str, Any], path: str) -> RectifierState:
        state, health = status(doc, path)
        metrics_path = link(doc, "Metrics")
        metrics = optional(self._transport, metrics_path) or {}
        where = metrics_path or path
        rail = _dc_rail(doc, metrics)
        watts_in = reading(metrics, "InputPowerWatts", f"{where} InputPowerWatts")
        watts_out = reading(metrics, "OutputPowerWatts", f"{where} OutputPowerWatts")
        line = member_text(doc, "LineInputStatus", f"{path} LineInputStatus")
        return RectifierState(
            name=name_of(doc, path),
            state=state,
            health=health,
            input_ok=_INPUT_OK.get(line),
            input_power_w=watts_in,
            output_power_w=watts_out,
            efficiency_pct=round(100 * watts_out / watts_in, 3) if watts_in and watts_out is not None else None,
            capacity_w=number(doc.get("PowerCapacityWatts"), f"{path} PowerCapacityWatts"),
            output_voltage_v=_rail(metrics, "RailVoltage", rail, where),
            output_current_a=_rail(metrics, "RailCurrentAmps", rail, where),
            efficiency_measured=False,
        )

    @protocol_errors("read rectifier redundancy")
    def rectifier_redundancy(self) -> RedundancyGroup:
        path, subsystem = self._subsystem("read rectifier redundancy")
        found = redundancy(subsystem, "PowerSupplyRedundancy", path)
        if found is None:
            raise self._err(NotAvailable, f"read rectifier redundancy (GET {path})", "no PowerSupplyRedundancy")
        return found

    @protocol_errors("read the DC output")
    def dc_output(self) -> DcOutput:
        """The first DC circuit among the shelf's Branches, then Subfeeds."""
        for key in ("Branches", "Subfeeds"):
            try:
                docs = self._list_docs(key, "read the DC output")
            except NotAvailable:
                continue
            for path, doc in docs:
                if doc.get("VoltageType") == "DC":
                    return DcOutput(
                        name=name_of(doc, path),
                        voltage_v=reading(doc, "Voltage", f"{path} Voltage"),
                        current_a=reading(doc, "CurrentAmps", f"{path} CurrentAmps"),
                        power_w=reading(doc, "PowerWatts", f"{path} PowerWatts"),
                    )
        raise self._err(NotAvailable, f"read the DC output (GET {self._equipment()})", "no DC circuit")

    @protocol_errors("read batteries")
    def batteries(self) -> list[BatteryState]:
        path, subsystem = self._subsystem("read batteries")
        collection = link(subsystem, "Batteries")
        if collection is None:
            raise self._err(NotAvailable, f"read batteries (GET {path})", "the PowerSubsystem has no Batteries")
        docs = self._member_docs(collection)
        load_w: float | None = None
        with contextlib.suppress(NotAvailable):  # no DC reading: no holdup estimate, the rest still read
            load_w = self.dc_output().power_w
        share = load_w / len(docs) if load_w and docs else None
        return [self._battery(doc, p, share) for p, doc in docs]

    def _battery(self, doc: Mapping[str, Any], path: str, share_w: float | None) -> BatteryState:
        state, health = status(doc, path)
        metrics_path = link(doc, "Metrics")
        metrics = optional(self._transport, metrics_path) or {}
        where = metrics_path or path
        stored = reading(metrics, "StoredEnergyWattHours", f"{where} StoredEnergyWattHours")
        holdup = stored * 3600 / share_w if stored is not None and share_w else None
        return BatteryState(
            name=name_of(doc, path),
            state=state,
            health=health,
            charge_pct=reading(metrics, "ChargePercent", f"{where} ChargePercent"),
            health_pct=reading(doc, "StateOfHealthPercent", f"{path} StateOfHealthPercent"),
            charge_state=member_text(doc, "ChargeState", f"{path} ChargeState"),
            holdup_s=round(holdup, 1) if holdup is not None else None,
            stored_energy_wh=stored,
            holdup_estimated=holdup is not None,
        )

    # ---- PowerMeter ----------------------------------------------------------------------------
    @protocol_errors("read power")
    def power_watts(self) -> float:
        """The shelf's input power: Metrics PowerWatts.Reading, else the sum over its feeds."""
        metrics = optional(self._transport, link(self._doc(), "Metrics"))
        watts = reading(metrics, "PowerWatts", "Metrics PowerWatts") if metrics else None
        if watts is not None:
            return watts
        readings = [f.power_w for f in self.feeds()]
        if not readings or any(w is None for w in readings):
            raise self._err(NotAvailable, f"read power (GET {self._equipment()})", "no Metrics or feed power reading")
        return round(sum(w for w in readings if w is not None), 9)

    # ---- ShelfControl --------------------------------------------------------------------------
    def _action(self, paths: list[str], wanted: str, action: str, operation: str) -> str:
        for path in paths:
            doc = self._transport.get(path)
            if name_of(doc, path) != wanted:
                continue
            actions = doc.get("Actions")
            entry = actions.get(action) if isinstance(actions, dict) else None
            if isinstance(entry, dict) and isinstance(entry.get("target"), str):
                return entry["target"]
            raise self._err(DeviceError, operation, f"{path} advertises no {action} action")
        names = [p.rstrip("/").rsplit("/", 1)[-1] for p in paths]
        raise self._err(DeviceError, operation, f"no {wanted!r} here (the shelf has {names})")

    def set_rectifier(self, rectifier: str, on: bool) -> None:
        """POST PowerSupply.Reset {"ResetType": "On" | "ForceOff"}. Destructive: through the gate."""
        op = f"switch rectifier {rectifier} {'on' if on else 'off'}"
        _, paths = self._psus(op)
        target = self._action(paths, rectifier, "#PowerSupply.Reset", op)
        self._transport.post(target, {"ResetType": "On" if on else "ForceOff"})

    def set_feed(self, feed: str, on: bool) -> None:
        """POST Circuit.BreakerControl {"PowerState": "On" | "Off"} to a Mains circuit. Through the gate."""
        op = f"switch feed {feed} {'on' if on else 'off'}"
        _, paths = self._list("Mains", op)
        target = self._action(paths, feed, "#Circuit.BreakerControl", op)
        self._transport.post(target, {"PowerState": "On" if on else "Off"})
