"""Start and stop a whole simulated rack, and write the rack file that describes it.

Every device gets a real server on a free 127.0.0.1 port (a liquid / busbar design's CDU and power
shelves too: kinds ``cdu`` and ``power_shelf``); credentials are generated per start
and written to files beside the rack file (mode 0600), so the rack file holds only references,
exactly as a real site's would.
"""

from __future__ import annotations

import os
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import paramiko
import yaml

from rackval.core.errors import ConfigError
from rackval.sim import pdu_vendors
from rackval.sim.clock import SimClock
from rackval.sim.control import ControlServer
from rackval.sim.faults import Fault
from rackval.sim.model import RackModel, RackSize
from rackval.sim.reference import REFERENCE_PARAMS, ModelParams, SimDesign

HOST = "127.0.0.1"
# Driver names of the equipment's servers (rackval.drivers.registry rows).
CDU_DRIVERS = {"redfish": "redfish-cdu", "modbus": "modbus-cdu"}
SHELF_DRIVER = "redfish-power-shelf"


class _Server(Protocol):
    host: str
    port: int

    def stop(self) -> None: ...


def _write_secret(directory: Path, name: str, value: str) -> str:
    """Write a secret file readable only by us; returns its path relative to the rack file."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
    return f"{directory.name}/{name}"


@dataclass
class SimulatedRack:
    """A running simulated rack: the model, its servers, and the rack file pointing at them."""

    model: RackModel
    state_dir: Path
    servers: dict[str, _Server] = field(default_factory=dict)
    rack_file: Path | None = None
    control: ControlServer | None = None

    @classmethod
    def start(
        cls,
        size: RackSize,
        state_dir: Path,
        *,
        params: ModelParams = REFERENCE_PARAMS,
        time_scale: float = 1.0,
        faults: list[Fault] | None = None,
        design: SimDesign | None = None,
    ) -> SimulatedRack:
        """Build the model, start every device's server and write ``state_dir/rack.yaml``.

        ``design`` (a params file read by ``rackval.sim.reference.sim_design``) gives the rack
        file its design revision and serial and its ``simulator.params`` (path and sha256 of the
        file), so a run on this rack is recorded under that identity; None: the reference rack.

        Virtual time runs at ``time_scale`` x real time (so drivers polling a BMC reset see it
        complete) and jumps when the harness's clock sleeps through the control channel.
        """
        # Imported here: the protocol servers pull in pysnmp/paramiko/http machinery that plain
        # model users (unit tests, benchmarks of the physics) do not need.
        from rackval.sim.node_shell import start_node_ssh
        from rackval.sim.redfish_server import start_bmc_redfish
        from rackval.sim.scpi_hislip import start_analyzer_hislip
        from rackval.sim.scpi_server import start_analyzer_scpi
        from rackval.sim.scpi_vxi11 import start_analyzer_vxi11
        from rackval.sim.snmp_agent import start_pdu_agent
        from rackval.sim.snmp_switch_agent import start_switch_snmp_agent
        from rackval.sim.ssh_server import write_known_hosts
        from rackval.sim.switch_shell import start_switch_ssh

        state_dir.mkdir(parents=True, exist_ok=True)
        model = RackModel(size, SimClock(time_scale), params)
        rack = cls(model=model, state_dir=state_dir)
        secret_dir = state_dir / "secrets"
        shutil.rmtree(secret_dir, ignore_errors=True)  # a killed simulator's, useless and not to be left
        try:
            control_token = secrets.token_urlsafe(24)
            rack.control = ControlServer(model, control_token, host=HOST)
            community = secrets.token_urlsafe(12)
            v3_auth, v3_priv = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
            bmc_password = secrets.token_urlsafe(16)
            switch_password = secrets.token_urlsafe(16)
            node_password = secrets.token_urlsafe(16)
            credentials: dict[str, Any] = {
                "pdu-v2c": {
                    "snmp_version": "2c",
                    "community": {"file": _write_secret(secret_dir, "pdu-community", community)},
                },
                "pdu-v3": {
                    "snmp_version": "3",
                    "username": "rackval",
                    "auth_protocol": "SHA256",
                    "auth_key": {"file": _write_secret(secret_dir, "pdu-v3-auth", v3_auth)},
                    "priv_protocol": "AES128",
                    "priv_key": {"file": _write_secret(secret_dir, "pdu-v3-priv", v3_priv)},
                },
                "bmc": {
                    "username": "admin",
                    "password": {"file": _write_secret(secret_dir, "bmc-password", bmc_password)},
                },
                "switch": {
                    "username": "admin",
                    "password": {"file": _write_secret(secret_dir, "switch-password", switch_password)},
                },
                "node": {
                    "username": "rackval",
                    "password": {"file": _write_secret(secret_dir, "node-password", node_password)},
                },
            }
            devices: dict[str, Any] = {}
            for i, (name, pdu) in enumerate(model.pdus.items()):
                make = getattr(size, f"pdu_vendor_{pdu.feed.lower()}")
                srv = start_pdu_agent(
                    model, name, host=HOST, community=community, write_community=community,
                    v3_user="rackval", v3_auth_key=v3_auth, v3_priv_key=v3_priv, mib=make,
                )  # fmt: skip
                rack.servers[name] = srv
                devices[name] = {
                    "kind": "pdu",
                    "driver": pdu_vendors.vendor(make).driver,
                    "host": HOST,
                    "port": srv.port,
                    # One PDU over v2c and one over v3 authPriv: the simulated rack exercises both.
                    "credentials": "pdu-v2c" if i % 2 == 0 else "pdu-v3",
                    "expect": _expect(pdu.info),
                    "feeds": [pdu.feed],
                }
            known_hosts = state_dir / "known_hosts"
            known_hosts.write_text("")
            snmp_managed = (
                set(list(model.switches)[len(model.switches) - size.snmp_switches :]) if size.snmp_switches else set()
            )
            for name, switch in model.switches.items():
                if name in snmp_managed:
                    srv = start_switch_snmp_agent(
                        model, name, host=HOST, community=community,
                        v3_user="rackval", v3_auth_key=v3_auth, v3_priv_key=v3_priv,
                    )  # fmt: skip
                    rack.servers[name] = srv
                    devices[name] = {
                        "kind": "switch",
                        "driver": "snmp-switch",
                        "host": HOST,
                        "port": srv.port,
                        "credentials": "pdu-v3",
                        "expect": _expect(switch.info),
                    }
                    continue
                key = paramiko.ECDSAKey.generate()
                srv = start_switch_ssh(model, name, host=HOST, username="admin", password=switch_password, host_key=key)
                rack.servers[name] = srv
                write_known_hosts(known_hosts, HOST, srv.port, key)
                devices[name] = {
                    "kind": "switch",
                    "driver": "sonic",
                    "host": HOST,
                    "port": srv.port,
                    "credentials": "switch",
                    "expect": _expect(switch.info),
                    "options": {"known_hosts": known_hosts.name},
                }
            for i, (name, analyzer) in enumerate(model.analyzers.items()):
                # One instrument behind three LAN protocols, as a real WT analyzer offers them: the
                # raw socket, VXI-11 (no portmapper: the port is in the resource) and HiSLIP.
                srv = start_analyzer_scpi(model, name, host=HOST)
                rack.servers[name] = srv
                vxi = start_analyzer_vxi11(model, name, host=HOST, instrument=srv.instrument)
                rack.servers[f"{name} (VXI-11)"] = vxi
                hislip = start_analyzer_hislip(model, name, host=HOST, instrument=srv.instrument)
                rack.servers[f"{name} (HiSLIP)"] = hislip
                options: dict[str, Any] = {"element": "SIGMA"}
                if i % 2 == 1:  # the second analyzer is reached over HiSLIP: runs exercise both
                    options["resource"] = f"TCPIP0::{HOST}::hislip0,{hislip.port}::INSTR"
                devices[name] = {
                    "kind": "analyzer",
                    "driver": "yokogawa-wt",
                    "host": HOST,
                    "port": srv.port,
                    "expect": _expect(analyzer.info),
                    "feeds": list(analyzer.feeds),
                    "options": options,
                }
            nodes: dict[str, Any] = {}
            for name, node in model.nodes.items():
                srv = start_bmc_redfish(model, name, host=HOST, username="admin", password=bmc_password)
                rack.servers[node.bmc] = srv
                devices[node.bmc] = {
                    "kind": "bmc",
                    "driver": "redfish",
                    "host": HOST,
                    "port": srv.port,
                    "credentials": "bmc",
                    # The system reports the node's identity; firmware is the BMC's own.
                    "expect": {**_expect(node.info), "firmware": node.bmc_info.firmware},
                    "options": {"scheme": "http"},
                }
                key = paramiko.ECDSAKey.generate()
                host_srv = start_node_ssh(
                    model, name, host=HOST, username="rackval", password=node_password, host_key=key
                )
                rack.servers[name] = host_srv
                write_known_hosts(known_hosts, HOST, host_srv.port, key)
                devices[name] = {
                    "kind": "node",
                    "driver": "linux-gpu-node",
                    "host": HOST,
                    "port": host_srv.port,
                    "credentials": "node",
                    "expect": {**_expect(node.info), "firmware": model.firmware(name).get("BIOS", node.info.firmware)},
                    "options": {"known_hosts": known_hosts.name},
                }
                nodes[name] = {
                    "bmc": node.bmc,
                    "host": name,
                    # a busbar-fed node's PSUs hang on no PDU outlet
                    "psus": {p.name: {"pdu": p.pdu, "outlet": p.outlet} for p in node.psus if p.pdu},
                    "nics": {},
                }
            devices |= _start_equipment(rack, model, bmc_password, state_dir)
            for sw_name, switch in model.switches.items():
                for port in switch.ports:
                    if port.peer is not None:
                        node_name, nic = port.peer
                        nodes[node_name]["nics"][nic] = {"switch": sw_name, "port": port.name}
            identity = design or SimDesign(size, params)
            simulator: dict[str, Any] = {
                "control": rack.control.url,
                "token": {"file": _write_secret(secret_dir, "control-token", control_token)},
            }
            if identity.source is not None:
                simulator["params"] = {"path": identity.source.path, "sha256": identity.source.sha256}
            document = {
                "rack": {
                    "name": f"sim-{size.nodes}n",
                    "serial": identity.rack_serial,
                    "design_revision": identity.design_revision,
                    "site": "simulated (127.0.0.1)",
                    "simulated": True,
                    "allow_destructive": True,  # a simulated rack is there to be switched off
                    "simulator": simulator,
                },
                "credentials": credentials,
                "devices": devices,
                "nodes": nodes,
            }
            # Faults go in after the rack file is described from the healthy model: the rack
            # file is the design (cabling, firmware baseline), the faults are what is wrong with
            # this unit, and the plans must find them, not inherit them.
            for fault in faults or []:
                try:
                    model.inject(fault)
                except ValueError as exc:
                    raise ConfigError(f"cannot inject fault: {exc}") from None
            rack.rack_file = state_dir / "rack.yaml"
            tmp = rack.rack_file.with_suffix(".tmp")
            header = "# Generated by `rackval sim`: a simulated rack on 127.0.0.1. Secrets are in ./secrets.\n"
            tmp.write_text(header + yaml.safe_dump(document, sort_keys=False))
            tmp.replace(rack.rack_file)  # atomic: a watcher never reads half a file
        except BaseException:
            rack.stop()
            raise
        return rack

    def endpoints(self) -> dict[str, str]:
        return {name: f"{srv.host}:{srv.port}" for name, srv in self.servers.items()}

    def stop(self) -> None:
        """Stop every server and remove the secrets: they are worth nothing once the rack is gone."""
        for srv in self.servers.values():
            srv.stop()
        self.servers.clear()
        if self.control is not None:
            self.control.stop()
            self.control = None
        shutil.rmtree(self.state_dir / "secrets", ignore_errors=True)


def _start_equipment(rack: SimulatedRack, model: RackModel, password: str, state_dir: Path) -> dict[str, Any]:
    """Start the CDU's and the power shelves' servers (a liquid / busbar design has them); their
    device entries for the rack file. The CDU answers Redfish and, as its second device, Modbus TCP
    (``<cdu>-modbus``, read through the register map it serves, written beside the rack file)."""
    from rackval.sim.modbus_cdu import start_cdu_modbus, write_register_map
    from rackval.sim.redfish_cdu import start_cdu_redfish
    from rackval.sim.redfish_shelf import start_shelf_redfish

    devices: dict[str, Any] = {}
    for name in model.cooling.cdus():
        info = model.cooling.cdu(name).info
        srv = start_cdu_redfish(model, name, host=HOST, username="admin", password=password)
        rack.servers[name] = srv
        devices[name] = {
            "kind": "cdu", "driver": CDU_DRIVERS["redfish"], "host": HOST, "port": srv.port, "credentials": "bmc",
            "expect": _expect(info), "options": {"scheme": "http"},
        }  # fmt: skip
        modbus = start_cdu_modbus(model, name, host=HOST)
        rack.servers[f"{name}-modbus"] = modbus
        register_map = write_register_map(state_dir, name)
        devices[f"{name}-modbus"] = {
            "kind": "cdu", "driver": CDU_DRIVERS["modbus"], "host": HOST, "port": modbus.port,
            "options": {"register_map": register_map.name},
        }  # fmt: skip
    for name in model.shelves.shelves():
        shelf = model.shelves.shelf(name)
        srv = start_shelf_redfish(model, name, host=HOST, username="admin", password=password)
        rack.servers[name] = srv
        devices[name] = {
            "kind": "power_shelf", "driver": SHELF_DRIVER, "host": HOST, "port": srv.port, "credentials": "bmc",
            "expect": _expect(shelf.info), "options": {"scheme": "http"}, "feeds": list(shelf.feeds),
        }  # fmt: skip
    return devices


def _expect(info: Any) -> dict[str, str]:
    return {"vendor": info.vendor, "model": info.model, "serial": info.serial, "firmware": info.firmware}
