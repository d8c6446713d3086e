"""Rack files: good ones load with secrets resolved; bad ones stop with file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from rackval.core.errors import ConfigError
from rackval.harness.inventory import load_inventory

GOOD = """\
rack:
  name: lab-rack-7
  serial: R7-0001
credentials:
  bmc:
    username: admin
    password: {env: TEST_BMC_PASSWORD}
  pdu:
    community: {file: secrets/community}
devices:
  pdu-a:
    kind: pdu
    driver: apc-rpdu2
    host: 10.0.0.10
    credentials: pdu
    feeds: [A]
  bmc-n1:
    kind: bmc
    driver: redfish
    host: 10.0.1.1
    credentials: bmc
nodes:
  n1:
    bmc: bmc-n1
    psus:
      PSU1: {pdu: pdu-a, outlet: 1}
"""


BMC_HOST = "    host: 10.0.1.1\n"


def write(tmp_path: Path, text: str, name: str = "rack.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    (tmp_path / "secrets").mkdir(exist_ok=True)
    (tmp_path / "secrets" / "community").write_text("s3cret-community\n")
    return path


def test_good_rack_loads_and_resolves_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_BMC_PASSWORD", "pw-from-env")
    inv = load_inventory(write(tmp_path, GOOD))
    assert inv.meta.name == "lab-rack-7"
    assert inv.devices_of_kind("pdu") == ["pdu-a"]
    assert inv.configs["bmc-n1"].credentials.password.reveal() == "pw-from-env"
    assert inv.configs["pdu-a"].credentials.community.reveal() == "s3cret-community"
    # secrets never print
    assert "pw-from-env" not in repr(inv.configs["bmc-n1"])
    assert "s3cret" not in repr(inv.configs["pdu-a"].credentials)


@pytest.mark.parametrize(
    ("old", "new", "line", "needle"),
    [
        ("    host: 10.0.0.10\n", "", 11, "devices.pdu-a.host: missing required field"),
        ("    host: 10.0.1.1\n", "    host: 10.0.1.1\n    port: eighty\n", 21, "devices.bmc-n1.port"),
        ("    kind: pdu\n", "    kind: toaster\n", 12, "devices.pdu-a.kind"),
        ("    driver: redfish\n", "    driver: redfsh\n", 19, "unknown driver 'redfsh'"),
        ("    driver: apc-rpdu2\n", "    driver: redfish\n", 13, "is for kind 'bmc'"),
        ("    credentials: pdu\n", "    credentails: pdu\n", 15, "unknown field"),
        ("      PSU1: {pdu: pdu-a, outlet: 1}", "      PSU1: {pdu: pdu-z, outlet: 1}", 26, "no device named 'pdu-z'"),
        ("    bmc: bmc-n1\n", "    bmc: pdu-a\n", 24, "is a pdu, not a bmc"),
        ("    password: {env: TEST_BMC_PASSWORD}", "    password: plaintext", 7, "credentials.bmc.password"),
        ("    driver: redfish\n", "    driver: redfsh\n", 19, "(did you mean 'redfish'? available:"),
        # driver options are typed: checked at load, before any device is touched
        (
            BMC_HOST,
            BMC_HOST + "    options: {schem: http}\n",
            21,
            "devices.bmc-n1.options.schem: unknown option (did you mean 'scheme'?)",
        ),
        (
            BMC_HOST,
            BMC_HOST + "    options: {scheme: gopher}\n",
            21,
            "devices.bmc-n1.options.scheme: must be 'https' or 'http', got 'gopher'",
        ),
        (BMC_HOST, BMC_HOST + "    options:\n      verify: 5\n", 22, "bmc-n1.options.verify: must be true or false"),
        (BMC_HOST, BMC_HOST + "    options: {retries_503: true}\n", 21, "retries_503: must be an integer, got True"),
        ("    feeds: [A]\n", "    feeds: [A]\n    options: {device_index: x}\n", 17, "device_index: must be an"),
        # a boolean is not a port, an empty host is not an address, NaN is not a timeout
        (BMC_HOST, BMC_HOST + "    port: true\n", 21, "devices.bmc-n1.port: Input should be a valid integer"),
        (BMC_HOST, '    host: ""\n', 20, "devices.bmc-n1.host: String should have at least 1 character"),
        (BMC_HOST, BMC_HOST + "    timeout_s: .nan\n", 21, "devices.bmc-n1.timeout_s: Input should be a finite number"),
        # credential vocabularies: a typo is caught at load, with a did-you-mean
        (
            "    community: {file: secrets/community}\n",
            "    community: {file: secrets/community}\n    snmp_version: '3'\n    auth_protocol: SHA265\n",
            11,
            "credentials.pdu.auth_protocol: Value error, unknown protocol 'SHA265' (did you mean 'SHA256'?",
        ),
        (
            "    community: {file: secrets/community}\n",
            "    community: {file: secrets/community}\n    priv_protocol: aes-129\n",
            10,
            "credentials.pdu.priv_protocol: Value error, unknown protocol 'aes-129' (did you mean",
        ),
        # a device given twice: the second would silently replace the first
        (
            "  bmc-n1:\n",
            "  pdu-a:\n    kind: pdu\n    driver: apc-rpdu2\n    host: 10.0.0.11\n  bmc-n1:\n",
            17,
            "'pdu-a' is given twice (first on line 11)",
        ),
    ],
)
def test_bad_rack_names_file_line_and_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, old: str, new: str, line: int, needle: str
) -> None:
    monkeypatch.setenv("TEST_BMC_PASSWORD", "pw")
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new))
    with pytest.raises(ConfigError) as err:
        load_inventory(path)
    message = str(err.value)
    assert f"{path}:{line}:" in message, message
    assert needle in message, message


def test_missing_secret_env_names_variable_and_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEST_BMC_PASSWORD", raising=False)
    path = write(tmp_path, GOOD)
    with pytest.raises(ConfigError, match=r"rack.yaml:7: credentials.bmc.password: environment variable TEST_BMC"):
        load_inventory(path)


def test_duplicate_outlet_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_BMC_PASSWORD", "pw")
    text = GOOD + "      PSU2: {pdu: pdu-a, outlet: 1}\n"
    with pytest.raises(ConfigError, match="outlet 1 is already wired to n1 PSU1"):
        load_inventory(write(tmp_path, text))


def test_not_yaml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"rack.yaml:3: rack file is not valid YAML"):
        load_inventory(write(tmp_path, "rack:\n  name: [unclosed\n"))
    with pytest.raises(ConfigError, match="cannot read"):
        load_inventory(tmp_path / "nope.yaml")


def test_example_site_rack_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RACK7_PDU_AUTH_KEY", "RACK7_PDU_PRIV_KEY", "RACK7_BMC_PASSWORD", "RACK7_SWITCH_PASSWORD"):
        monkeypatch.setenv(name, "x")
    inv = load_inventory(Path(__file__).resolve().parents[2] / "racks" / "example-site.yaml")
    assert inv.devices_of_kind("bmc") == ["bmc-node01", "bmc-node02"]
    assert inv.configs["pdu-a"].credentials.snmp_version == "3"
    assert inv.configs["tor1"].options["known_hosts"].endswith("racks/known_hosts")


def test_feed_analyzers_cover_every_pdu_feed_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_BMC_PASSWORD", "pw")
    analyzer = "  an-{f}:\n    kind: analyzer\n    driver: yokogawa-wt\n    host: 10.0.0.{n}\n    feeds: [{f}]\n"
    text = GOOD.replace("nodes:\n", analyzer.format(f="A", n=31) + analyzer.format(f="B", n=32) + "nodes:\n")
    inv = load_inventory(write(tmp_path, text))
    assert inv.pdu_feeds() == ["A"]
    assert inv.feed_analyzers() == ["an-A"]  # an-B measures a feed no PDU is on: not part of the rack total
    bare = load_inventory(write(tmp_path, GOOD, "bare.yaml"))
    with pytest.raises(ConfigError, match=r"do not measure feeds \['A'\] exactly once"):
        bare.feed_analyzers()


def test_unknown_kind_lists_the_valid_ones(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_BMC_PASSWORD", "pw")
    path = write(tmp_path, GOOD.replace("    kind: pdu\n", "    kind: toaster\n"))
    with pytest.raises(ConfigError) as err:
        load_inventory(path)
    message = str(err.value)
    assert f"{path}:12: devices.pdu-a.kind: unknown kind 'toaster' (valid: pdu (power distribution unit)," in message
    for kind in ("switch", "bmc", "analyzer", "node"):
        assert f" {kind} (" in message, message


def test_paths_in_options_are_relative_to_the_rack_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A relative known_hosts names a file beside the rack file, wherever pytest is started from."""
    monkeypatch.setenv("TEST_BMC_PASSWORD", "pw")
    (tmp_path / "site").mkdir()
    switch = "  tor1:\n    kind: switch\n    driver: sonic\n    host: 10.0.2.1\n    options: {known_hosts: keys/kh}\n"
    rack = write(tmp_path / "site", GOOD.replace("nodes:\n", switch + "nodes:\n"))
    monkeypatch.chdir(tmp_path)
    options = load_inventory(Path("site") / "rack.yaml").configs["tor1"].options
    assert options["known_hosts"] == str(rack.parent / "keys" / "kh")


