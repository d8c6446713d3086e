"""IpmiBmc / IpmiTransport: parsers on real ipmitool output, then ipmitool against OpenIPMI's
ipmi_sim (third-party IPMI LAN BMC) on 127.0.0.1.

ipmi_sim supports RMCP+ cipher suite 3 but not 17 and has no DCMI: the driver runs with
``cipher_suite: 3`` here, and the tests check that suite 17 fails with an error that says so and
that power is "not available". A second ipmi_sim has no FRU 0 and no SDRs: its identity comes
from ``mc info``, its power state and (no) temperatures still read, in the driver and in
``rackval probe``.
"""

from __future__ import annotations

import dataclasses
import json
import stat
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from rackval.core.errors import ConfigError, DeviceAuthError, DeviceError, DeviceTimeout, NotAvailable
from rackval.drivers.bmc.ipmi import (
    IpmiBmc,
    parse_dcmi_power,
    parse_fru,
    parse_mc_info,
    parse_power_status,
    parse_sdr_temperatures,
    parse_sel_elist,
)
from rackval.drivers.capabilities import Bmc, Device, Identity, PowerMeter
from rackval.drivers.config import Credentials, DeviceConfig, Secret
from rackval.drivers.transport.ipmi import IpmiTransport
from rackval.harness.probe import main as probe_main
from tests.support.ipmi_sim_peer import IpmiSim, free_udp_port, start_ipmi_sim

# ---- captured ipmitool 1.8.19 output (Dell / Supermicro-style servers) -------------------------

FRU_PRINT = """\
FRU Device Description : Builtin FRU Device (ID 0)
 Board Mfg Date        : Mon Jun  3 01:00:00 2019
 Board Mfg             : DELL
 Board Product         : PowerEdge R640
 Board Serial          : CNFCP0095B00QE
 Board Part Number     : 0CRT1GA05
 Product Manufacturer  : DELL
 Product Name          : PowerEdge R640
 Product Version       : 01
 Product Serial        : 7XH2JW2
 Product Asset Tag     :
"""

FRU_BOARD_ONLY = """\
 Chassis Type          : Rack Mount Chassis
 Chassis Serial        : C8170KE07A30079
 Board Mfg Date        : Sun Dec 31 16:00:00 1995
 Board Mfg             : Supermicro
 Board Product         : X11DPi-N
 Board Serial          : OM17AS004517
"""

MC_INFO = """\
Device ID                 : 32
Device Revision           : 1
Firmware Revision         : 4.40
IPMI Version              : 2.0
Manufacturer ID           : 674
Manufacturer Name         : DELL Inc
Product ID                : 256 (0x0100)
Product Name              : Unknown (0x100)
Device Available          : yes
Provides Device SDRs      : yes
"""

SDR_TEMPERATURE = """\
Inlet Temp       | 04h | ok  |  7.1 | 21 degrees C
Exhaust Temp     | 01h | ok  |  7.1 | 34 degrees C
Temp             | 0Eh | ok  |  3.1 | 41 degrees C
Temp             | 0Fh | ok  |  3.2 | 43.50 degrees C
GPU1 Temp        | 30h | ns  | 11.1 | No Reading
CPU2 Temp        | 31h | ns  |  3.2 | Disabled
"""

SDR_ELIST = """\
Fan1 RPM         | 30h | ok  |  7.1 | 5760 RPM
Inlet Temp       | 04h | ok  |  7.1 | 22 degrees C
PS1 Status       | 63h | ok  | 10.1 | Presence detected
Pwr Consumption  | 77h | ok  |  7.1 | 238 Watts
"""

DCMI_READING = """\

    Instantaneous power reading:                   238 Watts
    Minimum during sampling period:                 20 Watts
    Maximum during sampling period:                542 Watts
    Average power reading over sample period:      230 Watts
    IPMI timestamp:                           Thu Nov 22 01:02:03 2026
    Sampling period:                          00000005 Seconds.
    Power reading state is:                   activated

"""

SEL_ELIST = """\
   1 | 06/03/2019 | 01:16:25 | Event Logging Disabled #0x72 | Log area reset/cleared | Asserted
   2 | 11/20/2023 | 10:11:12 | Temperature #0x30 | Upper Critical going high | Asserted | Reading 96 > Threshold 95 degrees C
   a | 11/20/2023 | 10:12:00 | Power Supply PS2 Status | Power Supply AC lost | Asserted
"""  # noqa: E501


