"""The design spec: requirements with limits and units, and the firmware baseline.

Plans never hard-code a number: they ask the spec for a requirement by key, so the same plans
judge every design revision against that revision's own limits. Which is why a spec written for
one design revision, run against a rack built to another, is worth a warning
(``revision_mismatch``): its limits may not be that rack's.

The spec also says what each class of node must report (``node_classes``): a GPU compute node
has inlet and GPU temperature sensors, a management node or a switch tray has no GPUs. A plan
asks ``spec.expectation(inventory, node)`` so that an absent reading the class expects is a
failure and one it does not expect is not applicable. A spec without ``node_classes`` expects
``IMPLICIT_NODE_EXPECT`` of every node (what the plans assumed before classes existed).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rackval.core.errors import ConfigError
from rackval.core.hints import did_you_mean
from rackval.core.yamlfile import YamlLocator, load_yaml_model
from rackval.harness.measure import Limit
from rackval.harness.units import known_units

if TYPE_CHECKING:
    from rackval.harness.inventory import Inventory

RUN_SPEC_REVISION = "spec_design_revision"
"""The run metadata key (``RunInfo.metadata``) under which a run keeps its spec's design revision."""
RUN_SPEC_REQUIREMENTS = "spec_requirements"
"""The run metadata key of the spec's requirements as the run was judged by (``Spec.run_record``):
the report's requirement rollup, coverage and units, and compare's tolerances, read them from the
run, so they do not depend on the spec file still being where it was."""
DEFAULT_TOLERANCE_PCT = 2.0
"""A margin change smaller than this % of the limit reference is "unchanged" (``defaults.tolerance_pct``)."""

IMPLICIT_NODE_EXPECT = ("inlet_temperature", "gpu_temperature")
"""What every node expects when the spec has no ``node_classes``."""


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
    # The measurement's stated accuracy, in ``unit``: between two runs, a change of the value or
    # margin smaller than this is "unchanged" (noise), not a regression or an improvement.
    tolerance: float | None = Field(default=None, ge=0, allow_inf_nan=False)

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
    # Between two runs, a margin change smaller than this % of the limit reference (the span of a
    # two-sided limit, the magnitude of a one-sided one) is "unchanged"; per requirement,
    # ``tolerance`` (an absolute accuracy) can widen it. ``rackval compare --threshold`` overrides.
    tolerance_pct: float = Field(default=DEFAULT_TOLERANCE_PCT, ge=0, allow_inf_nan=False)


class NodeClass(_Strict):
    """A class of node (GPU compute, management, switch tray): the readings a node of the class
    must report, named by the requirement keys that judge them (``inlet_temperature``)."""

    description: str = ""
    expect: list[str] = Field(default_factory=list)


class Coolant(_Strict):
    """The secondary loop's coolant, which turns a flow and a temperature rise into heat
    (Q = rho q c_p dT): the design states it, the cooling plans compute with it."""

    name: str = ""
    density_kg_m3: float = Field(gt=0, allow_inf_nan=False)
    specific_heat_j_kg_k: float = Field(gt=0, allow_inf_nan=False)


class SpecFile(_Strict):
    spec: SpecMeta
    defaults: Defaults = Field(default_factory=Defaults)
    requirements: dict[str, Requirement]
    node_classes: dict[str, NodeClass] = Field(default_factory=dict)
    # the class of a node whose rack file entry names none (required with node_classes)
    default_node_class: str | None = None
    firmware_baseline: dict[str, str] = Field(default_factory=dict)
    coolant: Coolant | None = None  # a liquid-cooled design's coolant (the energy balance needs it)


def _did_you_mean(name: str, known: list[str]) -> str:
    hint = did_you_mean(name, known)
    return f"{hint} " if hint else ""


