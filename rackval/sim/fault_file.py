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
components and parameters exist); every problem of the file is reported at once, with file, line
and field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rackval.core.errors import ConfigError
from rackval.core.yamlfile import YamlLocator
from rackval.sim.faults import Fault, check_fault, make_fault


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
