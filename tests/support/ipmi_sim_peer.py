"""Start OpenIPMI's ``ipmi_sim`` (a third-party IPMI LAN BMC) on 127.0.0.1 for driver tests.

Writes a lan.conf (one LAN channel on a free UDP port, one admin user), an emulator command
file (a BMC at IPMB 0x20 with FRU data, temperature sensors and their SDRs, SEL entries) and a
chassis-control script that keeps the host power state in a file, then runs
``ipmi_sim -c lan.conf -f emu.cmds -s <state dir> -n``. Formats: ipmi_lan(5), ipmi_sim_cmd(5);
SDR and FRU byte layouts: IPMI v2.0 spec tables 43-1 (full sensor record) and FRU spec 1.0
section 11 (product info area).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

IPMI_SIM = "ipmi_sim"

CHASSIS_SCRIPT = textwrap.dedent(
    """\
    #!/bin/sh
    # ipmi_sim chassis_control program: "<prog> get power" prints "power:<0|1>";
    # "<prog> set power <0|1> [reset 1 ...]" stores the new state.
    STATE="{state}"
    cmd=$1; shift
    if [ "$cmd" = get ]; then
      for n in "$@"; do
        case $n in power) echo "power:$(cat "$STATE")";; esac
      done
    elif [ "$cmd" = set ]; then
      while [ $# -gt 1 ]; do
        case $1 in
          power) echo "$2" > "$STATE";;
          reset) echo "$(date +%s)" >> "$STATE.resets";;
        esac
        shift 2
      done
    fi
    exit 0
    """
)


@dataclass(frozen=True)
class SimSensor:
    """A threshold temperature sensor: number, SDR name and raw reading (M=1, so degrees C)."""

    number: int
    name: str
    celsius: int


@dataclass(frozen=True)
class SimFru:
    manufacturer: str = "Rackval Labs"
    product: str = "RV-2U-GPU"
    part: str = "RV-0001"
    version: str = "A1"
    serial: str = "SN-IPMI-0042"


@dataclass
class IpmiSim:
    """A running ipmi_sim: where it listens, who may log in, and its chassis state file."""

    proc: subprocess.Popen[bytes]
    port: int
    user: str
    password: str
    dir: Path
    power_file: Path
    log: Path
    fru: SimFru | None  # None: no FRU 0
    sensors: list[SimSensor] = field(default_factory=list)
    firmware: tuple[int, int] = (2, 0x15)

    @property
    def power_on(self) -> bool:
        return self.power_file.read_text().strip() == "1"

    def set_power(self, on: bool) -> None:
        self.power_file.write_text("1\n" if on else "0\n")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tl(text: str) -> list[int]:
    """FRU type/length byte (8-bit ASCII, type code 11b) followed by the bytes."""
    raw = text.encode("latin-1")
    assert len(raw) < 64
    return [0xC0 | len(raw), *raw]


def _checksum(data: list[int]) -> int:
    return (-sum(data)) & 0xFF


def fru_bytes(fru: SimFru) -> list[int]:
    """A FRU image with a common header and a product info area only."""
    area = [0x01, 0x00, 0x00]  # format version, length (filled below), language English
    for text in (fru.manufacturer, fru.product, fru.part, fru.version, fru.serial, "", ""):
        area += _tl(text)  # ... asset tag, FRU file id empty
    area.append(0xC1)  # end of fields
    while (len(area) + 1) % 8:
        area.append(0x00)
    area[1] = (len(area) + 1) // 8
    area.append(_checksum(area))
    header = [0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00]  # product area at offset 1 * 8
    header.append(_checksum(header))
    return header + area


def full_sensor_sdr(record_id: int, sensor: SimSensor) -> list[int]:
    """A type 01h full sensor record for a linear temperature sensor, 1 degree C per count."""
    name = sensor.name.encode("ascii")
    body = [
        0x20,  # sensor owner: BMC
        0x00,  # owner LUN
        sensor.number,
        0x03,  # entity: processor
        0x01,  # entity instance
        0x7F,  # initialisation: scanning, events, thresholds, hysteresis, type enabled
        0x68,  # capabilities: auto re-arm, readable thresholds, per-threshold events
        0x01,  # sensor type: temperature
        0x01,  # event/reading type: threshold
        0x00, 0x00,  # assertion mask
        0x00, 0x00,  # deassertion mask
        0x00, 0x00,  # reading masks
        0x00,  # units 1: unsigned
        0x01,  # base unit: degrees C
        0x00,  # modifier unit
        0x00,  # linearisation: linear
        0x01, 0x00,  # M = 1, tolerance 0
        0x00, 0x00,  # B = 0, accuracy 0
        0x00,  # accuracy, direction
        0x00,  # R exp, B exp
        0x00,  # analog characteristics
        40, 90, 10,  # nominal, normal max, normal min
        0xFF, 0x00,  # sensor max, min
        100, 95, 90,  # upper non-recoverable, critical, non-critical
        0, 0, 0,  # lower thresholds
        0x00, 0x00,  # hysteresis
        0x00, 0x00,  # reserved
        0x00,  # OEM
        0xC0 | len(name),
        *name,
    ]  # fmt: skip
    header = [record_id & 0xFF, record_id >> 8, 0x51, 0x01, len(body)]
    return header + body


def _hex(values: list[int]) -> str:
    return " ".join(f"0x{v:02x}" for v in values)


def emu_commands(sim_fru: SimFru | None, sensors: list[SimSensor], firmware: tuple[int, int], sel: bool) -> str:
    """The emulator commands; ``sim_fru`` None: a BMC without FRU 0, ``sensors`` []: without SDRs."""
    lines = [
        "mc_setbmc 0x20",
        # addr, device id, device SDRs, device rev, fw major, fw minor (BCD), support, mfg, product
        f"mc_add 0x20 0 no-device-sdrs 0x23 {firmware[0]:#x} {firmware[1]:#x} 0x9f 0x1291 0xf02",
        "sel_enable 0x20 1000 0x0a",
    ]
    if sim_fru is not None:
        image = fru_bytes(sim_fru)
        lines.append(f"mc_add_fru_data 0x20 0 {len(image)} data {_hex(image)}")
    for record_id, sensor in enumerate(sensors, start=1):
        lines.append(f"main_sdr_add 0x20 {_hex(full_sensor_sdr(record_id, sensor))}")
        lines.append(f"sensor_add 0x20 0 {sensor.number} 0x01 0x01")
        lines.append(f"sensor_set_value 0x20 0 {sensor.number} {sensor.celsius} 0")
    if sel and sensors:
        s = sensors[0]
        # record type 02h: timestamp (4, LSB first), generator 0x0020, EvM rev 04h, sensor type 01h,
        # sensor number, event type 01h (threshold, assertion), data: upper critical going high
        # (offset 9) with trigger reading and threshold in bytes 2 and 3.
        ts = [0x00, 0x2F, 0x5B, 0x65]  # 2023-11-20
        lines.append(f"sel_add 0x20 0x02 {_hex([*ts, 0x20, 0x00, 0x04, 0x01, s.number, 0x01, 0x59, 96, 95])}")
    lines.append("mc_enable 0x20")
    return "\n".join(lines) + "\n"


def lan_conf(port: int, user: str, password: str, chassis_script: Path) -> str:
    return textwrap.dedent(
        f"""\
        name "rackvalsim"
        set_working_mc 0x20
          startlan 1
            addr 127.0.0.1 {port}
            priv_limit admin
            allowed_auths_callback md5
            allowed_auths_user md5
            allowed_auths_operator md5
            allowed_auths_admin md5
            guid a123456789abcdefa123456789abcdef
          endlan
          chassis_control "{chassis_script}"
          user 2 true "{user}" "{password}" admin 10 md5
        """
    )


def _wait_ready(sim: IpmiSim, limit_s: float = 10.0) -> None:
    """Poll with ipmitool until the simulator answers a session (it binds after reading emu.cmds)."""
    env = dict(os.environ, IPMI_PASSWORD=sim.password)
    argv = ["ipmitool", "-I", "lanplus", "-H", "127.0.0.1", "-p", str(sim.port), "-U", sim.user, "-C", "3"]
    argv += ["-N", "1", "-R", "0", "-E", "mc", "guid"]
    deadline = time.monotonic() + limit_s
    last = ""
    while time.monotonic() < deadline:
        if sim.proc.poll() is not None:
            raise RuntimeError(f"ipmi_sim exited with {sim.proc.returncode}: {sim.log.read_text()}")
        run = subprocess.run(argv, env=env, capture_output=True, timeout=10, check=False)
        if run.returncode == 0:
            return
        last = run.stderr.decode(errors="replace")
        time.sleep(0.1)
    raise RuntimeError(f"ipmi_sim not ready on UDP {sim.port} within {limit_s} s: {last} {sim.log.read_text()}")


def start_ipmi_sim(
    directory: Path,
    *,
    user: str = "rvadmin",
    password: str = "ipmi-sim-pw-7",
    fru: SimFru | None = None,
    sensors: list[SimSensor] | None = None,
    firmware: tuple[int, int] = (2, 0x15),
    sel: bool = True,
    with_fru: bool = True,
) -> IpmiSim:
    """Start ipmi_sim in ``directory``; the caller must ``stop()`` it (fixture finalizer).

    ``with_fru=False``: a BMC without FRU 0 (``fru print 0`` answers "Device not present");
    ``sensors=[]``: without SDRs (an empty repository, no temperature sensor).
    """
    if shutil.which(IPMI_SIM) is None or shutil.which("ipmitool") is None:
        raise RuntimeError("ipmi_sim (Debian package openipmi) and ipmitool are required")
    fru = fru or SimFru()
    sensors = sensors if sensors is not None else [SimSensor(1, "CPU0 Temp", 45), SimSensor(2, "Inlet Temp", 23)]
    directory.mkdir(parents=True, exist_ok=True)
    power = directory / "power.state"
    power.write_text("1\n")
    script = directory / "chassis.sh"
    script.write_text(CHASSIS_SCRIPT.format(state=power))
    script.chmod(0o755)
    port = free_udp_port()
    (directory / "lan.conf").write_text(lan_conf(port, user, password, script))
    (directory / "emu.cmds").write_text(emu_commands(fru if with_fru else None, sensors, firmware, sel))
    state = directory / "state"
    state.mkdir(exist_ok=True)
    log = directory / "ipmi_sim.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [IPMI_SIM, "-c", "lan.conf", "-f", "emu.cmds", "-s", str(state), "-n"],
            cwd=directory,
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    sim = IpmiSim(proc, port, user, password, directory, power, log, fru if with_fru else None, list(sensors), firmware)
    try:
        _wait_ready(sim)
    except BaseException:
        sim.stop()
        raise
    return sim
