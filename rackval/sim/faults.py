"""Injectable faults of the simulated rack: a catalogue of kinds, a declarative ``Fault``, YAML loading.

A fault names what breaks (``kind``), where (``device`` and, for most kinds, ``component``), when
(``start_at`` virtual seconds on the simulator clock, optional ``duration_s``) and how
(``params``). ``RackModel.inject(fault)`` applies it, ``RackModel.clear_fault(id)`` removes it.

Two layers:
- *physical* kinds change the model itself (a PSU fails, a feed drops, a port goes down), so every
  device that reads the model sees the consequence the way real instruments would;
- *protocol* kinds change how one device's server answers (silent, slow, malformed ...). The
  model only records them as active per device (``RackModel.active_faults(device)``); each
  protocol server acts on the ones that concern it.

A fault file is a YAML list of entries, or a mapping with a ``faults:`` list::

    - id: psu1-dies
      kind: psu_failure
      device: node01
      component: PSU1
      start_at: 60
    - kind: device_slow
      device: pdu-a
      params: {delay_s: 2.5}
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rackval.core.errors import ConfigError


@dataclass(frozen=True)
class ParamSpec:
    """One parameter of a fault kind: its type, default (None = required) and meaning."""

    type: type
    default: Any
    description: str
    required: bool = False


@dataclass(frozen=True)
class FaultKind:
    """A catalogue entry: what the fault targets and which parameters it takes."""

    name: str
    layer: str  # "physical" | "protocol"
    target: str  # node | pdu | switch | feed | device (any device of the rack)
    component: str | None  # what ``component`` names, or None when the kind takes none
    component_required: bool
    description: str
    params: dict[str, ParamSpec] = field(default_factory=dict)


def _k(
    name: str,
    layer: str,
    target: str,
    component: str | None,
    description: str,
    *,
    required: bool = True,
    **params: ParamSpec,
) -> FaultKind:
    return FaultKind(name, layer, target, component, component is not None and required, description, params)


CATALOGUE: dict[str, FaultKind] = {
    k.name: k
    for k in (
        # ---- physical: the model implements these -------------------------------------------
        _k("psu_failure", "physical", "node", "PSU name (PSU1)", "The PSU stops delivering power; "
           "the others carry the load or the node trips; PSU status Failed; SEL Critical."),
        _k("fan_failure", "physical", "node", "fan name (Fan1)", "The fan stops (0 RPM); the others "
           "run at 100 %; GPU thermal resistance rises; SEL Critical."),
        _k("gpu_overheat", "physical", "node", "GPU name (GPU0); omitted = every GPU",
           "Cooling defect on a GPU: thermal resistance multiplied and/or a fixed extra rise; the GPU "
           "throttles (SwThermal 0x20) and, if even minimum power is too hot, HwThermal 0x40.",
           required=False,
           r_th_factor=ParamSpec(float, 2.5, "multiplier on the GPU's thermal resistance"),
           delta_c=ParamSpec(float, 0.0, "extra temperature rise independent of power (C)")),
        _k("bmc_slow_boot", "physical", "node", None, "The BMC takes longer to boot after its "
           "PSUs get input (a slow flash, a firmware self-test): Redfish answers only after the "
           "normal boot time plus extra_s. Seen on a power cycle; a running BMC is unaffected.",
           extra_s=ParamSpec(float, 60.0, "seconds added to every BMC boot")),
        _k("power_cap_slow", "physical", "node", None, "The BMC's power-capping loop is slow: a new "
           "limit is met only after `factor` times the CorrectionInMs it advertises (firmware bug, "
           "a capping loop that polls slowly).",
           factor=ParamSpec(float, 30.0, "multiplier on the capping response time")),
        _k("outlet_relay_stuck", "physical", "pdu", "outlet number (3)", "The outlet relay no longer "
           "follows commands (welded or open); switching it is accepted but changes nothing.",
           state=ParamSpec(str, "", "on | off: the state the relay sticks in (default: as it is)")),
        _k("link_down", "physical", "switch", "port name (Ethernet0)", "The link loses signal: oper "
           "down although admin up."),
        _k("miscabled_port", "physical", "switch", "port name (Ethernet0)", "The cables of two ports "
           "are swapped: each port's peer (LLDP neighbour) is the other's.",
           other_port=ParamSpec(str, None, "the port swapped with component", required=True)),
        _k("link_errors", "physical", "switch", "port name (Ethernet0)", "A bad cable/optic: bit "
           "errors at the given pre-FEC BER; FEC corrected/uncorrected and in_errors counters grow.",
           ber=ParamSpec(float, 1e-6, "pre-FEC bit error ratio"),
           uncorrectable_fraction=ParamSpec(float, 1e-3, "fraction of bit errors FEC cannot fix")),
        _k("firmware_off_baseline", "physical", "device", "firmware component (BIOS, BMC, GPU0, ...); "
           "omitted = the device's main firmware", "A component runs a firmware version other than "
           "the baseline.", required=False,
           version=ParamSpec(str, "", "the version reported (default: baseline + '-offbaseline')")),
        _k("feed_loss", "physical", "feed", None, "The feed (device = feed name, e.g. A) loses power: "
           "its PDU and every PSU on it lose input; SEL Warning per PSU."),
        # ---- protocol: recorded for the device's server to act on ---------------------------
        _k("device_silent", "protocol", "device", None, "The device answers nothing (requests time out)."),
        _k("device_slow", "protocol", "device", None, "Every answer is delayed.",
           delay_s=ParamSpec(float, 2.0, "added delay per request (s)"),
           jitter_s=ParamSpec(float, 0.0, "uniform extra delay 0..jitter_s (s)")),
        _k("malformed_reply", "protocol", "device", None, "Answers are corrupted.",
           probability=ParamSpec(float, 1.0, "fraction of replies affected"),
           mode=ParamSpec(str, "truncate", "truncate | garbage | wrong_length")),
        _k("auth_failure", "protocol", "device", None, "Valid credentials are refused."),
        _k("session_exhaustion", "protocol", "device", None, "No new session can be opened (Redfish "
           "503 / SSH refused) beyond max_sessions.",
           max_sessions=ParamSpec(int, 0, "sessions still allowed")),
        _k("snmp_no_such_object", "protocol", "device", None, "The agent answers noSuchObject.",
           oid_prefix=ParamSpec(str, "", "only OIDs under this prefix (default: every OID)")),
        _k("snmp_wrong_type", "protocol", "device", None, "The agent answers with a wrong ASN.1 type.",
           oid_prefix=ParamSpec(str, "", "only OIDs under this prefix (default: every OID)")),
        _k("scpi_error", "protocol", "device", None, "The instrument queues an SCPI error.",
           code=ParamSpec(int, -222, "SCPI error code"),
           message=ParamSpec(str, "Data out of range", "SCPI error message"),
           command=ParamSpec(str, "", "only for commands starting with this (default: every command)")),
        _k("ssh_disconnect", "protocol", "device", None, "The SSH server drops the connection.",
           after_commands=ParamSpec(int, 0, "commands answered before the drop")),
    )
}  # fmt: skip

PHYSICAL_KINDS = frozenset(k for k, v in CATALOGUE.items() if v.layer == "physical")
PROTOCOL_KINDS = frozenset(k for k, v in CATALOGUE.items() if v.layer == "protocol")

_ids = itertools.count(1)


@dataclass(frozen=True)
class Fault:
    """One fault to inject. ``params`` are completed with the kind's defaults by ``make_fault``."""

    kind: str
    device: str
    component: str | None = None
    start_at: float = 0.0
    duration_s: float | None = None
    params: dict[str, Any] = field(default_factory=dict)
    id: str = ""

    def param(self, name: str) -> Any:
        spec = CATALOGUE[self.kind].params[name]
        return self.params.get(name, spec.default)


