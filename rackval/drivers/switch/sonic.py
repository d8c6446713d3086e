"""SONiC switches over SSH: identity, port status and LLDP neighbours from the show CLI.

The parsers are pure functions from command text to dataclasses so they can be tested on
captured output. They follow sonic-utilities: ``show interfaces status`` (scripts/intfutil) and
``show lldp table`` (scripts/lldpshow) print tabulate "simple" tables: a header line, a line of
dashes per column, then rows. Columns are located from the dash line, not by splitting on
spaces, because cells may contain spaces ("QSFP+ or later", "GigabitEthernet 0/2") or be empty.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from rackval.core.errors import DeviceProtocolError
from rackval.drivers.capabilities import (
    Device,
    Identity,
    LldpNeighbor,
    NetSwitch,
    PortCounters,
    PortCounterSource,
    PortStatus,
)
from rackval.drivers.config import DeviceConfig
from rackval.drivers.options import SshSwitchOptions, parse_options
from rackval.drivers.transport.ssh import SshTransport

SHOW_VERSION = ("show", "version")
SHOW_INTERFACES_STATUS = ("show", "interfaces", "status")
SHOW_LLDP_TABLE = ("show", "lldp", "table")

_DASHES = re.compile(r"-+")
_SEPARATOR_LINE = re.compile(r"^\s*-+(\s+-+)+\s*$")  # at least two dash groups: a column rule
_RULE_LINE = re.compile(r"^\s*-+\s*$")  # one dash group: lldpshow's closing rule
_TOTAL_LINE = re.compile(r"^\s*Total entries displayed:\s*(\d+)\s*$")
_SPEED = re.compile(r"^(\d+(?:\.\d+)?)([GM])$")


def _parse_error(command: str, detail: str, device: str, address: str) -> DeviceProtocolError:
    return DeviceProtocolError(device, address, f"parse '{command}' output", detail)


def _excerpt(text: str, limit: int = 120) -> str:
    flat = " | ".join(line.strip() for line in text.strip().splitlines()[:3])
    return repr(flat[:limit] + ("..." if len(flat) > limit else ""))


def parse_table(
    text: str,
    required: Sequence[str],
    command: str,
    *,
    device: str = "<text>",
    address: str = "-",
) -> tuple[list[dict[str, str]], list[str]]:
    """Split a tabulate "simple" table into rows keyed by lower-cased header.

    Returns (rows, trailer) where trailer holds the lines after a closing dash rule. Cell
    boundaries sit in the middle of the two-space gaps between dash groups, which tolerates a
    cell that overflows its rule by one character; a row whose word straddles a boundary is
    rejected rather than silently split.
    """
    lines = text.splitlines()
    sep_index = next((i for i, line in enumerate(lines) if _SEPARATOR_LINE.match(line)), None)
    if sep_index is None or sep_index == 0:
        raise _parse_error(command, f"no table header with a dashed rule found in {_excerpt(text)}", device, address)
    spans = [(m.start(), m.end()) for m in _DASHES.finditer(lines[sep_index])]
    bounds = [0] + [(spans[i - 1][1] + spans[i][0] + 1) // 2 for i in range(1, len(spans))] + [10**9]

    def cells(line: str) -> list[str] | None:
        for b in bounds[1:-1]:
            if 0 < b < len(line) and not line[b - 1].isspace() and not line[b].isspace():
                return None
        return [line[bounds[i] : bounds[i + 1]].strip() for i in range(len(spans))]

    header_cells = cells(lines[sep_index - 1])
    if header_cells is None:
        raise _parse_error(
            command, f"header line does not line up with its dashed rule: {lines[sep_index - 1]!r}", device, address
        )
    header = [h.lower() for h in header_cells]
    missing = [col for col in required if col.lower() not in header]
    if missing:
        raise _parse_error(
            command,
            f"table header lacks column(s) {', '.join(missing)} (found: {', '.join(header_cells)})",
            device,
            address,
        )

    rows: list[dict[str, str]] = []
    trailer: list[str] = []
    for n, line in enumerate(lines[sep_index + 1 :], start=sep_index + 2):
        if not line.strip():
            continue
        if _RULE_LINE.match(line):
            trailer = lines[n:]
            break
        values = cells(line)
        if values is None:
            raise _parse_error(command, f"line {n} does not line up with the header: {line!r}", device, address)
        rows.append(dict(zip(header, values, strict=True)))
    return rows, trailer


def parse_speed_mbps(text: str) -> int | None:
    """'400G' -> 400000, '2.5G' -> 2500, '100M' -> 100, 'N/A' -> None (intfutil port_speed_parse)."""
    value = text.strip()
    if value.upper() in ("N/A", "NA", ""):
        return None
    m = _SPEED.match(value)
    if m is None:
        raise ValueError(f"unrecognised speed {text!r}")
    number, unit = float(m.group(1)), m.group(2)
    return round(number * 1000) if unit == "G" else round(number)


def parse_show_version(text: str, *, device: str = "<text>", address: str = "-") -> Identity:
    """``show version`` -> Identity(vendor "SONiC", model = HwSKU, serial, firmware = software version)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if line.strip().startswith("Docker images"):
            break
        key, sep, value = line.partition(":")
        if sep and key.strip():
            fields.setdefault(key.strip(), value.strip())
    wanted = ("SONiC Software Version", "HwSKU", "Serial Number")
    missing = [k for k in wanted if not fields.get(k)]
    if missing:
        raise _parse_error(
            "show version", f"missing field(s) {', '.join(missing)} in {_excerpt(text)}", device, address
        )
    return Identity(
        vendor="SONiC",
        model=fields["HwSKU"],
        serial=fields["Serial Number"],
        firmware=fields["SONiC Software Version"],
    )


