"""The design spec: requirements with limits and units, and the firmware baseline.

Plans never hard-code a number: they ask the spec for a requirement by key, so the same plans
judge every design revision against that revision's own limits. Which is why a spec written for
one design revision, run against a rack built to another, is worth a warning
(``revision_mismatch``): its limits may not be that rack's.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rackval.core.errors import ConfigError
from rackval.core.yamlfile import load_yaml_model
from rackval.harness.measure import Limit
from rackval.harness.units import known_units

RUN_SPEC_REVISION = "spec_design_revision"
"""The run metadata key (``RunInfo.metadata``) under which a run keeps its spec's design revision."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SpecMeta(_Strict):
    name: str
    version: str
    design_revision: str = ""
    description: str = ""


class Requirement(_Strict):
    description: str = ""
    # NaN would make every comparison false, so every value would pass: finite numbers only
    min: float | None = Field(default=None, allow_inf_nan=False)
    max: float | None = Field(default=None, allow_inf_nan=False)
    unit: str
    marginal: float | None = Field(default=None, ge=0, lt=1, allow_inf_nan=False)

    @model_validator(mode="after")
    def _bounds(self) -> Requirement:
        if self.min is None and self.max is None:
            raise ValueError("a requirement needs 'min', 'max' or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        if self.unit not in known_units():
            raise ValueError(f"unknown unit {self.unit!r} (known: {', '.join(known_units())})")
        return self


class Defaults(_Strict):
    marginal: float = Field(default=0.05, ge=0, lt=1, allow_inf_nan=False)


class SpecFile(_Strict):
    spec: SpecMeta
    defaults: Defaults = Field(default_factory=Defaults)
    requirements: dict[str, Requirement]
    firmware_baseline: dict[str, str] = Field(default_factory=dict)


class Spec:
    """A loaded spec. ``spec.limit(key)`` gives the Limit a plan judges against."""

    def __init__(self, path: Path, data: SpecFile) -> None:
        self.path = path
        self.data = data

    @property
    def name(self) -> str:
        return self.data.spec.name

    @property
    def version(self) -> str:
        return self.data.spec.version

    @property
    def design_revision(self) -> str:
        return self.data.spec.design_revision

    def limit(self, key: str) -> Limit:
        req = self.data.requirements.get(key)
        if req is None:
            raise ConfigError(
                f"spec {self.path}: no requirement {key!r} (it has: {', '.join(sorted(self.data.requirements))})"
            )
        return Limit(
            low=req.min,
            high=req.max,
            unit=req.unit,
            marginal=req.marginal if req.marginal is not None else self.data.defaults.marginal,
            requirement=key,
            description=req.description,
        )

    def __getitem__(self, key: str) -> Limit:
        return self.limit(key)


def load_spec(path: str | Path) -> Spec:
    path = Path(path)
    data, _ = load_yaml_model(path, SpecFile, "spec")
    return Spec(path, data)


def revision_mismatch(spec_revision: str, rack_revision: str) -> str:
    """The warning to show when a spec's and a rack's design revisions are both set and differ
    (compared as written, surrounding spaces aside); "" when they agree or either is unset."""
    spec_revision, rack_revision = spec_revision.strip(), rack_revision.strip()
    if not spec_revision or not rack_revision or spec_revision == rack_revision:
        return ""
    return (
        f"design revision mismatch: the spec is for design revision {spec_revision!r}, the rack file says"
        f" {rack_revision!r}; its limits may not be this rack's"
    )
