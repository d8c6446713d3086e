"""A simulated node BMC speaking Redfish over HTTP on 127.0.0.1, reading the shared RackModel.

This module is the server's lifecycle: ``start_bmc_redfish`` starts one BMC for a node (on a
port the OS chooses), ``RedfishServer`` is the running BMC (address, open sessions, request
counts, ``stop()`` that closes every connection and joins the threads). The work is done by:

- ``rackval.sim.redfish_http``: the HTTP side (authentication, sessions, methods, ETags,
  errors, BMC power, protocol faults injected on the BMC's device name ``bmc-<node>``);
- ``rackval.sim.redfish_tree``: the resource tree (routes, ``$expand``), built by one module
  per DMTF area: ``redfish_service`` (service root, sessions, manager, firmware inventory),
  ``redfish_system`` (ComputerSystem, Reset, Boot, SEL), ``redfish_chassis`` (Chassis, thermal,
  sensors) and ``redfish_power`` (Power, PowerSubsystem, EnvironmentMetrics, the power limit),
  all reading the node through ``redfish_readings``;
- ``rackval.sim.redfish_schema``: the DMTF schema versions and URIs every document follows.

Payloads follow the DMTF schemas and the shape of the public-rackmount1 mockup, so the driver
cannot tell this BMC from a real one except by address; all values are read from the model at
request time, so physics shows through. The DMTF Redfish Service Validator checks the tree
(tests/sim/test_redfish_service_validator.py).
"""

from __future__ import annotations

import random
import socket
import threading
from datetime import UTC, datetime

from rackval.sim.model import RackModel
from rackval.sim.redfish_http import RedfishHttpd
from rackval.sim.redfish_state import BmcState, ServiceTree
from rackval.sim.redfish_tree import ResourceTree

# Virtual time 0 of the model, as wall-clock time: SEL Created and DateTime are epoch + virtual
# seconds. Fixed (not "now") so that every BMC of a simulated rack and every run agree.
SIM_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


class RedfishService:
    """A running simulated Redfish service (a node BMC, a CDU or a power shelf controller):
    ``host``/``port`` is where it listens, ``stop()`` ends it. ``device`` is the device name
    protocol faults are injected on."""

    def __init__(self, state: BmcState, tree: ServiceTree, host: str, thread_name: str) -> None:
        self.device = state.device
        self._state = state
        self._httpd = RedfishHttpd((host, 0), state, tree)
        self.host: str = self._httpd.server_address[0]
        self.port: int = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            daemon=True,
            name=thread_name,
        )
        self._stopped = False
        self._stop_lock = threading.Lock()
        self._thread.start()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.device!r}, {self.host}:{self.port})"

    @property
    def open_sessions(self) -> int:
        """Sessions currently open (a driver that logs out properly brings this back to 0)."""
        with self._state.lock:
            return len(self._state.sessions)

    def drop_sessions(self) -> None:
        """Forget every session, as a BMC does on reboot or session timeout."""
        with self._state.lock:
            self._state.sessions.clear()

    def request_count(self, method: str = "total") -> int:
        """Requests received so far, all methods ("total") or one ("GET", "POST", ...)."""
        with self._state.lock:
            return self._state.counts[method]

    def connection_sockets(self) -> list[socket.socket]:
        """The server-side sockets of open client connections (for checking socket options)."""
        return self._httpd.connections()

    def stop(self) -> None:
        """Stop serving, close every connection and join the threads; safe to call twice."""
        with self._stop_lock:
            if self._stopped:
                return
            self._stopped = True
        self._state.stopping.set()  # wakes handlers held by device_silent / device_slow
        self._httpd.shutdown()
        self._httpd.server_close()
        self._httpd.close_connections(timeout_s=5.0)
        self._thread.join(5.0)


class RedfishServer(RedfishService):
    """A running simulated node BMC (``node`` is its node, ``device`` its BMC's name)."""

    def __init__(
        self,
        model: RackModel,
        node: str,
        host: str,
        username: str,
        password: str,
        max_sessions: int,
        epoch: datetime = SIM_EPOCH,
    ) -> None:
        nodes = model.nodes
        if node not in nodes:  # the BMC's own name is accepted too
            node = next((n.name for n in nodes.values() if n.bmc == node), node)
        if node not in nodes:
            raise ValueError(f"no node or BMC {node!r} in the model (have {sorted(nodes)})")
        if max_sessions < 1:
            raise ValueError("max_sessions must be at least 1")
        if epoch.tzinfo is None:
            raise ValueError("epoch must be timezone-aware")
        self.node = node
        correction = round(model.params.timing.power_cap_correction_ms)
        state = BmcState(
            model, node, nodes[node].bmc, username, password, max_sessions, epoch, correction,
            rng=random.Random(f"redfish/{nodes[node].bmc}"),
        )  # fmt: skip
        super().__init__(state, ResourceTree(state), host, f"redfish-{node}")


def start_bmc_redfish(
    model: RackModel,
    node: str,
    *,
    host: str = "127.0.0.1",
    username: str,
    password: str,
    max_sessions: int = 8,
    epoch: datetime = SIM_EPOCH,
) -> RedfishServer:
    """Start a simulated Redfish BMC for ``node`` (or its BMC's name) on ``host`` (OS-chosen port).

    ``epoch`` is the wall-clock time of the model's virtual time 0 (SEL Created, DateTime).
    """
    return RedfishServer(model, node, host, username, password, max_sessions, epoch)