def parse_interfaces_status(text: str, *, device: str = "<text>", address: str = "-") -> list[PortStatus]:
    """``show interfaces status`` -> one PortStatus per row (PortChannels included, as SONiC lists them).

    Extra columns (newer releases add "Oper Speed") are ignored; the ones used must be present.
    """
    command = "show interfaces status"
    rows, _ = parse_table(
        text, ("Interface", "Speed", "Alias", "Oper", "Admin"), command, device=device, address=address
    )
    ports = []
    for row in rows:
        if not row["interface"]:
            raise _parse_error(command, f"row without an interface name: {row}", device, address)
        try:
            speed = parse_speed_mbps(row["speed"])
        except ValueError as exc:
            raise _parse_error(command, f"{row['interface']}: {exc}", device, address) from exc
        ports.append(
            PortStatus(
                name=row["interface"],
                oper_up=row["oper"].lower() == "up",
                admin_up=row["admin"].lower() == "up",
                speed_mbps=speed,
                alias=row["alias"] if row["alias"] != "N/A" else "",
            )
        )
    return ports


def parse_lldp_table(text: str, *, device: str = "<text>", address: str = "-") -> list[LldpNeighbor]:
    """``show lldp table`` -> one LldpNeighbor per row, including the management port (eth0).

    The closing "Total entries displayed:  N" is checked against the rows read, so truncated
    output is an error rather than a missing neighbour.
    """
    command = "show lldp table"
    rows, trailer = parse_table(
        text, ("LocalPort", "RemoteDevice", "RemotePortID"), command, device=device, address=address
    )
    for line in trailer:
        m = _TOTAL_LINE.match(line)
        if m and int(m.group(1)) != len(rows):
            raise _parse_error(
                command, f"table has {len(rows)} rows but says 'Total entries displayed: {m.group(1)}'", device, address
            )
    neighbors = []
    for row in rows:
        if not row["localport"]:
            raise _parse_error(command, f"row without a local port: {row}", device, address)
        neighbors.append(
            LldpNeighbor(
                local_port=row["localport"], remote_system=row["remotedevice"], remote_port=row["remoteportid"]
            )
        )
    return neighbors


def _count(value: object, field: str, port: str, device: str, address: str) -> int | None:
    text = str(value).replace(",", "").strip()
    if text == "N/A":
        return None
    if not text.isdigit():
        raise DeviceProtocolError(
            device, address, "parse 'show interfaces counters -j' output", f"{port}: {field} is not a count: {value!r}"
        )
    return int(text)


