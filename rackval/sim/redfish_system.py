"""The Redfish ComputerSystem of a simulated node: power state, Reset, Boot override, event log.

Why a module of its own: the system is where the harness changes the host (Reset, Boot
override) and reads what happened to it (the SEL), so its rules are kept together:

- ``Systems/1``: PowerState from the model's host sequencing (Off / PoweringOn / On), Reset
  (answers 204 at once; the state follows the model's timeline), Boot override (PATCH), processor
  and memory summaries, health rolled up from the node's PSUs, fans and temperatures.
- ``Systems/1/LogServices/SEL`` with its entries (auto-expanded in the collection, as
  OData.AutoExpand asks) and the ClearLog action.
"""

from __future__ import annotations

from typing import Any

from rackval.sim.model import SelEntry
from rackval.sim.redfish_readings import NodeReadings, stable_uuid
from rackval.sim.redfish_schema import (
    CHASSIS,
    MANAGER,
    RESET_TARGET,
    SEL,
    SEL_ENTRIES,
    SEL_ID,
    SYSTEM,
    SYSTEM_ID,
    V1,
    RedfishError,
    collection,
    ref,
    resource,
    status_doc,
)
from rackval.sim.redfish_state import BmcState, Route

RESET_ALLOWED = ("On", "ForceOff", "GracefulShutdown", "GracefulRestart", "ForceRestart", "ForceOn")
BOOT_TARGETS = ("None", "Pxe", "Hdd", "Cd", "Usb", "BiosSetup", "UefiShell")


