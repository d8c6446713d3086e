"""What drivers built on Redfish resources share: optional resources, links, Status, Sensors.

Equipment services (CDUs, power shelves) and BMCs leave things out, mis-link them and point
``DataSourceUri`` at sensors that do not exist (DMTF's own public-power-shelf mockup links its
chassis ``PowerSubsystem`` to the Sensors collection, lists one PSU twice, and its Metrics name
sensors that 404). A driver reads each resource on its own, so one missing resource is that
reading's ``NotAvailable`` and never hides the others. This module holds the helpers for that:

- ``optional``: GET a resource a service may lack (None on 404 / 405 / 501);
- ``linked``: the resource linked under a key, or at the schema's canonical URI when the link is
  absent, provided it is what the caller expects (it has ``wanted``);
- ``status``: Status.State / Status.Health as text;
- ``members``: a collection's members with duplicates dropped, plus extra paths named elsewhere;
- ``sensor`` / ``sensors``: Redfish ``Sensor`` resources as ``SensorReading`` records;
- ``RedfishEquipment``: the base of the CDU and power shelf drivers (which member of the
  equipment collection, identity, the linked chassis and its Sensors).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from rackval.core.errors import DeviceError, NotAvailable, protocol_errors
from rackval.drivers.capabilities import Identity, SensorReading
from rackval.drivers.config import DeviceConfig
from rackval.drivers.transport.redfish import RedfishHttpError, RedfishTransport
from rackval.drivers.transport.redfish_json import link, member_text, number, text

_ABSENT = (404, 405, 501)

# Sensor ReadingType -> SensorReading.kind (lower case, short); other types are lower-cased.
_KINDS = {
    "Temperature": "temperature",
    "Humidity": "humidity",
    "LiquidFlowLPM": "flow",
    "LiquidFlow": "flow",
    "PressurekPa": "pressure",
    "PressurePa": "pressure",
    "DifferentialPressurekPa": "pressure",
    "Power": "power",
    "Voltage": "voltage",
    "Current": "current",
    "EnergykWh": "energy",
    "EnergyJoules": "energy",
    "Frequency": "frequency",
    "Percent": "percent",
    "Heat": "heat",
    "LiquidLevel": "level",
    "Rotational": "fan",
}


def optional(transport: RedfishTransport, path: str | None) -> dict[str, Any] | None:
    """GET ``path``; None when there is no path or the service answers 404, 405 or 501."""
    if path is None:
        return None
    try:
        return transport.get(path)
    except RedfishHttpError as exc:
        if exc.status in _ABSENT:
            return None
        raise


def linked(
    transport: RedfishTransport, doc: Mapping[str, Any], key: str, canonical: str, wanted: str,
    fetch: Callable[[str], dict[str, Any] | None] | None = None,
) -> tuple[str, dict[str, Any]] | None:  # fmt: skip
    """(path, resource) of what ``doc`` links under ``key``, if it has member ``wanted``; else the
    resource at ``canonical`` (the schema's URI) if that has it; None when neither does.
    ``fetch``: how a path is read (default ``optional``; a collection may be read expanded)."""
    tried: list[str] = []
    for path in (link(doc, key), canonical):
        if path is None or path in tried:
            continue
        tried.append(path)
        found = optional(transport, path) if fetch is None else fetch(path)
        if found is not None and wanted in found:
            return path, found
    return None


def members(transport: RedfishTransport, collection: str, extra: Iterable[str] = ()) -> list[str]:
    """Member paths of ``collection`` in order, each once, then ``extra`` paths not yet listed."""
    out = list(dict.fromkeys(transport.members(collection)))
    out += [p for p in dict.fromkeys(extra) if p not in out]
    return out


def expand_advertised(service_root: Mapping[str, Any]) -> bool:
    """True when the service root's ProtocolFeaturesSupported.ExpandQuery offers $expand."""
    features = service_root.get("ProtocolFeaturesSupported")
    expand = features.get("ExpandQuery") if isinstance(features, dict) else None
    return isinstance(expand, dict) and bool(expand.get("Levels") or expand.get("ExpandAll"))


def expanded_members(collection: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]] | None:
    """(path, resource) of each member of a ``$expand``-ed collection, or None when the service
    answered links instead (it ignored the query, as a static mockup server does)."""
    found = collection.get("Members")
    if not isinstance(found, list) or not found:
        return None
    out: dict[str, dict[str, Any]] = {}
    for m in found:
        if not isinstance(m, dict) or not isinstance(m.get("@odata.id"), str) or len(m) < 2:
            return None
        out.setdefault(m["@odata.id"], m)
    return list(out.items())


