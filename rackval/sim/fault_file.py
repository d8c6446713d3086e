"""Fault files (``--sim-faults``): a YAML list of faults, checked against the fault catalogue.

A fault file is a YAML list of entries, or a mapping with a ``faults:`` list::

    - id: psu1-dies
      kind: psu_failure
      device: node01
      component: PSU1
      start_at: 60
    - kind: device_slow
      device: pdu-a
      params: {delay_s: 2.5}

Every entry is checked by ``rackval.sim.faults.check_fault`` (the catalogue says which kinds,
components and parameters exist) and, given the ``RackModel`` the faults are meant for, against that
rack's topology (the device exists and is of the right kind, the outlet or port exists: what
``RackModel.inject`` would refuse). Every problem of the file is reported at once, one line each
with file, line and field; a file with one problem is a one-line error.

Why check against a model before any simulator runs: a bad fault file used to surface only once
the simulator process had started and refused it, once per test module. Building a ``RackModel``
of the same size and parameters in-process costs a tenth of a second and starts no server, so the
pytest plugin refuses the file as one usage error before collection.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rackval.core.errors import ConfigError
from rackval.core.yamlfile import YamlLocator, read_yaml
from rackval.sim.faults import Fault, check_fault, make_fault, suggest

if TYPE_CHECKING:
    from rackval.sim.model import RackModel


class _FaultEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | None = None
    kind: str
    device: str
    component: str | int | None = None
    start_at: float = Field(default=0.0)
    duration_s: float | None = None
    params: dict[str, Any] = Field(default_factory=dict)


_ENTRY_FIELDS = tuple(_FaultEntry.model_fields)


def load_faults(path: Path | str, rack: RackModel | None = None) -> list[Fault]:
    """Read a fault file (a YAML list, or a mapping with ``faults:``).

    Every problem is reported at once, each as ``file:line: field: message``, in a ``ConfigError``
    (one line when there is one problem). ``rack``, when given, is the model the faults are meant
    for: each fault's device, component and parameters are checked against its topology too.
    """
    path = Path(path)
    data, root = read_yaml(path, "fault")
    locator = YamlLocator(path, root, "fault")
    problems: list[str] = []

    def report(loc: tuple[Any, ...], message: str) -> None:
        problems.append(locator.line(loc, message))

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
        raise _error(path, problems)
    targets = rack.fault_targets() if rack is not None else None
    faults: list[Fault] = []
    seen: set[str] = set()
    for i, raw in enumerate(data):
        at = (*prefix, i)
        device_ok = True
        device = raw.get("device") if isinstance(raw, dict) else None
        if targets is not None and isinstance(device, str) and device not in targets:
            report((*at, "device"), f"no device {device!r} in the simulated rack ({suggest(device, targets)})")
            device_ok = False
        try:
            e = _FaultEntry.model_validate(raw)
        except ValidationError as exc:  # report every entry's problems, not just the first entry's
            for err in exc.errors():
                report((*at, *err["loc"]), _pydantic_message(err))
            continue
        component = None if e.component is None else str(e.component)
        found = check_fault(e.kind, component, e.params, e.start_at, e.duration_s)
        for loc, message in found:
            report((*at, *loc), message)
        if e.id is not None:
            if e.id in seen:
                report((*at, "id"), f"duplicate fault id {e.id!r}")
            seen.add(e.id)
        if found:
            continue
        fault = make_fault(
            e.kind, e.device, component, start_at=e.start_at, duration_s=e.duration_s,
            id=e.id or f"{path.stem}-{i + 1}", **e.params,
        )  # fmt: skip
        if rack is not None and device_ok:
            for loc, message in rack.fault_problems(fault):
                report((*at, *loc), message)
        faults.append(fault)
    if problems:
        raise _error(path, problems)
    return faults


def _pydantic_message(err: Any) -> str:
    if err["type"] == "extra_forbidden":
        field = str(err["loc"][-1]) if err["loc"] else ""
        return f"unknown field ({suggest(field, _ENTRY_FIELDS)})"
    if err["type"] == "missing":
        return "missing required field"
    return str(err["msg"])


def _error(path: Path, problems: list[str]) -> ConfigError:
    """One problem: its line alone. Several: a heading, then one line each."""
    if len(problems) == 1:
        return ConfigError(problems[0])
    return ConfigError(f"invalid fault file {path} ({len(problems)} problems):\n  " + "\n  ".join(problems))
