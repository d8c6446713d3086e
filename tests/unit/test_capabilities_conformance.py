"""Every built-in driver keeps the capability contract its class statement claims.

Modelled on NAPALM's ``test_method_signatures`` (each driver's methods against the base class's):
a driver claims a capability by subclassing its Protocol (``class IpmiBmc(Device, Bmc, ...)``), so
the claims are read from the class's MRO, and for each claimed Protocol every method must be

- implemented by the driver itself: a method that resolves to the Protocol's own empty body is
  missing (subclassing a Protocol would otherwise hide it: the call would return None);
- a plain method with the Protocol's parameters first, in order, with the same names, kinds,
  defaults and annotations (as written), and the same return annotation; extra parameters are
  allowed only when optional and usable by keyword (or ``**kwargs``).

A driver that has every method of a capability it does not claim is reported too: the class
statement is the complete list of what the driver can do. Data members (``Device.name``) are set
per instance in ``__init__``; ``isinstance`` checks those on live drivers in the peer/sim tests.
The checker is tested on deliberately wrong classes below, so a broken checker cannot pass silently.
"""

from __future__ import annotations

import inspect
from typing import Protocol

import pytest

from rackval.drivers import capabilities, registry
from rackval.drivers.capabilities import Bmc, Device, EventLog, HostReset, Identity, LogEntry, PowerLimit

CAPABILITIES: tuple[type, ...] = tuple(
    obj for obj in vars(capabilities).values() if isinstance(obj, type) and Protocol in obj.__bases__
)
_EMPTY = inspect.Parameter.empty
_BY_KEYWORD = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def protocol_methods(protocol: type) -> dict[str, object]:
    """The methods a capability Protocol declares itself (name -> function)."""
    return {n: v for n, v in vars(protocol).items() if inspect.isfunction(v) and not n.startswith("_")}


def claimed(cls: type) -> list[type]:
    """The capability Protocols ``cls`` claims: those in its MRO."""
    return [c for c in cls.__mro__ if c in CAPABILITIES]


def _annotation(value: object) -> str:
    text = value if isinstance(value, str) else inspect.formatannotation(value)
    return "".join(text.split())


def signature_problems(where: str, want: inspect.Signature, got: inspect.Signature) -> list[str]:
    """How ``got`` (a driver's method) differs from ``want`` (the Protocol's) in ways a caller notices."""
    problems = []
    wanted, given = list(want.parameters.values()), list(got.parameters.values())
    for i, w in enumerate(wanted):
        if i >= len(given):
            problems.append(f"{where}: lacks parameter {w.name!r}")
            continue
        g = given[i]
        if g.name != w.name:
            problems.append(f"{where}: parameter {i} is {g.name!r}, the Protocol's is {w.name!r}")
        if g.kind != w.kind:
            problems.append(f"{where}: parameter {w.name!r} is {g.kind.description}, not {w.kind.description}")
        if (g.default is _EMPTY) != (w.default is _EMPTY) or (w.default is not _EMPTY and g.default != w.default):
            problems.append(f"{where}: parameter {w.name!r} defaults to {g.default!r}, not {w.default!r}")
        if w.annotation is not _EMPTY and _annotation(g.annotation) != _annotation(w.annotation):
            problems.append(f"{where}: parameter {w.name!r} is annotated {g.annotation!r}, not {w.annotation!r}")
    for g in given[len(wanted) :]:
        optional = g.kind in _BY_KEYWORD and g.default is not _EMPTY
        if not (optional or g.kind is inspect.Parameter.VAR_KEYWORD):
            problems.append(f"{where}: extra parameter {g.name!r} must be optional and usable by keyword")
    if want.return_annotation is not _EMPTY and _annotation(got.return_annotation) != _annotation(
        want.return_annotation
    ):
        problems.append(f"{where}: returns {got.return_annotation!r}, not {want.return_annotation!r}")
    return problems


def conformance_problems(cls: type) -> list[str]:
    """Everything in which ``cls`` breaks the contract of the capabilities it claims (empty: none)."""
    problems = []
    claims = claimed(cls)
    for protocol in claims:
        for name, declared in protocol_methods(protocol).items():
            owner = next(c for c in cls.__mro__ if name in vars(c))
            where = f"{cls.__name__}.{name} ({protocol.__name__})"
            if Protocol in owner.__bases__:
                problems.append(f"{where}: claimed but not implemented")
                continue
            impl = vars(owner)[name]
            if not inspect.isfunction(impl):
                problems.append(f"{where}: is a {type(impl).__name__}, not a method")
                continue
            problems += signature_problems(where, inspect.signature(declared), inspect.signature(impl))
    for protocol in CAPABILITIES:
        methods = protocol_methods(protocol)
        if protocol not in claims and methods and all(inspect.isfunction(getattr(cls, m, None)) for m in methods):
            problems.append(f"{cls.__name__} has every method of {protocol.__name__} but does not claim it")
    return problems


