"""Arista EOS switches over SSH: identity, ports, LLDP, counters and temperatures from ``| json``.

EOS renders most show commands as JSON when ``| json`` is appended, with the same model eAPI
returns, so nothing here parses tables. Commands run over SSH exec channels (``ssh switch
"show version | json"`` runs the command in the EOS CLI of the login user and closes), which
is one round trip per command and needs no prompt handling. Switches whose AAA refuses exec
channels (interactive logins only) are driven through the transport's interactive shell instead
(option ``cli_mode``: the same ``| json`` commands, typed at the prompt after
``terminal length 0``).

The JSON shapes (keys and nesting) follow real EOS captures; see tests/data/eos/README.md for
where each came from. Parsers are pure functions from text to dataclasses so they can be tested
on captured output, and every malformed answer (truncated JSON, an "errors" object, a "% ..."
CLI error, a missing key) becomes DeviceProtocolError naming device, address and command.

"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import replace

from rackval.core.errors import DeviceProtocolError
from rackval.drivers.capabilities import (
    Device,
    Identity,
    LldpNeighbor,
    NetSwitch,
    PortCounters,
    PortCounterSource,
    PortStatus,
    SensorReading,
    Sensors,
)
from rackval.drivers.config import DeviceConfig
from rackval.drivers.options import EosOptions, parse_options
from rackval.drivers.transport.ssh import SshTransport

SHOW_VERSION = "show version | json"
SHOW_INTERFACES_STATUS = "show interfaces status | json"
SHOW_LLDP_NEIGHBORS = "show lldp neighbors | json"
SHOW_INTERFACES_COUNTERS = "show interfaces counters | json"
SHOW_INTERFACES_COUNTERS_ERRORS = "show interfaces counters errors | json"
SHOW_TEMPERATURE = "show system environment temperature | json"

_NATURAL = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple:
    """Ethernet2 before Ethernet10, Ethernet1/2 before Ethernet1/10 (EOS JSON order is arbitrary)."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in _NATURAL.split(name) if p)


class _Parse:
    """Error factory for one command's output, so every parse error names device and command."""

    def __init__(self, command: str, device: str, address: str) -> None:
        self.command = command
        self.device = device
        self.address = address

    def error(self, detail: str) -> DeviceProtocolError:
        return DeviceProtocolError(self.device, self.address, f"parse '{self.command}' output", detail)

    def load(self, text: str) -> dict:
        """JSON object from command output; EOS CLI errors and eAPI-style error objects rejected."""
        stripped = text.strip()
        if not stripped:
            raise self.error("empty output")
        if stripped.startswith("%"):
            raise self.error(f"EOS refused the command: {stripped.splitlines()[0][:200]}")
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError as exc:
            excerpt = stripped[max(0, exc.pos - 40) : exc.pos + 40]
            raise self.error(
                f"not valid JSON (truncated or garbled?): {exc.msg} at line {exc.lineno} column {exc.colno}, "
                f"near {excerpt!r} ({len(stripped)} characters received)"
            ) from exc
        if not isinstance(data, dict):
            raise self.error(f"expected a JSON object, got {type(data).__name__}")
        errors = data.get("errors")
        if errors:
            first = errors[0] if isinstance(errors, list) and errors else errors
            raise self.error(f"EOS returned an error instead of data: {str(first)[:200]}")
        return data

    def mapping(self, data: Mapping, key: str) -> dict:
        value = data.get(key)
        if not isinstance(value, dict):
            raise self.error(f"key {key!r} missing or not an object (keys: {', '.join(sorted(data)) or 'none'})")
        return value

    def text(self, data: Mapping, key: str, where: str = "") -> str:
        value = data.get(key)
        if not isinstance(value, str):
            raise self.error(f"key {key!r}{where} missing or not a string")
        return value

    def number(self, data: Mapping, key: str, where: str, *, required: bool = True) -> int | float | None:
        value = data.get(key)
        if value is None and not required:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(f"key {key!r}{where} missing or not a number: {value!r}")
        return value


def parse_show_version(text: str, *, device: str = "<text>", address: str = "-") -> Identity:
    """``show version | json`` -> Identity(mfgName or "Arista", modelName, serialNumber, version)."""
    p = _Parse(SHOW_VERSION, device, address)
    data = p.load(text)
    vendor = data.get("mfgName") if isinstance(data.get("mfgName"), str) and data.get("mfgName") else "Arista"
    return Identity(
        vendor=vendor,
        model=p.text(data, "modelName"),
        serial=p.text(data, "serialNumber"),  # "" on vEOS / cEOS lab images
        firmware=p.text(data, "version"),
    )