def status(doc: Mapping[str, Any], where: str) -> tuple[str, str]:
    """(Status.State, Status.Health) as text, "" for what the resource leaves out."""
    block = doc.get("Status")
    if not isinstance(block, dict):
        return "", ""
    return member_text(block, "State", f"{where} Status.State"), member_text(block, "Health", f"{where} Status.Health")


def name_of(doc: Mapping[str, Any], path: str) -> str:
    """A resource's Id (what the device labels it), else its Name, else the path's last segment."""
    return (
        member_text(doc, "Id", f"{path} Id")
        or member_text(doc, "Name", f"{path} Name")
        or path.rstrip("/").rsplit("/", 1)[-1]
    )


def _threshold(doc: Mapping[str, Any], key: str, where: str) -> float | None:
    thresholds = doc.get("Thresholds")
    if not isinstance(thresholds, dict):
        return None
    entry = thresholds.get(key)
    return number(entry.get("Reading"), f"{where} Thresholds.{key}.Reading") if isinstance(entry, dict) else None


def sensor(doc: Mapping[str, Any], path: str) -> SensorReading:
    """One Redfish Sensor resource: Reading in ReadingUnits, status "ok" when Enabled and OK.

    Named by its URI's last segment, which is unique where Ids may not be (DMTF's cooling-unit
    mockup gives SecondaryHeatLoad the Id of PrimaryHeatLoad); the Name is the description.
    """
    state, health = status(doc, path)
    reading_type = text(doc.get("ReadingType"), f"{path} ReadingType") or ""
    value = number(doc.get("Reading"), f"{path} Reading")
    if state in ("", "Enabled") and health in ("", "OK"):
        sensor_status = "ok" if value is not None else "unavailable"
    else:
        sensor_status = (health if health not in ("", "OK") else state).lower()
    return SensorReading(
        name=path.rstrip("/").rsplit("/", 1)[-1],
        kind=_KINDS.get(reading_type, reading_type.lower()),
        value=value,
        unit=member_text(doc, "ReadingUnits", f"{path} ReadingUnits"),
        status=sensor_status,
        description=member_text(doc, "Name", f"{path} Name"),
        warning=_threshold(doc, "UpperCaution", path),
        critical=_threshold(doc, "UpperCritical", path),
    )


def sensors(transport: RedfishTransport, collection: str) -> list[SensorReading]:
    """Every member of a Sensors collection, in collection order (one GET each). A member the
    collection lists but the service answers 404 for is reported with status "absent" and no
    value: the other sensors are still read."""
    out = []
    for path in members(transport, collection):
        doc = optional(transport, path)
        name = path.rstrip("/").rsplit("/", 1)[-1]
        out.append(sensor(doc, path) if doc is not None else SensorReading(name, "", None, "", "absent"))
    return out


