"""Node classes: the spec says what each class of node must report, the rack file says which class
each node is; a class that does not exist, or one the spec never defined, is one line naming the
rack file's line."""

from __future__ import annotations

from pathlib import Path

import pytest

from rackval.core.errors import ConfigError
from rackval.harness.inventory import load_inventory
from rackval.harness.spec import IMPLICIT_NODE_EXPECT, load_spec

REQUIREMENTS = """\
spec: {name: demo, version: "1"}
requirements:
  inlet_temperature: {max: 35, unit: degC}
  gpu_temperature: {max: 85, unit: degC}
"""
CLASSES = """\
node_classes:
  gpu-compute: {expect: [inlet_temperature, gpu_temperature]}
  management:
    description: head node, no GPUs
    expect: [inlet_temperature]
default_node_class: gpu-compute
"""

RACK = """\
rack: {name: lab}
devices:
  bmc-n1: {kind: bmc, driver: redfish, host: 10.0.1.1}
  bmc-mgmt: {kind: bmc, driver: redfish, host: 10.0.1.2}
  bmc-spare: {kind: bmc, driver: redfish, host: 10.0.1.3}
nodes:
  n1:
    bmc: bmc-n1
  mgmt:
    class: CLASS
    bmc: bmc-mgmt
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_classes_give_each_node_its_expectations(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, "spec.yaml", REQUIREMENTS + CLASSES))
    inventory = load_inventory(write(tmp_path, "rack.yaml", RACK.replace("CLASS", "management")))
    assert inventory.data.nodes["mgmt"].node_class == "management"
    spec.check_rack(inventory)
    mgmt = spec.expectation(inventory, "bmc-mgmt")  # a BMC finds its node
    assert (mgmt.node, mgmt.node_class, mgmt.expect) == ("mgmt", "management", {"inlet_temperature"})
    assert mgmt.expects("inlet_temperature") and not mgmt.expects("gpu_temperature")
    assert mgmt.describe() == "node mgmt (class 'management')"
    n1 = spec.expectation(inventory, "n1")  # no class: the default
    assert n1.node_class == "gpu-compute" and n1.expects("gpu_temperature")
    spare = spec.expectation(inventory, "bmc-spare")  # in no node: the default, named by the device
    assert (spare.node, spare.node_class) == ("bmc-spare", "gpu-compute")


def test_spec_without_classes_expects_inlet_and_gpu_of_every_node(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, "spec.yaml", REQUIREMENTS))
    rack = RACK.replace("    class: CLASS\n", "")
    inventory = load_inventory(write(tmp_path, "rack.yaml", rack))
    spec.check_rack(inventory)
    for device in ("bmc-n1", "bmc-mgmt", "bmc-spare"):
        expected = spec.expectation(inventory, device)
        assert expected.expect == set(IMPLICIT_NODE_EXPECT) and expected.node_class == ""
    assert spec.expectation(inventory, "bmc-mgmt").describe() == "node mgmt"


def test_unknown_class_names_rack_line_and_the_specs_classes(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, "spec.yaml", REQUIREMENTS + CLASSES))
    inventory = load_inventory(write(tmp_path, "rack.yaml", RACK.replace("CLASS", "managment")))
    with pytest.raises(ConfigError) as err:
        spec.check_rack(inventory)
    message = str(err.value)
    assert "rack.yaml:10: nodes.mgmt.class: unknown node class 'managment'" in message, message
    assert "did you mean 'management'?" in message and "has: gpu-compute, management" in message
    assert "Traceback" not in message and message.count("\n") == 1  # header + the one problem line
    with pytest.raises(ConfigError, match=r"nodes\.mgmt\.class: unknown node class 'managment'"):
        spec.expectation(inventory, "bmc-mgmt")  # a plan asking meets the same error


def test_class_in_rack_file_but_spec_has_no_classes(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, "spec.yaml", REQUIREMENTS))
    inventory = load_inventory(write(tmp_path, "rack.yaml", RACK.replace("CLASS", "management")))
    with pytest.raises(ConfigError) as err:
        spec.check_rack(inventory)
    message = str(err.value)
    assert "rack.yaml:10: nodes.mgmt.class: node class 'management', but the spec" in message, message
    assert "defines no node_classes (without them every node expects inlet_temperature, gpu_temperature)" in message


@pytest.mark.parametrize(
    ("classes", "needle"),
    [
        (CLASSES.replace("default_node_class: gpu-compute\n", ""),
         "spec.yaml:5: node_classes: node_classes needs a default_node_class"),
        (CLASSES.replace("default_node_class: gpu-compute", "default_node_class: gpu-compte"),
         "spec.yaml:10: default_node_class: unknown node class 'gpu-compte' (did you mean 'gpu-compute'?"),
        (CLASSES.replace("expect: [inlet_temperature]", "expect: [inlet_temprature]"),
         "spec.yaml:9: node_classes.management.expect.0: no requirement 'inlet_temprature' (did you mean"
         " 'inlet_temperature'?"),
        (CLASSES.replace("    expect: [inlet_temperature]", "    expects: [inlet_temperature]"),
         "spec.yaml:9: node_classes.management.expects: unknown field"),
    ],
)  # fmt: skip
def test_bad_node_classes_name_spec_line_and_field(tmp_path: Path, classes: str, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_spec(write(tmp_path, "spec.yaml", REQUIREMENTS + classes))
    assert needle in str(err.value), str(err.value)


def test_default_class_without_classes_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"spec.yaml:5: default_node_class: unknown node class 'gpu-compute' \(the"
                       r" spec has no node_classes\)"):  # fmt: skip
        load_spec(write(tmp_path, "spec.yaml", REQUIREMENTS + "default_node_class: gpu-compute\n"))


def test_empty_class_name_in_rack_file_names_the_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"rack.yaml:10: nodes.mgmt.class: String should have at least 1"):
        load_inventory(write(tmp_path, "rack.yaml", RACK.replace("CLASS", '""')))


def test_reference_spec_classes_every_simulated_node_as_gpu_compute() -> None:
    spec = load_spec(Path(__file__).resolve().parents[2] / "specs" / "sim-reference.yaml")
    assert spec.data.default_node_class == "gpu-compute"
    assert set(spec.data.node_classes["gpu-compute"].expect) == set(IMPLICIT_NODE_EXPECT)