class PluginSwitchWithoutLldp:
    """A third-party driver that claims nothing: it cannot serve a switch."""


def test_plugin_driver_must_claim_what_its_kind_needs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rackval.drivers import registry

    plugin = registry.DriverEntry("acme-switch", None, f"{__name__}:PluginSwitchWithoutLldp")
    monkeypatch.setattr(registry, "available", lambda: {**registry.BUILTIN, "acme-switch": plugin})
    monkeypatch.setenv("TEST_BMC_PASSWORD", "pw")
    switch = "  tor1:\n    kind: switch\n    driver: acme-switch\n    host: 10.0.2.1\n"
    with pytest.raises(ConfigError, match=r"rack.yaml:\d+: devices.tor1.driver: driver 'acme-switch' .* does not "
                                          r"claim Device, NetSwitch, which a switch needs"):  # fmt: skip
        load_inventory(write(tmp_path, GOOD.replace("nodes:\n", switch + "nodes:\n")))


def test_cdu_and_shelf_devices_load_with_a_map_beside_the_rack_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kind cdu / power_shelf; a Modbus register map is relative to the rack file; a wrong option is one line."""
    monkeypatch.setenv("TEST_BMC_PASSWORD", "pw")
    (tmp_path / "site").mkdir()
    devices = (
        "  cdu-1:\n    kind: cdu\n    driver: modbus-cdu\n    host: 10.0.3.1\n"
        "    options: {register_map: maps/cdu.yaml, unit_id: 2}\n"
        "  shelf-a:\n    kind: power_shelf\n    driver: redfish-power-shelf\n    host: 10.0.3.2\n    credentials: bmc\n"
    )
    rack = write(tmp_path / "site", GOOD.replace("nodes:\n", devices + "nodes:\n"))
    monkeypatch.chdir(tmp_path)
    inv = load_inventory(Path("site") / "rack.yaml")
    assert inv.configs["cdu-1"].options["register_map"] == str(rack.parent / "maps" / "cdu.yaml")
    assert (inv.configs["cdu-1"].kind, inv.configs["shelf-a"].kind) == ("cdu", "power_shelf")
    wrong = write(tmp_path, GOOD.replace("nodes:\n", devices.replace("unit_id: 2", "unit_id: 300") + "nodes:\n"))
    with pytest.raises(ConfigError, match=r"rack.yaml:\d+: devices.cdu-1.options.unit_id: "):
        load_inventory(wrong)
    shelf_as_pdu = write(
        tmp_path, GOOD.replace("nodes:\n", devices.replace("kind: power_shelf", "kind: pdu") + "nodes:\n")
    )
    with pytest.raises(ConfigError, match=r"devices.shelf-a.driver: .*redfish-power-shelf"):
        load_inventory(shelf_as_pdu)
