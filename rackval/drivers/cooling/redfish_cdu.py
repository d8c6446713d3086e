"""A coolant distribution unit (CDU) over DMTF Redfish (``ThermalEquipment/CDUs``).

DMTF's CoolingUnit model describes a CDU as resources, so there is no vendor map: the
differences are which resources a CDU fills in and links. What this driver reads [V: DMTF's
public-cooling-unit mockup]:

* ``/redfish/v1/ThermalEquipment/CDUs/{id}`` (CoolingUnit): identity, ``Status.State`` (the
  unit's mode), ``PumpRedundancy``, links ``Pumps``, ``Filters``, ``Reservoirs``,
  ``PrimaryCoolantConnectors``, ``SecondaryCoolantConnectors``, ``LeakDetection`` and
  ``Links.Chassis`` (whose ``Sensors`` are every sensor of the unit);
* ``Pumps/{id}``, ``Filters/{id}``, ``Reservoirs/{id}``, ``*CoolantConnectors/{id}``,
  ``LeakDetection/LeakDetectors/{id}``: see ``rackval.drivers.cooling.redfish_payloads``.

A collection the unit does not link is looked for at the schema's canonical URI (the mockup
serves ``Reservoirs`` without linking it); one found at neither is ``NotAvailable`` for that
reading only. Leak detectors come from ``LeakDetection/LeakDetectors``, else from the chassis
``LeakDetectors``, else from the ``LeakDetectorGroups`` entries of ``LeakDetection``.

Controls (through the safety gate): ``set_pump`` posts ``Pump.SetMode`` {"Mode": "Enabled" |
"Disabled"} to the target the pump advertises (a pump without the action is refused before
anything is sent); ``set_pump_speed`` PATCHes the pump's ``SpeedControlPercent``
{"ControlMode": "Manual", "SetPoint": percent}. Both return once the service accepted the
request: read ``pumps()`` back for the outcome.
"""

from __future__ import annotations

import math
from typing import Any

from rackval.core.errors import DeviceError, NotAvailable, protocol_errors
from rackval.drivers.capabilities import (
    CoolantReading,
    CoolingUnit,
    Device,
    FilterState,
    LeakDetection,
    LeakDetectorState,
    PumpControl,
    PumpState,
    RedundancyGroup,
    ReservoirState,
    Sensors,
)
from rackval.drivers.config import DeviceConfig
from rackval.drivers.cooling import redfish_payloads as payloads
from rackval.drivers.options import RedfishCduOptions, parse_options
from rackval.drivers.transport.redfish_resources import RedfishEquipment, linked, name_of, status

CDUS = "/redfish/v1/ThermalEquipment/CDUs"
_LOOPS = (("primary", "PrimaryCoolantConnectors"), ("secondary", "SecondaryCoolantConnectors"))


