"""The Redfish resource tree of one simulated BMC: which URI answers what, and ``$expand``.

Why a module of its own: the resources are built by one class per DMTF area (service, system,
chassis, power); this module joins their routes into one table, adds the URIs that come and go
(open sessions, SEL entries) and implements ``$expand`` over the joined tree (``*``, ``.``,
``~``; one level, as advertised in ProtocolFeaturesSupported). It knows nothing of HTTP:
builders return documents, changes raise ``RedfishError`` for bad input.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rackval.sim.redfish_chassis import ChassisResources
from rackval.sim.redfish_power import PowerResources
from rackval.sim.redfish_readings import NodeReadings
from rackval.sim.redfish_schema import SEL_ENTRIES, SESSIONS
from rackval.sim.redfish_service import ServiceResources
from rackval.sim.redfish_state import BmcState, Route
from rackval.sim.redfish_system import SystemResources

_NOT_SUBORDINATE = frozenset({"Links", "RelatedItem", "RedundancyGroup"})  # skipped by $expand=.


class ResourceTree:
    """The Redfish resource tree of one BMC: builds payloads from the model and applies changes."""

    def __init__(self, state: BmcState) -> None:
        self.state = state
        readings = NodeReadings(state.model, state.node)
        self.service = ServiceResources(state, readings)
        self.system = SystemResources(state, readings)
        chassis = ChassisResources(state, readings)
        power = PowerResources(state, readings)
        self.routes: dict[str, Route] = {
            **self.service.routes(),
            **self.system.routes(),
            **chassis.routes(),
            **power.routes(),
        }

    def route(self, path: str) -> Route | None:
        """The route of a path (without query, trailing slash removed); SEL entries are dynamic."""
        found = self.routes.get(path)
        if found is None and path.startswith(SESSIONS + "/"):
            return self.service.session_route(path)
        if found is None and path.startswith(SEL_ENTRIES + "/"):
            return self.system.sel_entry_route(path)
        return found

    singletons = ("Systems", "Chassis", "Managers", "SessionService", "UpdateService")

    def power_state(self) -> str:
        """The BMC's: Off without input power, Booting, Ready."""
        return self.state.model.bmc_state(self.state.node)

    def service_root(self) -> dict[str, Any]:
        return self.service.service_root()

    def expand(self, doc: dict[str, Any], mode: str) -> dict[str, Any]:
        return expand(doc, mode, self.route)


def expand(doc: dict[str, Any], mode: str, route: Callable[[str], Route | None]) -> dict[str, Any]:
    """One level of $expand over a tree whose URIs ``route`` resolves: references replaced by the
    resources they point to. ``*`` expands every reference, ``.`` those not under Links
    (subordinate resources), ``~`` only those under Links."""

    def walk(value: Any, in_links: bool) -> Any:
        if isinstance(value, dict):
            oid = value.get("@odata.id")
            if len(value) == 1 and isinstance(oid, str) and "#" not in oid:
                wanted = mode == "*" or (mode == "." and not in_links) or (mode == "~" and in_links)
                found = route(oid.rstrip("/") or "/") if wanted else None
                return found.get() if found is not None and found.get is not None else value
            return {k: walk(v, in_links or k in _NOT_SUBORDINATE) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, in_links) for v in value]
        return value

    return walk(doc, False)