def check_fault(
    kind: str, component: str | None, params: dict[str, Any], start_at: float, duration_s: float | None
) -> list[tuple[tuple[str, ...], str]]:
    """Problems with a fault's fields as (field path, message); empty when it is valid."""
    spec = CATALOGUE.get(kind)
    if spec is None:
        return [(("kind",), f"unknown fault kind {kind!r} (known: {', '.join(sorted(CATALOGUE))})")]
    problems: list[tuple[tuple[str, ...], str]] = []
    if start_at < 0:
        problems.append((("start_at",), "must be >= 0 (virtual seconds since the rack started)"))
    if duration_s is not None and duration_s <= 0:
        problems.append((("duration_s",), "must be > 0"))
    if spec.component is None and component is not None:
        problems.append((("component",), f"{kind} takes no component"))
    if spec.component_required and not component:
        problems.append((("component",), f"{kind} needs a component: {spec.component}"))
    for name, value in params.items():
        p = spec.params.get(name)
        if p is None:
            known = ", ".join(spec.params) or "none"
            problems.append((("params", name), f"unknown parameter of {kind} (known: {known})"))
        elif not _type_ok(value, p.type):
            problems.append((("params", name), f"must be {p.type.__name__}, got {value!r}"))
    for name, p in spec.params.items():
        if p.required and name not in params:
            problems.append((("params", name), f"missing required parameter of {kind}: {p.description}"))
    return problems