def test_parse_power_status() -> None:
    assert parse_power_status("Chassis Power is on\n") == "On"
    assert parse_power_status("Chassis Power is off\n") == "Off"
    with pytest.raises(ValueError):
        parse_power_status("Set Session Privilege Level to ADMINISTRATOR failed\n")


def test_parse_fru_product_area_and_board_fallback() -> None:
    assert parse_fru(FRU_PRINT) == {"vendor": "DELL", "model": "PowerEdge R640", "serial": "7XH2JW2"}
    assert parse_fru(FRU_BOARD_ONLY) == {"vendor": "Supermicro", "model": "X11DPi-N", "serial": "OM17AS004517"}


def test_parse_mc_info_firmware() -> None:
    assert parse_mc_info(MC_INFO) == {"firmware": "4.40", "manufacturer": "DELL Inc", "product": ""}  # "Unknown (..)"
    named = MC_INFO.replace("Unknown (0x100)", "PowerEdge R640")
    assert parse_mc_info(named)["product"] == "PowerEdge R640"


def test_parse_sdr_temperatures_keeps_readings_only_and_disambiguates() -> None:
    assert parse_sdr_temperatures(SDR_TEMPERATURE) == {
        "Inlet Temp": 21.0,
        "Exhaust Temp": 34.0,
        "Temp": 41.0,
        "Temp (0Fh)": 43.5,
    }
    assert parse_sdr_temperatures(SDR_ELIST) == {"Inlet Temp": 22.0}


def test_parse_dcmi_power_reading() -> None:
    assert parse_dcmi_power(DCMI_READING) == 238.0
    with pytest.raises(ValueError, match="deactivated"):
        parse_dcmi_power(DCMI_READING.replace("activated", "deactivated"))
    with pytest.raises(ValueError, match="Instantaneous"):
        parse_dcmi_power("")


def test_parse_sel_elist() -> None:
    entries = parse_sel_elist(SEL_ELIST)
    assert [e.id for e in entries] == ["1", "2", "10"]
    assert entries[1].created == "11/20/2023 10:11:12"
    assert entries[1].severity == "Critical"
    assert entries[1].message == (
        "Temperature #0x30: Upper Critical going high (Asserted; Reading 96 > Threshold 95 degrees C)"
    )
    assert entries[0].severity == "OK"
    assert entries[2].message.startswith("Power Supply PS2 Status: Power Supply AC lost")


# ---- transport argv and error mapping, with a stand-in ipmitool -------------------------------


def _config(port: int, password: str, **options: object) -> DeviceConfig:
    return DeviceConfig(
        name="node07-bmc",
        kind="bmc",
        driver="ipmi",
        host="127.0.0.1",
        port=port,
        credentials=Credentials(username="rvadmin", password=Secret(password)),
        options={"cipher_suite": 3, "retries": 1, "retransmit_s": 1, **options},
        timeout_s=5.0,
    )