def parse_interfaces_status(text: str, *, device: str = "<text>", address: str = "-") -> list[PortStatus]:
    """``show interfaces status | json`` -> PortStatus per interface, naturally sorted.

    linkStatus "connected" is up; "disabled" is administratively down ("notconnect",
    "errdisabled", "inactive" are admin-up but down). ``bandwidth`` is in bit/s; 0 = unknown.
    """
    p = _Parse(SHOW_INTERFACES_STATUS, device, address)
    statuses = p.mapping(p.load(text), "interfaceStatuses")
    ports = []
    for name in sorted(statuses, key=natural_key):
        entry = statuses[name]
        where = f" of {name}"
        if not isinstance(entry, dict):
            raise p.error(f"entry for {name} is not an object")
        link = p.text(entry, "linkStatus", where)
        bandwidth = p.number(entry, "bandwidth", where, required=False)
        description = entry.get("description", "")
        ports.append(
            PortStatus(
                name=name,
                oper_up=link == "connected",
                admin_up=link != "disabled",
                speed_mbps=int(bandwidth // 1_000_000) if bandwidth else None,
                alias=description if isinstance(description, str) else "",
            )
        )
    return ports


def parse_lldp_neighbors(text: str, *, device: str = "<text>", address: str = "-") -> list[LldpNeighbor]:
    """``show lldp neighbors | json`` -> one LldpNeighbor per entry of ``lldpNeighbors``."""
    p = _Parse(SHOW_LLDP_NEIGHBORS, device, address)
    data = p.load(text)
    entries = data.get("lldpNeighbors")
    if not isinstance(entries, list):
        raise p.error("key 'lldpNeighbors' missing or not a list")
    neighbors = []
    for n, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise p.error(f"lldpNeighbors[{n}] is not an object")
        where = f" in lldpNeighbors[{n}]"
        neighbors.append(
            LldpNeighbor(
                local_port=p.text(entry, "port", where),
                remote_system=p.text(entry, "neighborDevice", where),
                remote_port=p.text(entry, "neighborPort", where),
            )
        )
    return neighbors


def parse_interfaces_counters(
    counters_text: str, errors_text: str, *, device: str = "<text>", address: str = "-"
) -> list[PortCounters]:
    """``show interfaces counters | json`` + ``... counters errors | json`` -> PortCounters per port.

    EOS counters are 64-bit. Interfaces without discard counters (SVIs report octets only)
    get ``None`` there; interfaces missing from the error table get ``None`` errors.
    """
    pc = _Parse(SHOW_INTERFACES_COUNTERS, device, address)
    pe = _Parse(SHOW_INTERFACES_COUNTERS_ERRORS, device, address)
    traffic = pc.mapping(pc.load(counters_text), "interfaces")
    errors = pe.mapping(pe.load(errors_text), "interfaceErrorCounters")
    result = []
    for name in sorted(traffic, key=natural_key):
        entry = traffic[name]
        err = errors.get(name, {})
        if not isinstance(entry, dict):
            raise pc.error(f"entry for {name} is not an object")
        if not isinstance(err, dict):
            raise pe.error(f"entry for {name} is not an object")
        where = f" of {name}"
        result.append(
            PortCounters(
                name=name,
                in_octets=_count(pc, entry, "inOctets", where, required=True),
                out_octets=_count(pc, entry, "outOctets", where, required=True),
                in_errors=_count(pe, err, "inErrors", where),
                out_errors=_count(pe, err, "outErrors", where),
                in_discards=_count(pc, entry, "inDiscards", where),
                out_discards=_count(pc, entry, "outDiscards", where),
                octet_bits=64,
                error_bits=64,
            )
        )
    return result


def parse_temperature(text: str, *, device: str = "<text>", address: str = "-") -> list[SensorReading]:
    """``show system environment temperature | json`` -> SensorReading per sensor (C).

    Sensors sit at the top level (fixed systems) and inside ``cardSlots`` / ``powerSupplySlots``
    (modular systems, PSUs). status: "ok", "alert" when EOS says inAlertState, else hwStatus.
    """
    p = _Parse(SHOW_TEMPERATURE, device, address)
    data = p.load(text)
    groups: list[object] = [data.get("tempSensors", [])]
    for slots_key in ("cardSlots", "powerSupplySlots"):
        slots = data.get(slots_key, [])
        if not isinstance(slots, list):
            raise p.error(f"key {slots_key!r} is not a list")
        groups.extend(slot.get("tempSensors", []) if isinstance(slot, dict) else None for slot in slots)
    if "tempSensors" not in data and "cardSlots" not in data:
        raise p.error(f"no 'tempSensors' or 'cardSlots' (keys: {', '.join(sorted(data)) or 'none'})")
    readings = []
    for group in groups:
        if not isinstance(group, list):
            raise p.error("a 'tempSensors' entry is not a list")
        for n, sensor in enumerate(group):
            if not isinstance(sensor, dict):
                raise p.error(f"tempSensors[{n}] is not an object")
            name = p.text(sensor, "name", f" in tempSensors[{n}]")
            where = f" of sensor {name}"
            hw_status = sensor.get("hwStatus", "ok")
            status = "alert" if sensor.get("inAlertState") else str(hw_status)
            value = p.number(sensor, "currentTemperature", where, required=False)
            description = sensor.get("description", "")
            readings.append(
                SensorReading(
                    name=name,
                    kind="temperature",
                    value=float(value) if value is not None else None,
                    unit="C",
                    status=status,
                    description=description if isinstance(description, str) else "",
                    warning=_float(p.number(sensor, "overheatThreshold", where, required=False)),
                    critical=_float(p.number(sensor, "criticalThreshold", where, required=False)),
                )
            )
    return readings


def _count(parser: _Parse, data: Mapping, key: str, where: str, *, required: bool = False) -> int | None:
    value = parser.number(data, key, where, required=required)
    return None if value is None else int(value)


def _float(value: int | float | None) -> float | None:
    return None if value is None else float(value)


class AristaEosSwitch(Device, NetSwitch, PortCounterSource, Sensors):
    """An Arista EOS switch driven by ``show ... | json`` over SSH (exec channels or the CLI shell).

    Credentials: ``username`` with ``password`` or ``key_file``. Options: those of
    ``rackval.drivers.transport.ssh.SshTransport`` (``known_hosts``, ``trust_on_first_use``,
    ``allow_agent``, ``look_for_keys``, ``keepalive_s``, ``encoding``; for the interactive shell
    ``prompt_regex``, ``pager_regex``, ``shell_setup``, ``shell_width``/``shell_height``), plus:

    - ``cli_mode`` (``exec`` | ``shell`` | ``auto``, default ``auto`` here): ``exec`` runs each
      command on its own exec channel; ``shell`` types them at the EOS prompt of one
      interactive session (``terminal length 0`` first, pager answered if it still appears);
      ``auto`` tries exec and switches to the shell for good when the switch clearly refuses
      exec (a switch that answers exec never notices the difference). In the shell there is no
      exit status, so errors come from the text (``% Invalid input`` -> DeviceProtocolError).

    - ``command_timeout_s`` (float, default ``config.timeout_s``): limit for one command.
    - ``cli_wrapper`` (str, default none): prefix for users whose login shell is bash rather
      than the EOS CLI, e.g. ``Cli -p 15 -c``; the show command is then passed to it as one
      quoted argument.

    The show commands used need no enable mode on default EOS privilege settings.
    ``counters()`` returns raw 64-bit counters: feed them to
    ``rackval.drivers.capabilities.CounterTracker`` for deltas.
    """

    options_model = EosOptions

    def __init__(self, config: DeviceConfig) -> None:
        self.name = config.name
        self._address = config.address
        opts = parse_options(self.options_model, config.options, config.name)
        self._timeout = opts.command_timeout_s or config.timeout_s
        self._wrapper = (opts.cli_wrapper or "").strip()
        # EOS AAA setups that refuse exec are common enough that this driver's default is "auto"
        config = replace(config, options={**config.options, "cli_mode": opts.cli_mode})
        self._ssh = SshTransport(config)

    @property
    def cli_mode(self) -> str:
        """How commands run now: ``exec``, or ``shell`` (configured, or learnt from a refusal)."""
        return self._ssh.active_cli_mode

    def __repr__(self) -> str:
        return f"AristaEosSwitch({self.name!r}, {self._address!r})"

    def _show(self, command: str) -> str:
        line = f"{self._wrapper} {shlex.quote(command)}" if self._wrapper else command
        result = self._ssh.run_cli(line, timeout=self._timeout)
        if result.exit_status != 0:
            message = (result.stderr.strip() or result.stdout.strip()).splitlines()
            raise DeviceProtocolError(
                self.name,
                self._address,
                f"SSH command {command!r}",
                f"exit status {result.exit_status}: {message[-1][:200] if message else 'no output'}",
            )
        return result.stdout

    def identify(self) -> Identity:
        return parse_show_version(self._show(SHOW_VERSION), device=self.name, address=self._address)

    def ports(self) -> list[PortStatus]:
        return parse_interfaces_status(self._show(SHOW_INTERFACES_STATUS), device=self.name, address=self._address)

    def lldp_neighbors(self) -> list[LldpNeighbor]:
        return parse_lldp_neighbors(self._show(SHOW_LLDP_NEIGHBORS), device=self.name, address=self._address)

    def counters(self) -> list[PortCounters]:
        traffic = self._show(SHOW_INTERFACES_COUNTERS)
        errors = self._show(SHOW_INTERFACES_COUNTERS_ERRORS)
        return parse_interfaces_counters(traffic, errors, device=self.name, address=self._address)

    def sensors(self) -> list[SensorReading]:
        return parse_temperature(self._show(SHOW_TEMPERATURE), device=self.name, address=self._address)

    def close(self) -> None:
        self._ssh.close()