def _type_ok(value: Any, want: type) -> bool:
    if want is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if want is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, want)


def make_fault(
    kind: str,
    device: str,
    component: str | None = None,
    *,
    start_at: float = 0.0,
    duration_s: float | None = None,
    id: str | None = None,  # the field is called id in fault files
    **params: Any,
) -> Fault:
    """Build a validated ``Fault`` with defaults filled in; raises ValueError naming the problem."""
    problems = check_fault(kind, component, params, start_at, duration_s)
    if problems:
        raise ValueError(f"fault {kind} on {device}: " + "; ".join(f"{'.'.join(f)}: {m}" for f, m in problems))
    spec = CATALOGUE[kind]
    full = {name: params.get(name, p.default) for name, p in spec.params.items()}
    return Fault(kind, device, component, float(start_at), duration_s, full, id or f"fault-{next(_ids)}")


class _FaultEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | None = None
    kind: str
    device: str
    component: str | int | None = None
    start_at: float = Field(default=0.0)
    duration_s: float | None = None
    params: dict[str, Any] = Field(default_factory=dict)


def load_faults(path: Path | str, devices: set[str] | None = None) -> list[Fault]:
    """Read a fault file (a YAML list, or a mapping with ``faults:``).

    Every problem is reported at once as ``file:line: field: message`` in a ``ConfigError``.
    ``devices``, when given, is the set of valid device names (e.g. ``model.fault_targets()``).
    """
    from rackval.core.yamlfile import YamlLocator  # the harness owns YAML line lookup

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except OSError as exc:
        raise ConfigError(f"fault file {path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"fault file {path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: fault file is not valid YAML: {getattr(exc, 'problem', None) or exc}") from None
    locator = YamlLocator(path, root, "fault")
    problems: list[str] = []

    def report(loc: tuple[Any, ...], message: str) -> None:
        err = locator.error(loc, message)  # "invalid fault file:\n  file:line: field: message"
        problems.append(str(err).split("\n", 1)[1].strip())

    prefix: tuple[Any, ...] = ()
    if data is None:
        return []
    if isinstance(data, dict):
        prefix = ("faults",)
        for key in data:
            if key != "faults":
                report((key,), "unknown field (a fault file holds only 'faults:')")
        data = data.get("faults") or []
    if not isinstance(data, list):
        report(prefix, f"must be a YAML list of faults, got {type(data).__name__}")
        raise ConfigError("invalid fault file:\n  " + "\n  ".join(problems))
    faults: list[Fault] = []
    seen: set[str] = set()
    for i, raw in enumerate(data):
        at = (*prefix, i)
        try:
            e = _FaultEntry.model_validate(raw)
        except ValidationError as exc:  # report every entry's problems, not just the first entry's
            for err in exc.errors():
                msg = err["msg"]
                if err["type"] == "extra_forbidden":
                    msg = "unknown field (check the spelling)"
                elif err["type"] == "missing":
                    msg = "missing required field"
                report((*at, *err["loc"]), msg)
            device = raw.get("device") if isinstance(raw, dict) else None
            if devices is not None and isinstance(device, str) and device not in devices:
                report((*at, "device"), f"no device {device!r} in the simulated rack")
            continue
        component = None if e.component is None else str(e.component)
        found = check_fault(e.kind, component, e.params, e.start_at, e.duration_s)
        for loc, message in found:
            report((*at, *loc), message)
        if devices is not None and e.device not in devices:
            report((*at, "device"), f"no device {e.device!r} in the simulated rack")
        if e.id is not None:
            if e.id in seen:
                report((*at, "id"), f"duplicate fault id {e.id!r}")
            seen.add(e.id)
        if not found:
            faults.append(
                make_fault(
                    e.kind, e.device, component, start_at=e.start_at, duration_s=e.duration_s,
                    id=e.id or f"{path.stem}-{i + 1}", **e.params,
                )
            )  # fmt: skip
    if problems:
        raise ConfigError("invalid fault file:\n  " + "\n  ".join(problems))
    return faults