def parse_interfaces_counters_json(text: str, *, device: str = "<text>", address: str = "-") -> list[PortCounters]:
    """``show interfaces counters -j`` (portstat table_as_json) -> PortCounters per port, natural order.

    portstat prints packet counts (RX_OK/TX_OK), not octets, so ``in_octets``/``out_octets`` are
    None; errors and drops come from RX_ERR/TX_ERR/RX_DRP/TX_DRP ("1,234" strings, "N/A" = None).
    """
    operation = "parse 'show interfaces counters -j' output"
    start = text.find("{")
    try:
        doc = json.loads(text[start:]) if start >= 0 else None
    except json.JSONDecodeError as exc:
        raise DeviceProtocolError(device, address, operation, f"not valid JSON: {exc.msg} at char {exc.pos}") from exc
    if not isinstance(doc, dict) or not all(isinstance(v, dict) for v in doc.values()):
        raise DeviceProtocolError(device, address, operation, "expected an object of per-interface objects")

    def natural(name: str) -> tuple[str, int]:
        digits = "".join(ch for ch in name if ch.isdigit())
        return name.rstrip("0123456789"), int(digits or 0)

    ports = []
    for name in sorted(doc, key=natural):
        row = doc[name]
        missing = [k for k in ("RX_ERR", "TX_ERR", "RX_DRP", "TX_DRP") if k not in row]
        if missing:
            raise DeviceProtocolError(device, address, operation, f"{name}: missing {', '.join(missing)}")
        ports.append(
            PortCounters(
                name=name,
                in_octets=None,
                out_octets=None,
                in_errors=_count(row["RX_ERR"], "RX_ERR", name, device, address),
                out_errors=_count(row["TX_ERR"], "TX_ERR", name, device, address),
                in_discards=_count(row["RX_DRP"], "RX_DRP", name, device, address),
                out_discards=_count(row["TX_DRP"], "TX_DRP", name, device, address),
            )
        )
    return ports


class SonicSwitch(Device, NetSwitch, PortCounterSource):
    """A SONiC switch driven through its show CLI over SSH exec channels.

    Credentials: ``username`` with ``password`` or ``key_file``. Options: those of
    ``rackval.drivers.transport.ssh.SshTransport`` (``known_hosts``, ``trust_on_first_use``,
    ``allow_agent``, ``look_for_keys``, ``keepalive_s``, ``encoding``), plus:

    - ``command_timeout_s`` (float, default ``config.timeout_s``): limit for one show command;
      ``show interfaces status`` on a large chassis can take seconds.

    The SSH user must be able to run ``show`` without sudo (SONiC's admin can).
    """

    options_model = SshSwitchOptions

    def __init__(self, config: DeviceConfig) -> None:
        self.name = config.name
        self._config = config
        self._address = config.address
        opts = parse_options(self.options_model, config.options, config.name)
        self._timeout = opts.command_timeout_s or config.timeout_s
        self._ssh = SshTransport(config)

    def __repr__(self) -> str:
        return f"SonicSwitch({self.name!r}, {self._address!r})"

    def _show(self, argv: Sequence[str]) -> str:
        result = self._ssh.run(list(argv), timeout=self._timeout)
        if result.exit_status != 0:
            message = (result.stderr.strip() or result.stdout.strip()).splitlines()
            raise DeviceProtocolError(
                self.name,
                self._address,
                f"SSH command {result.command!r}",
                f"exit status {result.exit_status}: {message[-1] if message else 'no output'}",
            )
        return result.stdout

    def identify(self) -> Identity:
        text = self._show(SHOW_VERSION)
        return parse_show_version(text, device=self.name, address=self._address)

    def ports(self) -> list[PortStatus]:
        text = self._show(SHOW_INTERFACES_STATUS)
        return parse_interfaces_status(text, device=self.name, address=self._address)

    def lldp_neighbors(self) -> list[LldpNeighbor]:
        text = self._show(SHOW_LLDP_TABLE)
        return parse_lldp_table(text, device=self.name, address=self._address)

    def counters(self) -> list[PortCounters]:
        """Error and discard counters per port (portstat counts packets, so octets are None)."""
        text = self._show(["show", "interfaces", "counters", "-j"])
        return parse_interfaces_counters_json(text, device=self.name, address=self._address)

    def close(self) -> None:
        self._ssh.close()