class RedfishCdu(RedfishEquipment, Device, CoolingUnit, PumpControl, LeakDetection, Sensors):
    """A CDU reached over Redfish. Device, CoolingUnit, PumpControl, LeakDetection and Sensors.

    Options, besides the transport's (``scheme``, ``verify``, ``auth``, ...: see
    ``rackval.drivers.transport.redfish.RedfishTransport``): ``cdu_id``, which member of
    /redfish/v1/ThermalEquipment/CDUs this device is (default: the first member listed).
    Components are named by their Redfish ``Id`` (pump "1", leak detector "Moisture").
    """

    options_model = RedfishCduOptions
    COLLECTION = CDUS
    WHAT = "CDU"

    def __init__(self, config: DeviceConfig) -> None:
        opts = parse_options(self.options_model, config.options, config.name)
        super().__init__(config, opts.cdu_id, opts.expand)

    # ---- CoolingUnit -------------------------------------------------------------------------
    @protocol_errors("read the cooling mode (Status.State)")
    def cooling_mode(self) -> str:
        """The unit's Status.State (Enabled, Disabled, StandbyOffline, ...)."""
        state, _ = status(self._doc(), self._equipment())
        if not state:
            raise self._err(NotAvailable, f"read the cooling mode (GET {self._equipment()})", "no Status.State")
        return state

    @protocol_errors("read pumps")
    def pumps(self) -> list[PumpState]:
        """Every pump of the unit's Pumps collection (one ``$expand`` GET where offered, else one each)."""
        return [payloads.pump(doc, p) for p, doc in self._list_docs("Pumps", "read pumps")]

    @protocol_errors("read pump redundancy")
    def pump_redundancy(self) -> RedundancyGroup:
        """The unit's first ``PumpRedundancy`` entry."""
        found = payloads.redundancy(self._doc(), "PumpRedundancy", self._equipment())
        if found is None:
            raise self._err(NotAvailable, f"read pump redundancy (GET {self._equipment()})", "no PumpRedundancy")
        return found

    @protocol_errors("read filters")
    def filters(self) -> list[FilterState]:
        return [payloads.filter_state(doc, p) for p, doc in self._list_docs("Filters", "read filters")]

    @protocol_errors("read reservoirs")
    def reservoirs(self) -> list[ReservoirState]:
        return [payloads.reservoir(doc, p) for p, doc in self._list_docs("Reservoirs", "read reservoirs")]

    @protocol_errors("read coolant loops")
    def loops(self) -> list[CoolantReading]:
        """Every connector of the primary, then the secondary loop; a loop the unit lacks is left
        out (NotAvailable only when it has neither)."""
        out: list[CoolantReading] = []
        for loop, key in _LOOPS:
            try:
                docs = self._list_docs(key, f"read the {loop} loop")
            except NotAvailable:
                continue
            out += [payloads.coolant(doc, p, loop) for p, doc in docs]
        if not out:
            raise self._err(NotAvailable, f"read coolant loops (GET {self._equipment()})", "no coolant connectors")
        return out

    # ---- LeakDetection -----------------------------------------------------------------------
    @protocol_errors("read leak detectors")
    def leak_detectors(self) -> list[LeakDetectorState]:
        base = self._equipment()
        detection = linked(self._transport, self._doc(), "LeakDetection", f"{base}/LeakDetection", "Id")
        try:
            chassis: str | None = self._chassis("read leak detectors")
        except NotAvailable:
            chassis = None
        found = payloads.leak_detectors(self._transport, detection, chassis)
        if found is None:
            raise self._err(NotAvailable, f"read leak detectors (GET {base})", "no LeakDetection or LeakDetectors")
        return found

    # ---- PumpControl -------------------------------------------------------------------------
    def _pump(self, pump: str, operation: str) -> tuple[str, dict[str, Any]]:
        _, paths = self._list("Pumps", operation)
        for path in paths:
            doc = self._transport.get(path)
            if name_of(doc, path) == pump:
                return path, doc
        names = [p.rstrip("/").rsplit("/", 1)[-1] for p in paths]
        raise self._err(DeviceError, operation, f"no pump {pump!r} (the CDU has {names})")

    def set_pump(self, pump: str, on: bool) -> None:
        """POST Pump.SetMode {"Mode": "Enabled" | "Disabled"}. Destructive: through the gate."""
        mode = "Enabled" if on else "Disabled"
        op = f"set pump {pump} {mode}"
        path, doc = self._pump(pump, op)
        actions = doc.get("Actions")
        action = actions.get("#Pump.SetMode") if isinstance(actions, dict) else None
        if not (isinstance(action, dict) and isinstance(action.get("target"), str)):
            raise self._err(DeviceError, op, f"{path} advertises no #Pump.SetMode action")
        self._transport.post(action["target"], {"Mode": mode})

    def set_pump_speed(self, pump: str, percent: float) -> None:
        """PATCH SpeedControlPercent {"ControlMode": "Manual", "SetPoint": percent}. Through the gate."""
        op = f"set pump {pump} speed to {percent!r} %"
        if isinstance(percent, bool) or not isinstance(percent, int | float) or not math.isfinite(percent):
            raise self._err(DeviceError, op, "the speed must be a number of percent")
        if not 0 <= percent <= 100:
            raise self._err(DeviceError, op, "the speed must be within 0..100 %")
        path, doc = self._pump(pump, op)
        if "SpeedControlPercent" not in doc:
            raise self._err(DeviceError, op, f"{path} has no SpeedControlPercent to set")
        self._transport.patch(path, {"SpeedControlPercent": {"ControlMode": "Manual", "SetPoint": percent}})