def test_password_travels_in_environment_not_argv(tmp_path: Path) -> None:
    """A stand-in ipmitool records argv and IPMI_PASSWORD: the password must only be in the env."""
    record = tmp_path / "record.txt"
    fake = tmp_path / "ipmitool"
    fake.write_text(
        textwrap.dedent(
            f"""\
            #!/bin/sh
            printf '%s\\n' "$@" > {record}
            printf 'ENV=%s\\n' "$IPMI_PASSWORD" >> {record}
            echo "Chassis Power is on"
            """
        )
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    bmc = IpmiBmc(_config(6230, "hunter2-secret", ipmitool=str(fake), cipher_suite=17))
    assert bmc.power_state() == "On"
    lines = record.read_text().splitlines()
    argv, env = lines[:-1], lines[-1]
    assert env == "ENV=hunter2-secret"
    assert "hunter2-secret" not in " ".join(argv)
    assert "-P" not in argv
    assert argv[:2] == ["-I", "lanplus"]
    assert argv[argv.index("-C") + 1] == "17"
    assert argv[argv.index("-p") + 1] == "6230"
    assert "-E" in argv
    assert argv[-3:] == ["chassis", "power", "status"]
    assert "hunter2-secret" not in repr(bmc)


def test_ipmitool_failure_names_device_address_and_subcommand(tmp_path: Path) -> None:
    fake = tmp_path / "ipmitool"
    fake.write_text("#!/bin/sh\necho 'Invalid chassis power command: bogus' >&2\nexit 1\n")
    fake.chmod(0o755)
    bmc = IpmiBmc(_config(6231, "pw", ipmitool=str(fake)))
    with pytest.raises(DeviceError) as info:
        bmc.reset("PowerCycle")
    err = info.value
    assert type(err) is DeviceError
    assert err.device == "node07-bmc" and err.address == "127.0.0.1:6231"
    assert "chassis power cycle" in err.operation
    assert "Invalid chassis power command" in str(err)


def test_hung_ipmitool_is_killed_at_the_timeout(tmp_path: Path) -> None:
    fake = tmp_path / "ipmitool"
    fake.write_text("#!/bin/sh\nexec sleep 30\n")
    fake.chmod(0o755)
    config = _config(6232, "pw", ipmitool=str(fake))
    config = dataclasses.replace(config, timeout_s=0.5)
    transport = IpmiTransport(config)
    start = time.monotonic()
    with pytest.raises(DeviceTimeout, match="mc info"):
        transport.run(["mc", "info"])
    assert time.monotonic() - start < 5


def test_bad_options_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="cipher_suite"):
        IpmiTransport(_config(623, "pw", cipher_suite=0))
    with pytest.raises(ConfigError, match="retries"):
        IpmiTransport(_config(623, "pw", retries=0))
    with pytest.raises(ConfigError, match="interface"):
        IpmiTransport(_config(623, "pw", interface="open"))
    with pytest.raises(DeviceError, match="unknown ResetType 'Explode'"):
        IpmiBmc(_config(623, "pw")).reset("Explode")
    with pytest.raises(DeviceError, match="ResetType 'GracefulRestart' cannot be done with ipmitool chassis power"):
        IpmiBmc(_config(623, "pw")).reset("GracefulRestart")


# ---- against ipmi_sim -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IpmiSim]:
    server = start_ipmi_sim(tmp_path_factory.mktemp("ipmi_sim"))
    yield server
    server.stop()


@pytest.fixture
def bmc(sim: IpmiSim) -> Iterator[IpmiBmc]:
    sim.set_power(True)
    driver = IpmiBmc(_config(sim.port, sim.password))
    yield driver
    driver.close()


def test_capabilities(bmc: IpmiBmc) -> None:
    assert isinstance(bmc, Device) and isinstance(bmc, Bmc) and isinstance(bmc, PowerMeter)


def test_identity_from_fru_and_mc_info(bmc: IpmiBmc, sim: IpmiSim) -> None:
    major, minor = sim.firmware
    assert bmc.identify() == Identity(
        vendor=sim.fru.manufacturer,
        model=sim.fru.product,
        serial=sim.fru.serial,
        firmware=f"{major}.{minor:02x}",
    )


def test_power_off_and_on_through_chassis_control(bmc: IpmiBmc, sim: IpmiSim) -> None:
    assert bmc.power_state() == "On"
    bmc.reset("ForceOff")
    assert not sim.power_on
    assert bmc.power_state() == "Off"
    bmc.reset("On")  # Redfish ResetType -> `chassis power on`
    assert sim.power_on
    assert bmc.power_state() == "On"


def test_power_cycle_comes_back_on(bmc: IpmiBmc, sim: IpmiSim) -> None:
    bmc.reset("PowerCycle")
    assert bmc.power_state() == "Off"  # ipmi_sim powers on again one second later
    deadline = time.monotonic() + 5
    while bmc.power_state() != "On":
        assert time.monotonic() < deadline, "host did not power on again after a cycle"
        time.sleep(0.2)
    assert sim.power_on


def test_sdr_temperatures(bmc: IpmiBmc, sim: IpmiSim) -> None:
    assert bmc.temperatures() == {s.name: float(s.celsius) for s in sim.sensors}


