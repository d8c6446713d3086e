"""The simulated SONiC switch's CLI: the ``show`` commands the switch driver runs, from the model.

``start_switch_ssh`` serves it over SSH (``rackval.sim.ssh_server``); ``sonic_cli`` is the
command handler. It renders ``show version``, ``show interfaces status``, ``show lldp table``,
``show interfaces counters`` (text, ``-j`` JSON, ``errors``, ``fec-stats``), ``show platform
temperature`` and ``show platform psustatus`` from the live ``RackModel``, laid out the way
sonic-utilities prints them (tabulate "simple" tables, portstat's ``table_as_json``), so the
driver parses the same text it would get from hardware. Other ``show`` commands fail like
SONiC's click CLI (exit 2), anything else like bash (exit 127).
"""

from __future__ import annotations

import datetime as dt
import json
import shlex
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import paramiko

from rackval.sim.model import RackModel, Switch
from rackval.sim.ssh_server import CommandHandler, CommandOutput, SshServer


def tabulate_simple(headers: Sequence[str], rows: Sequence[Sequence[str]], align: str) -> str:
    """Lay out a table like python-tabulate's "simple" format, as sonic-utilities prints it.

    tabulate gives each column width max(len(header) + 2, longest cell), separates columns with
    two spaces, aligns headers like their column and strips trailing blanks from every line.
    ``align`` is "right" (intfutil passes stralign='right') or "left" (lldpshow's default).
    """
    widths = [max([len(h) + 2] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        padded = [c.rjust(w) if align == "right" else c.ljust(w) for c, w in zip(cells, widths, strict=True)]
        return "  ".join(padded).rstrip()

    out = [line(headers), "  ".join("-" * w for w in widths)]
    out.extend(line(r) for r in rows)
    return "\n".join(out)


def format_speed(speed_mbps: int) -> str:
    """intfutil's port_speed_parse: Mb/s -> '400G', '2.5G', '100M'."""
    if speed_mbps < 1000:
        return f"{speed_mbps}M"
    if speed_mbps % 1000 >= 100:
        return f"{speed_mbps / 1000:.1f}G"
    return f"{speed_mbps / 1000:.0f}G"


def _transceiver_type(speed_mbps: int) -> str:
    # Strings as SONiC's sfputil reports them in STATE_DB TRANSCEIVER_INFO.type.
    if speed_mbps >= 400_000:
        return "QSFP-DD Double Density 8X Pluggable Transceiver"
    return "QSFP28 or later"


def _uptime(seconds: float) -> str:
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    span = f"{days} days, {hours:2d}:{minutes:02d}" if days else f"{hours:2d}:{minutes:02d}"
    now = dt.datetime.now()
    return f"{now:%H:%M:%S} up {span},  1 user,  load average: 0.52, 0.58, 0.59"


def format_show_version(switch: Switch, uptime_s: float) -> str:
    """``show version`` as SONiC prints it (sonic-utilities show/main.py, version command)."""
    info = switch.info
    now = dt.datetime.now(dt.UTC)
    return "\n".join(
        [
            "",  # sonic-utilities starts the output with an empty line
            f"SONiC Software Version: {info.firmware}",
            "SONiC OS Version: 11",
            "Distribution: Debian 11.8",
            "Kernel: 5.10.0-23-2-amd64",
            "Build commit: 5cd2a8f0c",
            "Build date: Tue Jan 16 08:15:42 UTC 2024",
            "Built by: sonicbld@rackval-sim",
            "",
            "Platform: x86_64-rackval_sim-r0",
            f"HwSKU: {info.model}",
            "ASIC: rackval-sim",
            "ASIC Count: 1",
            f"Serial Number: {info.serial}",
            f"Model Number: {info.model}",
            "Hardware Revision: A0",
            f"Uptime: {_uptime(uptime_s)}",
            f"Date: {now:%a %d %b %Y %H:%M:%S}",
            "",
            "Docker images:",
            "REPOSITORY                 TAG                 IMAGE ID            SIZE",
            "docker-orchagent           latest              1f2e3d4c5b6a        331MB",
            "docker-lldp                latest              6a5b4c3d2e1f        305MB",
            "docker-platform-monitor    latest              0a1b2c3d4e5f        421MB",
            "",
        ]
    )


def format_interfaces_status(switch: Switch) -> str:
    """``show interfaces status`` (intfutil): right-aligned simple table, natural port order."""
    headers = ["Interface", "Lanes", "Speed", "MTU", "FEC", "Alias", "Vlan", "Oper", "Admin", "Type", "Asym PFC"]
    rows = []
    for port in sorted(switch.ports, key=lambda p: p.index):
        lanes_per_port = 8 if port.speed_mbps >= 400_000 else 4
        first = (port.index - 1) * lanes_per_port
        rows.append(
            [
                port.name,
                ",".join(str(first + k) for k in range(lanes_per_port)),
                format_speed(port.speed_mbps),
                "9100",
                "rs",
                port.alias,
                "routed",
                "up" if port.oper_up else "down",
                "up" if port.admin_up else "down",
                _transceiver_type(port.speed_mbps) if port.peer is not None else "N/A",
                "off",
            ]
        )
    return tabulate_simple(headers, rows, align="right") + "\n"


def format_lldp_table(switch: Switch) -> str:
    """``show lldp table`` (lldpshow): neighbours on ports whose link is up.

    A GPU node's lldpd advertises its host name as system name and the NIC as port id and port
    description; a plain host has no Bridge/Router capability, which lldpshow prints as "O".
    """
    rows = [
        [port.name, port.peer[0], port.peer[1], "O", port.peer[1]]
        for port in sorted(switch.ports, key=lambda p: p.index)
        if port.oper_up and port.peer is not None
    ]
    table = tabulate_simple(
        ["LocalPort", "RemoteDevice", "RemotePortID", "Capability", "RemotePortDescr"], rows, align="left"
    )
    return (
        "Capability codes: (R) Router, (B) Bridge, (O) Other\n"
        f"{table}\n{'-' * 50}\nTotal entries displayed:  {len(rows)}\n"
    )


# portstat (sonic-utilities utilities_common/portstat.py) column sets.
COUNTERS_HEADER = ["IFACE", "STATE", "RX_OK", "RX_BPS", "RX_UTIL", "RX_ERR", "RX_DRP", "RX_OVR",
                   "TX_OK", "TX_BPS", "TX_UTIL", "TX_ERR", "TX_DRP", "TX_OVR"]  # fmt: skip
COUNTERS_ERRORS_HEADER = ["IFACE", "STATE", "RX_ERR", "RX_DRP", "RX_OVR", "TX_ERR", "TX_DRP", "TX_OVR"]
COUNTERS_FEC_HEADER = ["IFACE", "STATE", "FEC_CORR", "FEC_UNCORR", "FEC_SYMBOL_ERR", "FEC_PRE_BER", "FEC_POST_BER"]
TEMPERATURE_HEADER = ["Sensor", "Temperature", "High TH", "Low TH", "Crit High TH", "Crit Low TH", "Warning",
                      "Timestamp"]  # fmt: skip
PSU_HEADER = ["PSU", "Model", "Serial", "HW Rev", "Voltage (V)", "Current (A)", "Power (W)", "Status", "LED"]
# The model counts octets; portstat shows packets. RoCE traffic on a 9100-MTU fabric runs 4 KiB
# payloads, so the simulator counts one packet per 4160 octets (payload plus headers).
MEAN_FRAME_OCTETS = 4160


def _comma(value: int) -> str:
    """portstat's ns_diff formatting: thousands separated by commas."""
    return f"{value:,}"


def _brate(rate: float) -> str:
    """portstat's format_brate: bytes per second as B/s, KB/s or MB/s."""
    if rate > 10_000_000:
        return f"{rate / 1e6:.2f} MB/s"
    if rate > 10_000:
        return f"{rate / 1e3:.2f} KB/s"
    return f"{rate:.2f} B/s"


@dataclass(frozen=True)
class _PortSample:
    t: float
    counters: dict[str, int]


class _PortRates:
    """Rates the way SONiC's flex counters give them: differences between two polls.

    Each show command compares the counters with the sample taken at least ``min_interval_s``
    of virtual time earlier (the first call of a fresh CLI has no rates yet: 0 / N/A).
    """

    def __init__(self, min_interval_s: float = 1.0) -> None:
        self._min = min_interval_s
        self._lock = threading.Lock()
        self._last: dict[str, _PortSample] = {}
        self._prev: dict[str, _PortSample] = {}

    def pair(self, port: str, now: float, counters: dict[str, int]) -> tuple[_PortSample | None, _PortSample]:
        with self._lock:
            current = _PortSample(now, dict(counters))
            last = self._last.get(port)
            if last is None or now - last.t >= self._min:
                if last is not None:
                    self._prev[port] = last
                self._last[port] = current
            return self._prev.get(port), current


def _delta(new: int, old: int) -> int:
    return (new - old) % 2**64  # 64-bit counters wrap


def _port_state(port: object) -> str:
    """portstat's STATE: U (up), D (admin up, oper down), X (admin down)."""
    if not getattr(port, "admin_up", True):
        return "X"
    return "U" if getattr(port, "oper_up", False) else "D"


def counters_rows(model: RackModel, switch: str, rates: _PortRates) -> list[dict[str, str]]:
    """One dict per port with every portstat column (strings, as portstat prints them)."""
    rows: list[dict[str, str]] = []
    now = model.now()
    for port in sorted(model.switches[switch].ports, key=lambda p: p.index):
        c = model.port_counters(switch, port.name)
        prev, cur = rates.pair(port.name, now, c)
        rx_bps = tx_bps = 0.0
        pre_ber = post_ber = "N/A"
        if prev is not None and cur.t > prev.t:
            dt_s = cur.t - prev.t
            rx_bps = _delta(c["in_octets"], prev.counters["in_octets"]) / dt_s
            tx_bps = _delta(c["out_octets"], prev.counters["out_octets"]) / dt_s
            bits = _delta(c["out_octets"], prev.counters["out_octets"]) * 8
            if bits > 0:
                corr = _delta(c["fec_corrected"], prev.counters["fec_corrected"])
                uncorr = _delta(c["fec_uncorrected"], prev.counters["fec_uncorrected"])
                pre_ber, post_ber = f"{(corr + uncorr) / bits:.2e}", f"{uncorr / bits:.2e}"
        line_bytes_s = port.speed_mbps * 1e6 / 8
        rows.append(
            {
                "IFACE": port.name,
                "STATE": _port_state(port),
                "RX_OK": _comma(c["in_octets"] // MEAN_FRAME_OCTETS),
                "RX_BPS": _brate(rx_bps),
                "RX_UTIL": f"{rx_bps / line_bytes_s * 100:.2f}%",
                "RX_ERR": _comma(c["in_errors"]),
                "RX_DRP": "0",
                "RX_OVR": "0",
                "TX_OK": _comma(c["out_octets"] // MEAN_FRAME_OCTETS),
                "TX_BPS": _brate(tx_bps),
                "TX_UTIL": f"{tx_bps / line_bytes_s * 100:.2f}%",
                "TX_ERR": "0",
                "TX_DRP": "0",
                "TX_OVR": "0",
                "FEC_CORR": _comma(c["fec_corrected"]),
                "FEC_UNCORR": _comma(c["fec_uncorrected"]),
                "FEC_SYMBOL_ERR": _comma(c["fec_corrected"]),
                "FEC_PRE_BER": pre_ber,
                "FEC_POST_BER": post_ber,
            }
        )
    return rows


def format_counters(rows: Sequence[dict[str, str]], header: Sequence[str], as_json: bool) -> str:
    """portstat output: a right-aligned simple table, or table_as_json (indent 4, sorted keys)."""
    if as_json:
        doc = {r[header[0]]: {h: r[h] for h in header[1:]} for r in rows}
        return json.dumps(doc, indent=4, sort_keys=True) + "\n"
    return tabulate_simple(header, [[r[h] for h in header] for r in rows], align="right") + "\n"


def temperature_rows(model: RackModel, switch: str) -> list[dict[str, str]]:
    """Switch thermal sensors (the model has no switch thermals: derived from ambient and links).

    ASIC and optics run warmer with more links up; thresholds are typical of a Spectrum-class
    switch. Rows as tempershow builds them from STATE_DB TEMPERATURE_INFO.
    """
    ambient = model.ambient_c
    ports = sorted(model.switches[switch].ports, key=lambda p: p.index)
    up = sum(1 for p in ports if p.oper_up)
    stamp = dt.datetime.now().strftime("%Y%m%d %H:%M:%S")
    sensors: list[tuple[str, float, float, float, float, float]] = [
        ("ASIC", ambient + 30.0 + 0.5 * up, 105.0, -5.0, 120.0, -10.0),
        ("CPU Core 0", ambient + 18.0, 95.0, -5.0, 105.0, -10.0),
        ("PSU 1 Temp", ambient + 12.0, 80.0, -5.0, 95.0, -10.0),
        ("PSU 2 Temp", ambient + 12.5, 80.0, -5.0, 95.0, -10.0),
    ]
    for p in ports:
        if p.oper_up:
            sensors.append((f"xSFP module {p.index} Temp", ambient + 20.0, 70.0, 0.0, 75.0, -5.0))
    return [
        {
            "Sensor": name,
            "Temperature": f"{t:.1f}",
            "High_TH": f"{hi:.1f}",
            "Low_TH": f"{lo:.1f}",
            "Crit_High_TH": f"{chi:.1f}",
            "Crit_Low_TH": f"{clo:.1f}",
            "Warning": "True" if t >= hi else "False",
            "Timestamp": stamp,
        }
        for name, t, hi, lo, chi, clo in sensors
    ]


def format_temperature(rows: Sequence[dict[str, str]], as_json: bool) -> str:
    """tempershow: right-aligned simple table, or a JSON list (indent 2)."""
    if as_json:
        return json.dumps(list(rows), indent=2) + "\n"
    keys = ["Sensor", "Temperature", "High_TH", "Low_TH", "Crit_High_TH", "Crit_Low_TH", "Warning", "Timestamp"]
    return tabulate_simple(TEMPERATURE_HEADER, [[r[k] for k in keys] for r in rows], align="right") + "\n"


def psu_rows(model: RackModel, switch: str) -> list[dict[str, str]]:
    """Two load-sharing 12 V PSUs (the model has no switch PSUs: a base load plus ~8 W per live link)."""
    ports = model.switches[switch].ports
    total = 250.0 + 8.0 * sum(1 for p in ports if p.oper_up)
    serial = model.switches[switch].info.serial
    rows = []
    for i in (1, 2):
        power = total / 2
        rows.append(
            {
                "index": str(i),
                "name": f"PSU {i}",
                "presence": "true",
                "status": "OK",
                "led_status": "green",
                "model": "MTEF-PSF-AC-C",
                "serial": f"{serial}-P{i}",
                "revision": "A1",
                "voltage": "12.00",
                "current": f"{power / 12.0:.2f}",
                "power": f"{power:.2f}",
            }
        )
    return rows


def format_psus(rows: Sequence[dict[str, str]], as_json: bool) -> str:
    """psushow -s: simple table, or a JSON list of per-PSU dicts (indent 4)."""
    if as_json:
        return json.dumps(list(rows), indent=4) + "\n"
    keys = ["name", "model", "serial", "revision", "voltage", "current", "power", "status", "led_status"]
    return tabulate_simple(PSU_HEADER, [[r[k] for k in keys] for r in rows], align="left") + "\n"


def _click_usage_error(words: Sequence[str], message: str) -> CommandOutput:
    cmd = " ".join(words[:3])
    return CommandOutput("", f'Usage: {cmd} [OPTIONS]\nTry "{cmd} -h" for help.\n\nError: {message}\n', 2)


def sonic_cli(model: RackModel, switch: str) -> CommandHandler:
    """A handler answering the SONiC show commands for ``model.switches[switch]``."""
    if switch not in model.switches:
        raise KeyError(f"no switch {switch!r} in the rack model (have: {', '.join(model.switches)})")
    rates = _PortRates()

    def counters(words: list[str]) -> CommandOutput:
        # show interfaces counters [errors|fec-stats] [-a|--printall] [-j|--json]
        rest = words[3:]
        header = COUNTERS_HEADER
        if rest and rest[0] in ("errors", "fec-stats"):
            header = COUNTERS_ERRORS_HEADER if rest[0] == "errors" else COUNTERS_FEC_HEADER
            rest = rest[1:]
        as_json = False
        for word in rest:
            if word in ("-j", "--json"):
                as_json = True
            elif word not in ("-a", "--printall"):
                return _click_usage_error(words, f"No such option: {word}")
        with model.lock:
            rows = counters_rows(model, switch, rates)
        return CommandOutput(format_counters(rows, header, as_json))

    def handle(command: str) -> CommandOutput:
        try:
            words = shlex.split(command)
        except ValueError as exc:
            return CommandOutput("", f"bash: -c: line 1: {exc}\n", 2)
        if not words:
            return CommandOutput("", "", 0)
        key = " ".join(words)
        with model.lock:  # render from one consistent snapshot of the rack
            sw = model.switches[switch]
            if key == "show version":
                return CommandOutput(format_show_version(sw, model.clock.now()))
            if key in ("show interfaces status", "show interface status"):
                return CommandOutput(format_interfaces_status(sw))
            if key == "show lldp table":
                return CommandOutput(format_lldp_table(sw))
            if words[:3] in (["show", "interfaces", "counters"], ["show", "interface", "counters"]):
                return counters(words)
            if words[:3] == ["show", "platform", "temperature"]:
                return CommandOutput(format_temperature(temperature_rows(model, switch), _json_flag(words[3:])))
            if words[:3] == ["show", "platform", "psustatus"]:
                return CommandOutput(format_psus(psu_rows(model, switch), _json_flag(words[3:])))
        if words[0] == "show":
            return CommandOutput(
                "",
                'Usage: show [OPTIONS] COMMAND [ARGS]...\nTry "show -h" for help.\n\n'
                f'Error: No such command "{" ".join(words[1:])}".\n',
                2,
            )
        return CommandOutput("", f"bash: line 1: {words[0]}: command not found\n", 127)

    return handle


def _json_flag(rest: Sequence[str]) -> bool:
    return any(w in ("-j", "--json") for w in rest)


def start_switch_ssh(
    model: RackModel,
    switch: str,
    *,
    host: str = "127.0.0.1",
    username: str,
    password: str,
    host_key: paramiko.PKey,
    protocol_faults: bool = True,
) -> SshServer:
    """Serve the SONiC CLI of ``model.switches[switch]`` over SSH on ``host``, port chosen by the OS.

    Serves exec requests for ``show version``, ``show interfaces status``, ``show lldp table``,
    ``show interfaces counters [errors|fec-stats] [-a] [-j|--json]``, ``show platform
    temperature [--json]`` and ``show platform psustatus [--json]`` (live from the model); other
    ``show`` commands fail like SONiC's click CLI (exit 2), anything else like bash (exit 127).
    Password authentication only. Protocol faults injected on ``switch`` act on the server
    (``protocol_faults=False`` turns that off).
    """
    handler = sonic_cli(model, switch)
    faults = (lambda: model.active_faults(switch)) if protocol_faults else None
    server = SshServer(
        handler, host=host, username=username, password=password, host_key=host_key, name=switch, faults=faults
    )
    return server.start()