class RedfishEquipment:
    """The part every Redfish equipment driver (a CDU, a power shelf) shares: which member of
    an equipment collection the device is, its identity, its chassis and the chassis Sensors.

    A subclass sets ``COLLECTION`` (e.g. /redfish/v1/ThermalEquipment/CDUs) and ``WHAT``, and
    passes the configured member id (None: the collection's first member).
    """

    COLLECTION = ""
    WHAT = "equipment"

    def __init__(self, config: DeviceConfig, member_id: str | int | None, expand: bool = True) -> None:
        self.name = config.name
        self._config = config
        self._member_id = member_id
        self._transport = RedfishTransport(config)
        self._path: str | None = None
        self._use_expand = expand
        self._expand_ok: bool | None = None  # the service root, read once

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {self._config.address!r})"

    def _err(self, cls: type[DeviceError], operation: str, detail: str) -> DeviceError:
        return cls(self._config.name, self._config.address, operation, detail)

    def _equipment(self) -> str:
        """Path of this device's member of ``COLLECTION``, found once."""
        if self._path is None:
            if self._member_id is not None:
                self._path = f"{self.COLLECTION}/{self._member_id}"
            else:
                found = self._transport.members(self.COLLECTION)
                if not found:
                    op = f"find the {self.WHAT} (GET {self.COLLECTION})"
                    raise self._err(NotAvailable, op, "collection is empty")
                self._path = found[0]
        return self._path

    def _doc(self) -> dict[str, Any]:
        return self._transport.get(self._equipment())

    def _collection(
        self, key: str, operation: str, fetch: Callable[[str], dict[str, Any] | None] | None = None
    ) -> tuple[str, dict[str, Any]]:
        """(path, resource) of the collection the equipment links under ``key``, or at its
        canonical URI; NotAvailable when it has neither."""
        base = self._equipment()
        found = linked(self._transport, self._doc(), key, f"{base}/{key}", "Members", fetch)
        if found is None:
            raise self._err(NotAvailable, f"{operation} (GET {base})", f"the {self.WHAT} has no {key}")
        return found

    def _list(self, key: str, operation: str) -> tuple[str, list[str]]:
        """(collection path, member paths) of the collection under ``key`` (``_collection``)."""
        path, _ = self._collection(key, operation)
        return path, members(self._transport, path)

    def _list_docs(self, key: str, operation: str) -> list[tuple[str, dict[str, Any]]]:
        """(path, resource) of each member of the collection under ``key``: with ``$expand``, the
        GET that finds the collection is the one that reads its members."""
        path, found = self._collection(key, operation, self._expanded_or_plain if self._expands() else None)
        return self._member_docs(path, found)

    def _expands(self) -> bool:
        if self._expand_ok is None:
            self._expand_ok = self._use_expand and expand_advertised(self._transport.get("/redfish/v1"))
        return self._expand_ok

    def _member_docs(self, collection: str, found: dict[str, Any] | None = None) -> list[tuple[str, dict[str, Any]]]:
        """(path, resource) of each member of ``collection`` (``found``: the collection as read
        already): in one GET with ``$expand`` where the service root offers it (and option
        ``expand`` is not false), else one GET each. Why: a CDU poll reads pumps, filters,
        reservoirs and loops; one GET per member made it 21 requests on the simulator, each a
        round trip to an embedded web server on a real one."""
        if found is None and self._expands():
            found = self._expanded(collection)
        expanded = None if found is None else expanded_members(found)
        if expanded is not None:
            return expanded
        return [(p, self._transport.get(p)) for p in members(self._transport, collection)]

    def _expanded(self, collection: str) -> dict[str, Any] | None:
        """The collection GET with ``$expand``; None when the service refuses the query (an
        error status for what it advertised: ``$expand`` is not asked of it again) or lacks the
        collection, so the caller reads it the plain way."""
        try:
            return optional(self._transport, f"{collection}?$expand=.($levels=1)")
        except RedfishHttpError:
            self._expand_ok = False
            return None

    def _expanded_or_plain(self, collection: str) -> dict[str, Any] | None:
        return self._expanded(collection) or optional(self._transport, collection)

    def _chassis(self, operation: str) -> str:
        """The chassis the equipment links (Links.Chassis[0]); NotAvailable when it links none."""
        links = self._doc().get("Links")
        chassis = links.get("Chassis") if isinstance(links, dict) else None
        first = chassis[0] if isinstance(chassis, list) and chassis else None
        if isinstance(first, dict) and isinstance(first.get("@odata.id"), str):
            return first["@odata.id"]
        raise self._err(NotAvailable, operation, f"{self._equipment()} links no Chassis")

    @protocol_errors("identify (Manufacturer, Model, SerialNumber, FirmwareVersion)")
    def identify(self) -> Identity:
        """Manufacturer, Model, SerialNumber, FirmwareVersion of the equipment; "" where omitted."""
        doc = self._doc()
        keys = ("Manufacturer", "Model", "SerialNumber", "FirmwareVersion")
        return Identity(*(member_text(doc, k).strip() for k in keys))

    def close(self) -> None:
        self._transport.close()

    @protocol_errors("read sensors")
    def sensors(self) -> list[SensorReading]:
        """Every sensor of the equipment's chassis (its Sensors collection), in collection order."""
        chassis = self._chassis("read sensors")
        found = linked(self._transport, self._transport.get(chassis), "Sensors", f"{chassis}/Sensors", "Members")
        if found is None:
            raise self._err(NotAvailable, f"read sensors (GET {chassis})", "the chassis has no Sensors")
        return sensors(self._transport, found[0])