def test_sel_entries(bmc: IpmiBmc, sim: IpmiSim) -> None:
    entries = bmc.sel_entries()
    assert len(entries) == 1
    assert entries[0].severity == "Critical"
    assert f"Temperature {sim.sensors[0].name}: Upper Critical going high" in entries[0].message
    assert "Reading 96 > Threshold 95" in entries[0].message


def test_dcmi_unsupported_is_not_available(bmc: IpmiBmc) -> None:
    with pytest.raises(NotAvailable, match="does not support DCMI power reading") as info:
        bmc.power_watts()
    assert "dcmi power reading" in info.value.operation


def test_wrong_password_is_auth_error(sim: IpmiSim) -> None:
    driver = IpmiBmc(_config(sim.port, "not-the-password"))
    with pytest.raises(DeviceAuthError) as info:
        driver.power_state()
    assert info.value.address == f"127.0.0.1:{sim.port}"
    assert "chassis power status" in info.value.operation
    assert "not-the-password" not in str(info.value)


def test_unsupported_cipher_suite_is_auth_error_naming_it(sim: IpmiSim) -> None:
    driver = IpmiBmc(_config(sim.port, sim.password, cipher_suite=17))
    with pytest.raises(DeviceAuthError, match="cipher suite 17"):
        driver.power_state()


def test_unreachable_bmc_is_timeout() -> None:
    port = free_udp_port()  # nothing listens there: ipmitool gets no answer
    driver = IpmiBmc(_config(port, "pw"))
    start = time.monotonic()
    with pytest.raises(DeviceTimeout) as info:
        driver.power_state()
    assert info.value.address == f"127.0.0.1:{port}"
    assert time.monotonic() - start < 15


# ---- a BMC without FRU 0, without SDRs and without DCMI ---------------------------------------


@pytest.fixture(scope="module")
def bare_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IpmiSim]:
    server = start_ipmi_sim(tmp_path_factory.mktemp("ipmi_sim_bare"), with_fru=False, sensors=[], sel=False)
    yield server
    server.stop()


def test_without_fru_identity_comes_from_mc_info(bare_sim: IpmiSim) -> None:
    assert bare_sim.fru is None
    driver = IpmiBmc(_config(bare_sim.port, bare_sim.password))
    try:
        identity = driver.identify()
        major, minor = bare_sim.firmware
        assert identity.firmware == f"{major}.{minor:02x}"
        assert identity.vendor and not identity.vendor.startswith("Unknown")  # mc info's Manufacturer Name
        assert (identity.model, identity.serial) == ("", "")  # ipmitool has no name for the product id
        assert driver.power_state() == "On"  # each part stands alone
        assert driver.temperatures() == {}  # no SDR: no temperature sensor, not an error
        with pytest.raises(NotAvailable, match="DCMI"):
            driver.power_watts()
    finally:
        driver.close()


def test_probe_of_a_bmc_without_fru_sdr_and_dcmi(bare_sim: IpmiSim, tmp_path: Path, capsys) -> None:
    (tmp_path / "bmc-password").write_text(bare_sim.password + "\n")
    rack = {
        "rack": {"name": "ipmi-sim-rack"},
        "credentials": {"bmc": {"username": bare_sim.user, "password": {"file": "bmc-password"}}},
        "devices": {
            "bmc-bare": {
                "kind": "bmc", "driver": "ipmi", "host": "127.0.0.1", "port": bare_sim.port, "credentials": "bmc",
                "timeout_s": 5, "options": {"cipher_suite": 3, "retries": 1, "retransmit_s": 1},
            }
        },
    }  # fmt: skip
    path = tmp_path / "rack.yaml"
    path.write_text(yaml.safe_dump(rack, sort_keys=False))
    assert probe_main(["--rack", str(path), "--json"]) == 0
    (device,) = json.loads(capsys.readouterr().out)
    assert device["status"] == "answered" and device["errors"] == [], device
    assert device["identity"]["firmware"] == "2.15" and device["identity"]["vendor"]
    assert device["readings"]["power_state"] == {"state": "On"}
    assert device["readings"]["temperatures"]["sensors"] == 0
    assert device["steps"]["power"] == "not_available" and "DCMI" in device["not_available"]["power"]
    assert probe_main(["--rack", str(path)]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("bmc-bare "))
    assert "host On" in row and "temperatures: not available on this device" in row
