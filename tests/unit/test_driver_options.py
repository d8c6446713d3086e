"""Driver options are typed: a misspelt option, a wrong type or a value out of range is one
clear error naming the device and the option, worded the same for every driver."""

from __future__ import annotations

from pathlib import Path

import pytest

from rackval.core.errors import ConfigError
from rackval.drivers import options as o
from rackval.drivers import registry
from rackval.drivers.options_doc import options_table


def test_defaults_and_typed_values():
    given = {"known_hosts": "kh", "cli_mode": "AUTO", "shell_setup": ["terminal length 0"]}
    ssh = o.parse_options(o.SshOptions, given, "tor1")
    assert ssh.cli_mode == "auto" and ssh.shell_setup == ("terminal length 0",)
    assert ssh.known_hosts == "kh" and ssh.trust_on_first_use is False
    assert o.parse_options(o.EosOptions, {"known_hosts": "kh"}, "leaf1").cli_mode == "auto"  # EOS refuses exec often
    assert o.parse_options(o.YokogawaOptions, {"element": "sigma"}, "wt").element == "SIGMA"
    assert o.parse_options(o.IpmiOptions, {"privilege": "operator"}, "bmc").privilege == "OPERATOR"
    assert o.parse_options(o.SnmpPduOptions, {"retries": 0}, "pdu").retries == 0  # transport option inherited


@pytest.mark.parametrize(
    ("model", "given", "expected"),
    [
        (o.SshOptions, {"known_host": "kh"}, "option 'known_host': unknown option (did you mean 'known_hosts'?)"),
        (o.SnmpPduOptions, {"max_oid_per_request": 8}, "did you mean 'max_oids_per_request'?"),
        (o.SshOptions, {"shell_width": True}, "option 'shell_width': must be an integer, got True"),
        (o.SnmpOptions, {"retries": "2"}, "option 'retries': must be an integer, got '2'"),
        (o.SshOptions, {"keepalive_s": float("nan")}, "option 'keepalive_s': must be a finite number, got nan"),
        (o.RedfishOptions, {"backoff_s": float("inf")}, "option 'backoff_s': must be a finite number"),
        (o.RedfishOptions, {"scheme": "gopher"}, "option 'scheme': must be 'https' or 'http', got 'gopher'"),
        (o.RedfishOptions, {"auth": "token"}, "option 'auth': must be 'session' or 'basic', got 'token'"),
        (o.SshOptions, {"cli_mode": "bash"}, "option 'cli_mode': must be 'exec', 'shell' or 'auto', got 'bash'"),
        (o.SshOptions, {"prompt_regex": "("}, "option 'prompt_regex': not a valid regular expression"),
        (o.SshOptions, {"shell_setup": "terminal length 0"}, "option 'shell_setup': must be a list"),
        (o.IpmiOptions, {"cipher_suite": 0}, "option 'cipher_suite': must be 3 or 17, got 0"),
        (o.IpmiOptions, {"retries": 0}, "option 'retries': must be greater than or equal to 1, got 0"),
        (o.YokogawaOptions, {"element": 9}, "option 'element': expected an element 1..7 or 'SIGMA', got 9"),
        (o.GenericScpiOptions, {"power_scale": 0}, "option 'power_scale': must be a non-zero number"),
        (o.LinuxNodeOptions, {"persistent_session": "yes"}, "option 'persistent_session': must be true or false"),
        (o.RedfishBmcOptions, {"power_source": "dcmi"}, "must be 'auto', 'environment' or 'legacy', got 'dcmi'"),
        (o.RedfishOptions, {"max_body_bytes": 10}, "option 'max_body_bytes': must be greater than or equal to 1024"),
        (o.ScpiOptions, {"max_reply_bytes": 0}, "option 'max_reply_bytes': must be greater than or equal to 1024"),
        (o.SshOptions, {"max_output_bytes": "1M"}, "option 'max_output_bytes': must be an integer, got '1M'"),
        (o.IpmiOptions, {"max_output_bytes": -1}, "option 'max_output_bytes': must be greater than or equal to 1024"),
        (o.SnmpOptions, {"walk_timeout_s": 0}, "option 'walk_timeout_s': must be greater than 0"),
        (o.SnmpOptions, {"max_walk_rows": 0}, "option 'max_walk_rows': must be greater than or equal to 1"),
        (o.SnmpOptions, {"max_walk_bytes": True}, "option 'max_walk_bytes': must be an integer, got True"),
    ],
)
def test_bad_option_is_one_line_naming_device_and_option(model, given, expected):
    with pytest.raises(ConfigError) as err:
        o.parse_options(model, given, "dev1")
    text = str(err.value)
    assert text.startswith("device dev1: option ") and expected in text
    assert "\n" not in text and "pydantic" not in text and "errors.pydantic.dev" not in text


def test_ssh_devices_need_known_hosts_unless_trusting_on_first_use():
    with pytest.raises(ConfigError, match=r"^device sw1: option 'known_hosts': required .* trust_on_first_use: true$"):
        o.parse_options(o.SshSwitchOptions, {}, "sw1")
    assert o.parse_options(o.SshSwitchOptions, {"trust_on_first_use": True}, "sw1").known_hosts is None


def test_option_errors_lists_every_problem_once_per_option():
    given = {"known_hosts": "kh", "known_host": 1, "shell_width": "x", "cli_mode": 3}
    problems = dict(o.option_errors(o.SshOptions, given))
    assert set(problems) == {("known_host",), ("shell_width",), ("cli_mode",)}
    assert o.option_errors(o.SshOptions, {"known_hosts": "kh"}) == []


def test_unknown_option_without_close_match_lists_the_known_ones():
    ((loc, text),) = o.option_errors(o.SnmpOptions, {"zzz": 1})
    known = "max_walk_bytes, max_walk_rows, retries, walk_timeout_s"
    assert loc == ("zzz",) and text.startswith(f"unknown option (known options: {known})")


@pytest.mark.parametrize("name", sorted(registry.BUILTIN))
def test_every_builtin_driver_declares_typed_options(name):
    """A built-in driver without a model would let a misspelt option through unseen."""
    model = registry.options_model(name)
    assert model is not None and issubclass(model, o.DriverOptions), name
    # every option has a default but the host keys an SSH device trusts, which the rack file decides,
    # and a Modbus device's register map (the driver knows nothing of the device without it)
    required = {"known_hosts": "kh", "register_map": "map.yaml"}
    minimal = {k: v for k, v in required.items() if k in model.model_fields}
    assert model.model_validate(minimal).model_dump() is not None


def test_rack_file_readme_lists_every_driver_and_option():
    """racks/README.md shows the generated table verbatim: documentation cannot drift from the loader."""
    readme = (Path(__file__).resolve().parents[2] / "racks" / "README.md").read_text()
    assert options_table() in readme
