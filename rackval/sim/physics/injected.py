"""The faults injected into one rack: when each starts and ends, and the undo of the active ones.

What a fault kind does is the catalogue's business (``rackval.sim.faults``); this keeps the
bookkeeping: a fault is checked against the rack when injected, its start (and end, with a
duration) are scheduled events on the virtual clock, and clearing a fault runs its undo. A
cleared and re-injected id gets a new incarnation, so the old one's pending events do nothing.
"""

from __future__ import annotations

from rackval.sim.faults import CATALOGUE, Fault, Problem, Undo
from rackval.sim.physics.parts import ModelParts


def _nothing() -> None:
    """The undo of a protocol fault: the model only recorded it."""


class InjectedFaults:
    """Pending and active faults of one rack (callers hold the state's lock)."""

    def __init__(self, parts: ModelParts) -> None:
        self.parts = parts
        self._faults: dict[str, Fault] = {}
        self._active: dict[str, Fault] = {}
        self._undo: dict[str, Undo] = {}
        self._incarnation: dict[str, int] = {}

    def targets(self) -> set[str]:
        """Every name a fault may target: devices (nodes, BMCs, PDUs, switches, analyzers) and feeds."""
        s = self.parts.state
        return set(s.device_kind) | set(s.feed_up)

    def problems(self, fault: Fault) -> list[Problem]:
        """Why ``fault`` (of a known kind) cannot be injected into this rack: (field path, message)."""
        return CATALOGUE[fault.kind].rack_problems(self.parts, fault)

    def inject(self, fault: Fault) -> str:
        """Schedule ``fault`` (active from ``start_at``, or now if that has passed); returns its id."""
        s = self.parts.state
        if fault.id in self._faults:
            raise ValueError(f"fault id {fault.id!r} is already injected")
        if fault.kind not in CATALOGUE:
            raise ValueError(f"fault {fault.id}: unknown kind {fault.kind!r}")
        problems = self.problems(fault)
        if problems:
            found = "; ".join(f"{'.'.join(field)}: {message}" for field, message in problems)
            raise ValueError(f"fault {fault.id} ({fault.kind}): {found}")
        self._faults[fault.id] = fault
        start = max(fault.start_at, s.t)
        incarnation = self._incarnation[fault.id] = s.serial()

        def start_fault() -> None:
            if self._incarnation.get(fault.id) == incarnation:
                self._activate(fault.id)

        def end_fault() -> None:
            if self._incarnation.get(fault.id) == incarnation:
                self._deactivate(fault.id)

        s.schedule(start, start_fault)
        if fault.duration_s is not None:
            s.schedule(start + fault.duration_s, end_fault)
        return fault.id

    def clear(self, fault_id: str) -> None:
        """Remove a fault (undoing its effect if active); unknown ids raise KeyError."""
        if fault_id not in self._faults:
            raise KeyError(f"no fault {fault_id!r} (have {sorted(self._faults)})")
        self._deactivate(fault_id)
        del self._faults[fault_id]
        self._incarnation.pop(fault_id, None)

    def active(self, device: str | None = None) -> list[Fault]:
        return [f for f in self._active.values() if device is None or f.device == device]

    def injected(self) -> list[Fault]:
        return list(self._faults.values())

    def _activate(self, fault_id: str) -> None:
        f = self._faults.get(fault_id)
        if f is None or fault_id in self._active:
            return
        self._active[fault_id] = f
        apply = CATALOGUE[f.kind].apply
        self._undo[fault_id] = _nothing if apply is None else apply(self.parts, f)

    def _deactivate(self, fault_id: str) -> None:
        if self._active.pop(fault_id, None) is not None:
            self._undo.pop(fault_id)()
