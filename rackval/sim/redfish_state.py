"""What one simulated Redfish BMC remembers between requests, and what a URI answers.

Why a module of its own: the resource builders, the HTTP handler and the server's lifecycle all
share these two things and nothing else — ``BmcState`` (open sessions, the boot override, the
power-limit settings a real BMC keeps beside the node's cap, request counts, the stop flag, the
random generator of protocol faults; every handler thread shares it under its lock) and
``Route`` (the GET / PATCH / POST of one URI, built by the resource tree, called by the handler);
and ``ServiceTree``, what the handler needs of any simulated Redfish service's tree.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from rackval.sim.model import RackModel


@dataclass
class Session:
    id: str
    token: str
    username: str


@dataclass
class BmcState:
    """What the BMC remembers between requests; every handler thread shares it."""

    model: RackModel
    node: str
    device: str  # the BMC's device name: protocol faults are injected on it
    username: str
    password: str
    max_sessions: int
    epoch: datetime  # the wall-clock time of the model's virtual time 0
    correction_ms: int
    lock: threading.Lock = field(default_factory=threading.Lock)
    sessions: dict[str, Session] = field(default_factory=dict)  # by token
    next_session: int = 1
    counts: Counter[str] = field(default_factory=Counter)
    limit_exception: str = "LogEventOnly"
    last_setpoint: float | None = None
    boot: dict[str, str] = field(
        default_factory=lambda: {
            "BootSourceOverrideEnabled": "Disabled",
            "BootSourceOverrideTarget": "None",
            "BootSourceOverrideMode": "UEFI",
        }
    )
    stopping: threading.Event = field(default_factory=threading.Event)
    rng: random.Random = field(default_factory=random.Random)

    def iso(self, virtual_s: float) -> str:
        """A moment of the model's virtual time as the BMC's wall-clock time (ISO 8601, UTC)."""
        moment = self.epoch + timedelta(seconds=virtual_s)
        return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Route:
    """What a URI answers: GET builds the resource; PATCH applies a body; POST runs an action."""

    get: Callable[[], dict[str, Any]] | None = None
    patch: Callable[[dict[str, Any]], None] | None = None
    post: Callable[[dict[str, Any]], None] | None = None

    @property
    def allow(self) -> str:
        methods = ["GET", "HEAD"] if self.get else []
        methods += ["PATCH"] if self.patch else []
        methods += ["POST"] if self.post else []
        return ", ".join(methods)


class ServiceTree(Protocol):
    """What the HTTP side (``redfish_http``) asks of a Redfish service's resource tree: a node BMC's
    (``redfish_tree.ResourceTree``) or an equipment controller's (``redfish_equipment``)."""

    singletons: tuple[str, ...]  # the service root's top-level resources (OData service document)

    def power_state(self) -> str:
        """Off (nothing answers) | Booting (503) | Ready."""
        ...

    def service_root(self) -> dict[str, Any]: ...

    def route(self, path: str) -> Route | None: ...

    def expand(self, doc: dict[str, Any], mode: str) -> dict[str, Any]: ...