def _check_node_classes(data: SpecFile, where: YamlLocator) -> None:
    """The default class is one of the classes, and every expected reading is a requirement."""
    classes = sorted(data.node_classes)
    if data.default_node_class is None and classes:
        raise where.error(
            ("node_classes",),
            f"node_classes needs a default_node_class (the class of nodes whose rack file entry names none;"
            f" one of: {', '.join(classes)})",
        )
    if data.default_node_class is not None and data.default_node_class not in data.node_classes:
        known = f"the spec's classes: {', '.join(classes)}" if classes else "the spec has no node_classes"
        raise where.error(
            ("default_node_class",),
            f"unknown node class {data.default_node_class!r} ({_did_you_mean(data.default_node_class, classes)}"
            f"{known})",
        )
    keys = sorted(data.requirements)
    problems = [
        (("node_classes", name, "expect", i), f"no requirement {key!r} ({_did_you_mean(key, keys)}"
                                              f"the readings a class expects are named by requirement keys)")
        for name, node_class in data.node_classes.items()
        for i, key in enumerate(node_class.expect)
        if key not in data.requirements
    ]  # fmt: skip
    if problems:
        raise where.errors(problems)


@dataclass(frozen=True)
class NodeExpectation:
    """What one node (or a device outside any node) must report, by its class."""

    node: str
    node_class: str  # "" when the spec has no node_classes
    expect: frozenset[str]

    def expects(self, key: str) -> bool:
        return key in self.expect

    def describe(self) -> str:
        """``node node01 (class 'management')``, or ``node node01`` for a spec without classes."""
        return f"node {self.node} (class {self.node_class!r})" if self.node_class else f"node {self.node}"


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

    def coolant(self) -> Coolant:
        """The design's coolant, or a ConfigError naming the spec (a plan computing heat needs it)."""
        if self.data.coolant is None:
            raise ConfigError(
                f"spec {self.path}: no 'coolant' section (name, density_kg_m3, specific_heat_j_kg_k): "
                "the heat a coolant flow carries cannot be computed without it"
            )
        return self.data.coolant

    def __getitem__(self, key: str) -> Limit:
        return self.limit(key)

    def run_record(self) -> dict[str, object]:
        """What a run keeps of this spec (``RUN_SPEC_REQUIREMENTS``): every requirement with its
        limits, unit, marginal band, tolerance and description, and the spec's tolerance_pct."""
        defaults = self.data.defaults
        return {
            "tolerance_pct": defaults.tolerance_pct,
            "requirements": {
                key: {
                    "description": req.description, "min": req.min, "max": req.max, "unit": req.unit,
                    "marginal": req.marginal if req.marginal is not None else defaults.marginal,
                    "tolerance": req.tolerance,
                }
                for key, req in self.data.requirements.items()
            },
        }  # fmt: skip

    def expectation(self, inventory: Inventory, device: str) -> NodeExpectation:
        """What the node that ``device`` belongs to (its BMC, its host, or the node itself) must
        report; a device outside every node gets the default class. ConfigError naming the rack
        file line for a class the spec does not define."""
        node = inventory.node_of(device)
        name = device if node is None else node
        named = inventory.data.nodes[node].node_class if node is not None else None
        if not self.data.node_classes:
            if named is not None:
                raise self._unknown_class(inventory, name, named)
            return NodeExpectation(name, "", frozenset(IMPLICIT_NODE_EXPECT))
        cls = named or self.data.default_node_class or ""
        if cls not in self.data.node_classes:
            raise self._unknown_class(inventory, name, cls)
        return NodeExpectation(name, cls, frozenset(self.data.node_classes[cls].expect))

    def check_rack(self, inventory: Inventory) -> None:
        """Every ``class:`` in the rack file is one of this spec's node classes (ConfigError naming
        the rack file's line otherwise)."""
        for node in inventory.data.nodes:
            self.expectation(inventory, node)

    def _unknown_class(self, inventory: Inventory, node: str, cls: str) -> ConfigError:
        classes = sorted(self.data.node_classes)
        if not classes:
            return inventory.node_error(
                node, "class", f"node class {cls!r}, but the spec {self.path} defines no node_classes"
                f" (without them every node expects {', '.join(IMPLICIT_NODE_EXPECT)})",
            )  # fmt: skip
        return inventory.node_error(
            node, "class", f"unknown node class {cls!r} ({_did_you_mean(cls, classes)}the spec {self.path}"
            f" has: {', '.join(classes)})",
        )  # fmt: skip


def load_spec(path: str | Path) -> Spec:
    path = Path(path)
    data, where = load_yaml_model(path, SpecFile, "spec")
    _check_node_classes(data, where)
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