# ---- the built-in drivers -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(registry.BUILTIN))
def test_builtin_driver_keeps_the_contract_it_claims(name: str) -> None:
    cls = registry.load(name)
    assert Device in claimed(cls), f"{name} ({cls.__name__}) does not claim Device"
    assert conformance_problems(cls) == []


def test_every_capability_is_found_and_every_protocol_method_is_documented() -> None:
    names = {p.__name__ for p in CAPABILITIES}
    assert {"Device", "Bmc", "HostReset", "PowerLimit", "EventLog", "FirmwareInventory", "PortCounterSource"} <= names
    for protocol in CAPABILITIES:
        assert protocol.__doc__, protocol
        assert protocol_methods(protocol), f"{protocol.__name__} declares no method"
        for name, method in protocol_methods(protocol).items():
            assert inspect.getdoc(method), f"{protocol.__name__}.{name} has no docstring"


def test_reset_type_is_one_vocabulary() -> None:
    drivers = [registry.load(n) for n in sorted(registry.BUILTIN)]
    resetters = [cls for cls in drivers if issubclass(cls, HostReset)]
    assert {cls.__name__ for cls in resetters} == {"RedfishBmc", "IpmiBmc", "OpenBmcSsh"}
    assert capabilities.reset_refusal("ForceOff") is None
    assert "unknown ResetType 'off'" in (capabilities.reset_refusal("off") or "")
    refusal = capabilities.reset_refusal("Nmi", {"On": "on"}, "some tool") or ""
    assert "'Nmi' cannot be done with some tool" in refusal and "['On']" in refusal


# ---- the checker finds what it is for -------------------------------------------------------------------


class _GoodBmc(Device, Bmc, HostReset):
    name = "good"

    def identify(self) -> Identity:
        return Identity("v", "m", "s", "f")

    def close(self) -> None:
        pass

    def power_state(self) -> str:
        return "On"

    def temperatures(self) -> dict[str, float]:
        return {}

    def reset(self, reset_type: str, *, wait_s: float = 0.0) -> None:  # an extra optional keyword is fine
        pass


def test_checker_accepts_a_conforming_class_with_an_extra_optional_keyword() -> None:
    assert conformance_problems(_GoodBmc) == []


def test_checker_reports_a_renamed_parameter() -> None:
    class RenamedParameter(_GoodBmc):
        def reset(self, kind: str) -> None:  # the drift this contract exists to stop
            pass

    assert conformance_problems(RenamedParameter) == [
        "RenamedParameter.reset (HostReset): parameter 1 is 'kind', the Protocol's is 'reset_type'"
    ]


def test_checker_reports_a_claimed_method_that_is_missing() -> None:
    class ClaimsEventLog(_GoodBmc, EventLog):
        pass

    assert conformance_problems(ClaimsEventLog) == [
        "ClaimsEventLog.sel_entries (EventLog): claimed but not implemented"
    ]


def test_checker_reports_kinds_defaults_annotations_and_required_extras() -> None:
    class Drifted(_GoodBmc, PowerLimit):
        def power_limit(self) -> tuple[float, float]:
            return 0.0, 0.0

        def set_power_limit(self, *, watts: float | None = None, force: bool) -> None:
            pass

        def reset(self, reset_type: str, timeout_s: float) -> None:
            pass

    problems = conformance_problems(Drifted)
    assert any("returns" in p and "power_limit" in p for p in problems), problems
    assert any("'watts' is keyword-only" in p for p in problems), problems
    assert any("'watts' defaults to None" in p for p in problems), problems
    assert any("extra parameter 'force'" in p for p in problems), problems
    assert any("extra parameter 'timeout_s'" in p for p in problems), problems
    assert len(problems) == 5, problems


def test_checker_reports_a_property_and_an_unclaimed_capability() -> None:
    class Odd(_GoodBmc):
        @property
        def power_state(self) -> str:  # type: ignore[override]
            return "On"

        def sel_entries(self) -> list[LogEntry]:  # has EventLog's methods without claiming it
            return []

    assert conformance_problems(Odd) == [
        "Odd.power_state (Bmc): is a property, not a method",
        "Odd has every method of EventLog but does not claim it",
    ]