class SystemResources:
    """Builds the ComputerSystem and SEL documents of one node and applies Reset, Boot and ClearLog."""

    def __init__(self, state: BmcState, readings: NodeReadings) -> None:
        self.state = state
        self.model = state.model
        self.readings = readings

    def routes(self) -> dict[str, Route]:
        return {
            f"{V1}/Systems": Route(lambda: collection("ComputerSystemCollection", f"{V1}/Systems", [SYSTEM])),
            SYSTEM: Route(self.system, patch=self.patch_system),
            RESET_TARGET: Route(post=self.reset),
            f"{SYSTEM}/LogServices": Route(lambda: collection("LogServiceCollection", f"{SYSTEM}/LogServices", [SEL])),
            SEL: Route(self.sel_service),
            SEL_ENTRIES: Route(self.sel_entries),
            f"{SEL}/Actions/LogService.ClearLog": Route(post=self.clear_sel),
        }

    def sel_entry_route(self, path: str) -> Route | None:
        """The route of a SEL entry's URI (entries come and go: not in the static table)."""
        entry_id = path[len(SEL_ENTRIES) + 1 :]
        if entry_id.isdigit() and any(str(e.id) == entry_id for e in self.model.sel(self.state.node)):
            return Route(lambda: self.sel_entry(int(entry_id)))
        return None

    # ---- system -----------------------------------------------------------------------------
    def system(self) -> dict[str, Any]:
        model, node = self.model, self.state.node
        n = model.nodes[node]
        host = model.host_state(node)
        state = {"On": "Enabled", "PoweringOn": "Starting"}.get(host, "StandbyOffline")
        with self.state.lock:
            boot = dict(self.state.boot)
        return resource(
            SYSTEM,
            "ComputerSystem",
            Id=SYSTEM_ID,
            Name=node,
            SystemType="Physical",
            Manufacturer=n.info.vendor,
            Model=n.info.model,
            SerialNumber=n.info.serial,
            UUID=stable_uuid(n.info.serial),
            BiosVersion=model.firmware(node).get("BIOS", n.info.firmware),
            PowerState=host,
            Status=status_doc(state, "OK", self.readings.health_rollup()),
            Boot={**boot, "BootSourceOverrideTarget@Redfish.AllowableValues": list(BOOT_TARGETS)},
            ProcessorSummary={"Count": 2, "CoreCount": 112, "Model": "Simulated x86-64 CPU"},
            MemorySummary={"TotalSystemMemoryGiB": 2048},
            LogServices=ref(f"{SYSTEM}/LogServices"),
            Actions={
                "#ComputerSystem.Reset": {
                    "target": RESET_TARGET,
                    "ResetType@Redfish.AllowableValues": list(RESET_ALLOWED),
                }
            },
            Links={"Chassis": [ref(CHASSIS)], "ManagedBy": [ref(MANAGER)]},
        )

    def patch_system(self, body: dict[str, Any]) -> None:
        allowed = {
            "BootSourceOverrideEnabled": ("Disabled", "Once", "Continuous"),
            "BootSourceOverrideTarget": BOOT_TARGETS,
            "BootSourceOverrideMode": ("Legacy", "UEFI"),
        }
        for key in body:
            if key != "Boot":
                raise RedfishError(400, "PropertyNotWritable", f"The property {key} is a read only property.")
        boot = body["Boot"]
        if not isinstance(boot, dict):
            raise RedfishError(400, "PropertyValueTypeError", "The value for the property Boot is of a different type.")
        for key, value in boot.items():
            if key not in allowed:
                raise RedfishError(400, "PropertyNotWritable", f"The property Boot/{key} is not writable.")
            if value not in allowed[key]:
                message = f"The value {value!r} for the property Boot/{key} is not an acceptable value."
                raise RedfishError(400, "PropertyValueNotInList", message)
        with self.state.lock:
            self.state.boot.update(boot)

    def reset(self, body: dict[str, Any]) -> None:
        reset_type = body.get("ResetType")
        if reset_type is None:
            raise RedfishError(400, "ActionParameterMissing", "The action requires the parameter ResetType.")
        if reset_type not in RESET_ALLOWED:
            raise RedfishError(
                400,
                "ActionParameterNotSupported",
                f"The parameter ResetType value {reset_type!r} is not supported by this action.",
            )
        model, node = self.model, self.state.node
        if reset_type in ("On", "ForceOn"):
            model.host_power_on(node)
        elif reset_type in ("ForceOff", "GracefulShutdown"):
            model.host_power_off(node)
        else:  # a restart: off, then on again through the model's power-on sequence
            with model.lock:
                model.host_power_off(node)
                model.host_power_on(node)

    # ---- event log ----------------------------------------------------------------------------
    def sel_service(self) -> dict[str, Any]:
        return resource(
            SEL,
            "LogService",
            Id=SEL_ID,
            Name="System Event Log",
            LogEntryType="SEL",
            OverWritePolicy="NeverOverWrites",
            DateTime=self.state.iso(self.model.now()),
            DateTimeLocalOffset="+00:00",
            ServiceEnabled=True,
            Status=status_doc(),
            Entries=ref(SEL_ENTRIES),
            Actions={"#LogService.ClearLog": {"target": f"{SEL}/Actions/LogService.ClearLog"}},
        )

    def sel_entries(self) -> dict[str, Any]:
        """The entries collection; LogEntryCollection members are auto-expanded (OData.AutoExpand)."""
        entries = self.model.sel(self.state.node)
        doc = collection("LogEntryCollection", SEL_ENTRIES, [])
        doc["Name"] = "System Event Log Entries"
        doc["Members@odata.count"] = len(entries)
        doc["Members"] = [self._sel_doc(e) for e in entries]
        return doc

    def sel_entry(self, entry_id: int) -> dict[str, Any]:
        entry = next((e for e in self.model.sel(self.state.node) if e.id == entry_id), None)
        if entry is None:  # cleared between routing and building
            raise RedfishError(
                404, "ResourceMissingAtURI", f"The resource at the URI {SEL_ENTRIES}/{entry_id} was not found."
            )
        return self._sel_doc(entry)

    def _sel_doc(self, entry: SelEntry) -> dict[str, Any]:
        doc = resource(
            f"{SEL_ENTRIES}/{entry.id}",
            "LogEntry",
            Id=str(entry.id),
            Name=f"SEL Entry {entry.id}",
            EntryType="SEL",
            Severity=entry.severity,
            Created=self.state.iso(entry.created_s),
            Message=entry.message,
            MessageId=entry.message_id,
        )
        sensor_type = _sel_sensor_type(entry.message_id, entry.message)
        if sensor_type:
            doc["SensorType"] = sensor_type
        return doc

    def clear_sel(self, body: dict[str, Any]) -> None:
        self.model.clear_sel(self.state.node)


def _sel_sensor_type(message_id: str, message: str) -> str | None:
    """The IPMI sensor type a SEL record of this kind carries (LogEntry.SensorType)."""
    if "PowerSupply" in message_id:
        return "Power Supply / Converter"
    if "PowerLimit" in message_id:
        return "PowerUnit"
    if message.startswith("Fan"):
        return "Fan"
    if "temperature" in message:
        return "Temperature"
    return None
