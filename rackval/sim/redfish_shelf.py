"""The Redfish tree of a simulated power shelf, shaped like DMTF's public-power-shelf mockup.

Why a module of its own: a power shelf is reported through DMTF's PowerEquipment model
(``PowerDistribution`` with ``EquipmentType`` PowerShelf) and its chassis' ``PowerSubsystem``,
which share nothing with a node's tree but the service around it (``redfish_equipment``).

What is served, read from the model (``model.shelves``) at request time:
``PowerEquipment/PowerShelves/1`` (identity, health, mains redundancy) with ``Mains/AC1`` and
``AC2`` (one per feed: voltage, current, power) and ``Branches/DC`` (the DC output onto the busbar),
the chassis ``Chassis/PowerShelf`` with its ``PowerSubsystem`` (capacity of the working rectifiers,
their N+M redundancy: half of them, one feed's, are needed), ``PowerSupplies/{PSUn}`` (state, line
input status, rating) with their ``Metrics`` (input and output power, voltage, current),
``Batteries/{BBUn}`` (charge state, state of health, capacity) with their ``Metrics`` (charge
percent, stored energy, output voltage), and ``Sensors/{id}`` for the shelf's DC output and each
mains input. Actions (the drivers' gated controls): POST ``PowerSupply.Reset`` with ResetType On /
ForceOff switches a rectifier, POST ``Circuit.BreakerControl`` with PowerState On / Off a mains
input's breaker (that shelf's rectifiers on the feed lose input; the feed itself stays up).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rackval.sim.equipment_model import ShelfReading
from rackval.sim.model import RackModel
from rackval.sim.redfish_equipment import EquipmentTree, SensorSpec, start_equipment_redfish
from rackval.sim.redfish_readings import worst
from rackval.sim.redfish_schema import V1, RedfishError, collection, ref, resource, status_doc
from rackval.sim.redfish_server import SIM_EPOCH, RedfishService
from rackval.sim.redfish_state import Route

PE = f"{V1}/PowerEquipment"
SHELF = f"{PE}/PowerShelves/1"
_PSU_HEALTH = {"OK": "OK", "Off": "OK", "NoInput": "Warning", "Failed": "Critical"}


class ShelfTree(EquipmentTree):
    """One power shelf's Redfish tree (the shelf is ``state.device``)."""

    chassis_id = "PowerShelf"
    chassis_type = "Shelf"

    def __init__(self, state: Any) -> None:
        self.shelf = state.device
        shelf = state.model.shelves.shelf(self.shelf)
        self.feeds = list(shelf.feeds)
        self.psus = [r.name for r in shelf.rectifiers]
        self.bbus = [b.name for b in shelf.bbus]
        super().__init__(state)

    def _r(self) -> ShelfReading:
        return self.model.shelves.reading(self.shelf)

    def identity(self) -> tuple[str, str, str, str, str]:
        info = self.model.shelves.shelf(self.shelf).info
        return self.shelf, info.vendor, info.model, info.serial, self.model.firmware(self.shelf)["firmware"]

    def root_links(self) -> dict[str, Any]:
        return {"PowerEquipment": ref(PE)}

    def chassis_extra(self) -> dict[str, Any]:
        return {"PowerSubsystem": ref(f"{self.chassis}/PowerSubsystem")}

    def health(self) -> str:
        r = self._r()
        healths = [_PSU_HEALTH[x.status] for x in r.rectifiers]
        healths += ["Warning" if b.mode == "Discharging" or b.state_of_health < 0.5 else "OK" for b in r.bbus]
        return worst(healths + ([] if r.busbar_up else ["Critical"]))

    # ---- sensors ------------------------------------------------------------------------------
    def sensor_specs(self) -> list[SensorSpec]:
        specs = [
            SensorSpec("VoltageDC", "DC Output Voltage", "Voltage", "V", "PowerSupply", lambda: self._r().dc_v),
            SensorSpec("CurrentDC", "DC Output Current", "Current", "A", "PowerSupply", lambda: self._r().dc_a),
            SensorSpec("PowerDC", "DC Output Power", "Power", "W", "PowerSupply", lambda: self._r().dc_w),
        ]
        for i, _ in enumerate(self.feeds, start=1):
            specs += [
                SensorSpec(f"VoltageMains{i}", f"Mains {i} Voltage", "Voltage", "V", "PowerSupply",
                           lambda i=i: self._r().mains[i - 1][1]),
                SensorSpec(f"CurrentMains{i}", f"Mains {i} Current", "Current", "A", "PowerSupply",
                           lambda i=i: self._r().mains[i - 1][2]),
                SensorSpec(f"PowerMains{i}", f"Mains {i} Power", "Power", "W", "PowerSupply",
                           lambda i=i: self._r().mains[i - 1][3]),
            ]  # fmt: skip
        return specs

    # ---- routes -------------------------------------------------------------------------------
    def equipment_routes(self) -> dict[str, Route]:
        sub = f"{self.chassis}/PowerSubsystem"
        mains = [f"AC{i}" for i in range(1, len(self.feeds) + 1)]
        r: dict[str, Route] = {
            PE: Route(self.power_equipment),
            f"{PE}/PowerShelves": Route(
                lambda: collection("PowerDistributionCollection", f"{PE}/PowerShelves", [SHELF])
            ),
            SHELF: Route(self.power_shelf),
            f"{SHELF}/Branches": Route(lambda: collection("CircuitCollection", f"{SHELF}/Branches",
                                                          [f"{SHELF}/Branches/DC"])),
            f"{SHELF}/Branches/DC": Route(self.dc_branch),
            f"{SHELF}/Mains": Route(lambda: collection("CircuitCollection", f"{SHELF}/Mains",
                                                       [f"{SHELF}/Mains/{m}" for m in mains])),
            sub: Route(self.power_subsystem),
            f"{sub}/PowerSupplies": Route(lambda: collection("PowerSupplyCollection", f"{sub}/PowerSupplies",
                                                             [f"{sub}/PowerSupplies/{p}" for p in self.psus])),
            f"{sub}/Batteries": Route(lambda: collection("BatteryCollection", f"{sub}/Batteries",
                                                         [f"{sub}/Batteries/{b}" for b in self.bbus])),
        }  # fmt: skip
        for i, m in enumerate(mains):
            r[f"{SHELF}/Mains/{m}"] = Route(lambda i=i: self.mains(i))
            breaker = Route(post=lambda body, i=i: self._breaker(i, body))
            r[f"{SHELF}/Mains/{m}/Actions/Circuit.BreakerControl"] = breaker
        for i, p in enumerate(self.psus):
            r[f"{sub}/PowerSupplies/{p}"] = Route(lambda i=i: self.power_supply(i))
            r[f"{sub}/PowerSupplies/{p}/Actions/PowerSupply.Reset"] = Route(post=lambda body, p=p: self._reset(p, body))
            r[f"{sub}/PowerSupplies/{p}/Metrics"] = Route(lambda i=i: self.power_supply_metrics(i))
        for i, b in enumerate(self.bbus):
            r[f"{sub}/Batteries/{b}"] = Route(lambda i=i: self.battery(i))
            r[f"{sub}/Batteries/{b}/Metrics"] = Route(lambda i=i: self.battery_metrics(i))
        return r

    def power_equipment(self) -> dict[str, Any]:
        return resource(PE, "PowerEquipment", Id="PowerEquipment", Name="Power Equipment",
                        Status=status_doc("Enabled", "OK", self.health()),
                        PowerShelves=ref(f"{PE}/PowerShelves"))  # fmt: skip

    def power_shelf(self) -> dict[str, Any]:
        name, vendor, model, serial, firmware = self.identity()
        r = self._r()
        live_mains = sum(1 for _, volts, _, _ in r.mains if volts > 0)
        redundancy = "OK" if live_mains == len(self.feeds) else "Warning" if live_mains else "Critical"
        mains = [ref(f"{SHELF}/Mains/AC{i}") for i in range(1, len(self.feeds) + 1)]
        return resource(
            SHELF, "PowerDistribution", Id="1", EquipmentType="PowerShelf", Name=name, FirmwareVersion=firmware,
            Manufacturer=vendor, Model=model, SerialNumber=serial, Status=status_doc("Enabled", self.health()),
            MainsRedundancy={
                "RedundancyType": "Sharing", "MaxSupportedInGroup": len(mains), "MinNeededInGroup": 1,
                "RedundancyGroup": mains,
                "Status": status_doc("Enabled", redundancy),
            },
            Mains=ref(f"{SHELF}/Mains"), Branches=ref(f"{SHELF}/Branches"), Links={"Chassis": [ref(self.chassis)]},
        )  # fmt: skip

    def dc_branch(self) -> dict[str, Any]:
        """The shelf's DC output onto the busbar (a Bus circuit, as in DMTF's mockup)."""
        r = self._r()
        return resource(
            f"{SHELF}/Branches/DC", "Circuit", Id="DC", Name="DC Output Circuit to Busbar", CircuitType="Bus",
            VoltageType="DC", NominalVoltage="DC48V", Status=status_doc("Enabled", "OK" if r.busbar_up else "Critical"),
            Voltage=self.excerpt("VoltageDC"), CurrentAmps=self.excerpt("CurrentDC"),
            PowerWatts=self.excerpt("PowerDC"),
        )  # fmt: skip

    def mains(self, i: int) -> dict[str, Any]:
        feed, volts, _, _ = self._r().mains[i]
        n = i + 1
        closed = self.model.shelves.mains_on(self.shelf, feed)
        target = f"{SHELF}/Mains/AC{n}/Actions/Circuit.BreakerControl"
        return resource(
            f"{SHELF}/Mains/AC{n}", "Circuit", Id=f"AC{n}", Name=f"Mains AC Input #{n} (feed {feed})",
            Status=status_doc("Enabled", "OK" if volts > 0 else "Warning"), CircuitType="Mains",
            PhaseWiringType="OnePhase3Wire", NominalVoltage="AC200To240V", PowerState="On" if closed else "Off",
            BreakerState="Normal" if closed else "Off", Actions={"#Circuit.BreakerControl": {"target": target}},
            Voltage=self.excerpt(f"VoltageMains{n}"), CurrentAmps=self.excerpt(f"CurrentMains{n}"),
            PowerWatts=self.excerpt(f"PowerMains{n}"),
        )  # fmt: skip

    def power_subsystem(self) -> dict[str, Any]:
        r = self._r()
        live = [x for x in r.rectifiers if x.status == "OK"]
        return resource(
            f"{self.chassis}/PowerSubsystem", "PowerSubsystem", Id="PowerSubsystem", Name="Power Shelf Subsystem",
            Status=status_doc("Enabled", "OK", self.health()), CapacityWatts=sum(x.rated_w for x in live),
            PowerSupplyRedundancy=[self._redundancy(len(live))],
            PowerSupplies=ref(f"{self.chassis}/PowerSubsystem/PowerSupplies"),
            Batteries=ref(f"{self.chassis}/PowerSubsystem/Batteries"),
        )  # fmt: skip

    def _redundancy(self, live: int) -> dict[str, Any]:
        """N+M over the rectifiers: half of them (one feed's) carry the shelf's rating."""
        needed = max(len(self.psus) // 2, 1)
        health = "OK" if live > needed else "Warning" if live == needed else "Critical"
        group = [ref(f"{self.chassis}/PowerSubsystem/PowerSupplies/{p}") for p in self.psus]
        return {"RedundancyType": "NPlusM", "MaxSupportedInGroup": len(self.psus), "MinNeededInGroup": needed,
                "RedundancyGroup": group, "Status": status_doc("Enabled", health)}  # fmt: skip

    def power_supply(self, i: int) -> dict[str, Any]:
        x = self._r().rectifiers[i]
        path = f"{self.chassis}/PowerSubsystem/PowerSupplies/{x.name}"
        state = "Disabled" if x.status == "Off" else "UnavailableOffline" if x.status == "NoInput" else "Enabled"
        _, vendor, model, serial, firmware = self.identity()
        return resource(
            path, "PowerSupply", Id=x.name, Name=f"Rectifier {x.name} (feed {x.feed})",
            Status=status_doc(state, _PSU_HEALTH[x.status]), PowerSupplyType="AC", Manufacturer=vendor,
            Model=f"{model}-R", SerialNumber=f"{serial}-{x.name}", FirmwareVersion=firmware,
            PowerCapacityWatts=x.rated_w, InputNominalVoltageType="AC200To240V", OutputNominalVoltageType="DC48V",
            LineInputStatus="Normal" if x.input_v > 0 else "LossOfInput", HotPluggable=True,
            Metrics=ref(f"{path}/Metrics"),
            Actions={"#PowerSupply.Reset": {"target": f"{path}/Actions/PowerSupply.Reset"}},
        )  # fmt: skip

    def power_supply_metrics(self, i: int) -> dict[str, Any]:
        x = self._r().rectifiers[i]
        path = f"{self.chassis}/PowerSubsystem/PowerSupplies/{x.name}/Metrics"
        return resource(
            path, "PowerSupplyMetrics", Id="Metrics", Name=f"{x.name} Metrics", Status=status_doc(),
            InputVoltage={"Reading": round(x.input_v, 1)},
            InputCurrentAmps={"Reading": round(x.input_w / x.input_v, 2) if x.input_v else 0.0},
            InputPowerWatts={"Reading": round(x.input_w, 1)}, OutputPowerWatts={"Reading": round(x.output_w, 1)},
        )  # fmt: skip

    def _reset(self, psu: str, body: dict[str, Any]) -> None:
        kind = body.get("ResetType")
        if kind not in ("On", "ForceOff"):
            raise RedfishError(400, "ActionParameterNotSupported", f"ResetType must be On or ForceOff, got {kind!r}.")
        self.model.shelves.set_rectifier(self.shelf, psu, kind == "On")

    def _breaker(self, i: int, body: dict[str, Any]) -> None:
        state = body.get("PowerState")
        if state not in ("On", "Off"):
            raise RedfishError(400, "ActionParameterNotSupported", f"PowerState must be On or Off, got {state!r}.")
        self.model.shelves.set_mains(self.shelf, self.feeds[i], state == "On")

    def battery(self, i: int) -> dict[str, Any]:
        b = self._r().bbus[i]
        path = f"{self.chassis}/PowerSubsystem/Batteries/{b.name}"
        health = "Warning" if b.state_of_health < 0.5 else "OK"
        _, vendor, model, serial, _ = self.identity()
        return resource(
            path, "Battery", Id=b.name, Name=f"Battery Backup Unit {b.name}", Status=status_doc("Enabled", health),
            Manufacturer=vendor, Model=f"{model}-BBU", SerialNumber=f"{serial}-{b.name}", HotPluggable=True,
            ChargeState=b.mode, StateOfHealthPercent={"Reading": round(100 * b.state_of_health, 1)},
            CapacityRatedWattHours=b.capacity_wh, CapacityActualWattHours=round(b.capacity_wh * b.state_of_health, 1),
            BatteryChemistryType="LithiumIon", EnergyStorageType="Battery", Metrics=ref(f"{path}/Metrics"),
        )  # fmt: skip

    def battery_metrics(self, i: int) -> dict[str, Any]:
        r = self._r()
        b = r.bbus[i]
        stored = b.soc * b.capacity_wh * b.state_of_health
        return resource(
            f"{self.chassis}/PowerSubsystem/Batteries/{b.name}/Metrics", "BatteryMetrics", Id="Metrics",
            Name=f"{b.name} Metrics", Status=status_doc(), ChargePercent={"Reading": round(100 * b.soc, 2)},
            StoredEnergyWattHours={"Reading": round(stored, 1)}, OutputVoltages=[{"Reading": round(r.dc_v, 2)}],
        )  # fmt: skip


def start_shelf_redfish(
    model: RackModel, shelf: str, *, host: str = "127.0.0.1", username: str, password: str, max_sessions: int = 8,
    epoch: datetime = SIM_EPOCH,
) -> RedfishService:  # fmt: skip
    """Start the Redfish service of power shelf ``shelf`` (``PowerEquipment/PowerShelves/1``)."""
    if shelf not in model.shelves.shelves():
        raise ValueError(f"no power shelf {shelf!r} in the model (have {model.shelves.shelves() or 'none'})")
    return start_equipment_redfish(model, shelf, ShelfTree, host=host, username=username, password=password,
                                   max_sessions=max_sessions, epoch=epoch)  # fmt: skip
