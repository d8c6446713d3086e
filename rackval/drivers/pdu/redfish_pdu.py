"""A rack PDU over DMTF Redfish (PowerEquipment/RackPDUs): identity, outlets, power, switching.

Redfish PDUs (DMTF PowerDistribution / Outlet / Circuit schemas) describe outlets as resources,
so there is no vendor map: the differences are which optional properties a PDU fills in.
What this driver relies on, as the DMTF public-pdu mockup shows it [V]:

* ``/redfish/v1/PowerEquipment/RackPDUs/{id}``: Manufacturer, Model, SerialNumber,
  FirmwareVersion; links ``Outlets``, ``Mains``, ``Metrics``.
* ``Outlets/{id}``: ``PowerState`` ("On" / "Off"), ``PowerWatts.Reading`` (W),
  ``CurrentAmps.Reading`` (A), ``Actions["#Outlet.PowerControl"].target``. Un-managed outlets
  carry none of these.
* ``Metrics``: ``PowerWatts.Reading`` (the PDU's total active power).
* ``Mains/{id}``: ``PowerWatts.Reading`` or per-line ``PolyPhasePowerWatts``.

Outlet.PowerControl returns before the relay moves (and a PDU may sequence outlets), so
``set_outlet`` polls the outlet's PowerState until it agrees. Values are type-checked
(``rackval.drivers.transport.redfish_json``): a Manufacturer that is not a string, or a
reading that is not a finite number, is a DeviceProtocolError naming the field.

What a PDU leaves out is absent, not an error: an outlet without ``PowerWatts`` / ``CurrentAmps``
has those readings None (its state is still read), identity fields it omits are empty, and a
total it cannot give (no Metrics reading, no Mains readings) or an Outlets collection it does
not link raises ``NotAvailable``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from rackval.core.errors import DeviceError, DeviceProtocolError, DeviceTimeout, NotAvailable, protocol_errors
from rackval.drivers.capabilities import Device, Identity, OutletReading, OutletSwitch, PowerMeter
from rackval.drivers.config import DeviceConfig
from rackval.drivers.options import RedfishPduOptions, parse_options
from rackval.drivers.transport.redfish import RedfishHttpError, RedfishTransport
from rackval.drivers.transport.redfish_json import link, member_text, reading

RACK_PDUS = "/redfish/v1/PowerEquipment/RackPDUs"
# Resource.PowerState members [V]; transitional states report the state the outlet is still in.
_ON_STATES = {"On": True, "PoweringOff": True, "Off": False, "PoweringOn": False}
# Per-line keys of PolyPhasePowerWatts, wye first (line-to-neutral sums to the total), then delta.
_WYE = ("Line1ToNeutral", "Line2ToNeutral", "Line3ToNeutral")
_DELTA = ("Line1ToLine2", "Line2ToLine3", "Line3ToLine1")


class RedfishRackPdu(Device, PowerMeter, OutletSwitch):
    """A switched, metered rack PDU reached over Redfish. Device, PowerMeter and OutletSwitch.

    Outlets are numbered 1..N in the order the Outlets collection lists them; ``outlets()``
    reports each outlet's Redfish ``Id`` (e.g. "A1", the label printed on the PDU) as its name,
    and ``outlet_ids()`` gives the same list for building a rack file. An outlet without a
    ``PowerState`` (an un-managed outlet: no relay) is reported on — it is energised whenever
    the PDU is — with no readings, and ``set_outlet`` refuses it.

    Options (``config.options``), besides the transport's (``scheme``, ``verify``, ``auth``,
    ``retries_503``, ``backoff_s``, ``backoff_max_s``, ``max_body_bytes``: see
    ``rackval.drivers.transport.redfish.RedfishTransport``):

    - ``pdu_id``: which member of /redfish/v1/PowerEquipment/RackPDUs this device is (default:
      the first member listed).
    - ``power_source``: where ``power_watts()`` reads: ``"auto"`` (default: the PDU's
      ``Metrics`` PowerWatts.Reading, else the mains circuits), ``"metrics"`` or ``"mains"``
      (sum over Mains circuits of PowerWatts.Reading, or of their line-to-neutral
      PolyPhasePowerWatts readings, or of the line-to-line ones [U: which one a delta-fed
      PDU fills in is vendor practice]).
    - ``confirm_timeout_s`` (default 10): how long ``set_outlet`` polls PowerState.
    - ``poll_interval_s`` (default 0.5): pause between those polls.
    """

    options_model = RedfishPduOptions

    def __init__(self, config: DeviceConfig) -> None:
        self.name = config.name
        self._config = config
        opts = parse_options(self.options_model, config.options, config.name)
        self._pdu_id = opts.pdu_id
        self._power_source = opts.power_source
        self.confirm_timeout_s = opts.confirm_timeout_s
        self.poll_interval_s = opts.poll_interval_s
        self._transport = RedfishTransport(config)
        self._pdu_path: str | None = None
        self._outlet_paths: list[str] | None = None

    def __repr__(self) -> str:
        return f"RedfishRackPdu({self.name!r}, {self._config.address!r})"

    def _err(self, cls: type[DeviceError], operation: str, detail: str) -> DeviceError:
        return cls(self._config.name, self._config.address, operation, detail)

    # ---- resources -------------------------------------------------------------------------------
    def _pdu(self) -> str:
        """Path of this rack PDU, found once (configured id, or the collection's first member)."""
        if self._pdu_path is None:
            if self._pdu_id is not None:
                self._pdu_path = f"{RACK_PDUS}/{self._pdu_id}"
            else:
                members = self._transport.members(RACK_PDUS)
                if not members:
                    raise self._err(DeviceProtocolError, f"find the rack PDU (GET {RACK_PDUS})", "collection is empty")
                self._pdu_path = members[0]
        return self._pdu_path

    def _outlets(self) -> list[str]:
        """Outlet resource paths in collection order, read once: outlets do not come and go."""
        if self._outlet_paths is None:
            pdu_path = self._pdu()
            doc = self._transport.get(pdu_path)
            collection = link(doc, "Outlets")
            if collection is None:
                raise self._err(NotAvailable, f"list outlets (GET {pdu_path})", "the PDU links no Outlets")
            self._outlet_paths = self._transport.members(collection)
        return self._outlet_paths

    def outlet_ids(self) -> list[str]:
        """Redfish Id of outlet 1..N (the last path segment), e.g. ["A1", "A2", ...]."""
        return [path.rstrip("/").rsplit("/", 1)[-1] for path in self._outlets()]

    # ---- Device ----------------------------------------------------------------------------------
    @protocol_errors("identify (Manufacturer, Model, SerialNumber, FirmwareVersion)")
    def identify(self) -> Identity:
        """Manufacturer, Model, SerialNumber, FirmwareVersion; fields the PDU omits are ""."""
        doc = self._transport.get(self._pdu())
        fields = ("Manufacturer", "Model", "SerialNumber", "FirmwareVersion")
        return Identity(*(member_text(doc, key).strip() for key in fields))

    def close(self) -> None:
        self._transport.close()

    # ---- PowerMeter ------------------------------------------------------------------------------
    @protocol_errors("read power")
    def power_watts(self) -> float:
        """The PDU's total active power in W (see option ``power_source``)."""
        pdu_path = self._pdu()
        doc = self._transport.get(pdu_path)
        if self._power_source in ("auto", "metrics"):
            metrics = link(doc, "Metrics")
            watts: float | None = None
            if metrics is not None:
                try:
                    watts = reading(self._transport.get(metrics), "PowerWatts", f"{metrics} PowerWatts")
                except RedfishHttpError as exc:
                    if exc.status != 404 or self._power_source == "metrics":
                        raise
            if watts is not None:
                return watts
            if self._power_source == "metrics":
                raise self._err(
                    NotAvailable, f"read power (GET {metrics or pdu_path})", "the PDU reports no PowerWatts.Reading"
                )
        return self._mains_watts(pdu_path, doc)

    def _mains_watts(self, pdu_path: str, doc: Mapping[str, Any]) -> float:
        op = f"read power from the mains circuits of {pdu_path}"
        mains = link(doc, "Mains")
        if mains is None:
            raise self._err(NotAvailable, op, "the PDU links neither a Metrics PowerWatts nor Mains")
        total = 0.0
        circuits = self._transport.members(mains)
        if not circuits:
            raise self._err(DeviceProtocolError, op, f"{mains} has no circuits")
        for path in circuits:
            circuit = self._transport.get(path)
            watts = reading(circuit, "PowerWatts", f"{path} PowerWatts")
            if watts is None:
                lines = circuit.get("PolyPhasePowerWatts")
                lines = lines if isinstance(lines, dict) else {}
                for keys in (_WYE, _DELTA):
                    values = [reading(lines, k, f"{path} PolyPhasePowerWatts.{k}") for k in keys if k in lines]
                    if values and all(v is not None for v in values):
                        watts = sum(v for v in values if v is not None)
                        break
            if watts is None:  # a total without this circuit would be wrong, not smaller
                raise self._err(NotAvailable, op, f"{path} reports no PowerWatts or PolyPhasePowerWatts")
            total += watts
        return round(total, 9)

    # ---- OutletSwitch ----------------------------------------------------------------------------
    @protocol_errors("read outlets")
    def outlets(self) -> list[OutletReading]:
        """Every outlet's Id, state, power (W) and current (A), in collection order (one GET each)."""
        result = []
        for n, path in enumerate(self._outlets(), start=1):
            doc = self._transport.get(path)
            result.append(
                OutletReading(
                    outlet=n,
                    name=member_text(doc, "Id", f"{path} Id") or path.rsplit("/", 1)[-1],
                    on=self._on(doc, path, f"read outlet {n} (GET {path})", unmanaged_on=True),
                    power_w=reading(doc, "PowerWatts", f"{path} PowerWatts"),
                    current_a=reading(doc, "CurrentAmps", f"{path} CurrentAmps"),
                )
            )
        return result

    def set_outlet(self, outlet: int, on: bool) -> None:
        """POST Outlet.PowerControl {"PowerState": "On"|"Off"}, then poll until PowerState agrees.

        Destructive: callers go through the harness's safety gate.
        """
        target_state = "On" if on else "Off"
        op = f"switch outlet {outlet} {target_state.lower()}"
        paths = self._outlets()
        if not isinstance(outlet, int) or isinstance(outlet, bool) or not 1 <= outlet <= len(paths):
            raise self._err(DeviceError, op, f"no such outlet (PDU has 1..{len(paths)})")
        path = paths[outlet - 1]
        doc = self._transport.get(path)
        if "PowerState" not in doc:
            raise self._err(DeviceError, op, f"{path} is not switchable (an un-managed outlet: no PowerState)")
        actions = doc.get("Actions")
        action = actions.get("#Outlet.PowerControl") if isinstance(actions, dict) else None
        if isinstance(action, dict) and isinstance(action.get("target"), str):
            target = action["target"]
        else:
            target = f"{path}/Actions/Outlet.PowerControl"  # the schema's default URI
        self._transport.post(target, {"PowerState": target_state})
        deadline = time.monotonic() + self.confirm_timeout_s
        poll_op = f"{op}: confirm PowerState (GET {path})"
        while True:
            state = self._transport.get(path).get("PowerState")
            if state == target_state:
                return
            if time.monotonic() >= deadline:
                raise self._err(
                    DeviceTimeout,
                    op,
                    f"{path} PowerState is still {state!r} {self.confirm_timeout_s:g} s after "
                    f"POST {target} was accepted",
                )
            if state not in _ON_STATES:
                raise self._err(DeviceProtocolError, poll_op, f"unexpected PowerState {state!r}")
            time.sleep(min(self.poll_interval_s, max(deadline - time.monotonic(), 0.0)))

    def _on(self, doc: Mapping[str, Any], path: str, op: str, *, unmanaged_on: bool) -> bool:
        if "PowerState" not in doc and unmanaged_on:
            return True
        state = doc.get("PowerState")
        if state not in _ON_STATES:
            raise self._err(DeviceProtocolError, op, f"{path} has unexpected PowerState {state!r}")
        return _ON_STATES[state]
