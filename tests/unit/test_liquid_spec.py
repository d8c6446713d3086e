"""The liquid design's spec: picked for its params file, same keys as the reference, a coolant that
turns flow and temperature rise into heat, and one-line errors when the coolant is missing or wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from rackval.core.errors import ConfigError
from rackval.harness.liquid import coolant_heat_w
from rackval.harness.plugin.run import default_sim_spec
from rackval.harness.spec import load_spec
from rackval.harness.units import convert

REPO = Path(__file__).resolve().parents[2]


def test_each_design_is_judged_by_its_own_spec() -> None:
    assert default_sim_spec(REPO, "racks/sim-liquid-params.yaml") == REPO / "specs" / "sim-liquid.yaml"
    assert default_sim_spec(REPO, REPO / "racks" / "sim-liquid-params.yaml") == REPO / "specs" / "sim-liquid.yaml"
    # a design without a spec of its own (or no params at all): the reference
    assert default_sim_spec(REPO, "racks/sim-model-params.yaml") == REPO / "specs" / "sim-reference.yaml"
    assert default_sim_spec(REPO, None) == REPO / "specs" / "sim-reference.yaml"


def test_liquid_and_reference_specs_have_the_same_keys() -> None:
    liquid, reference = load_spec(REPO / "specs" / "sim-liquid.yaml"), load_spec(REPO / "specs" / "sim-reference.yaml")
    assert set(liquid.data.requirements) == set(reference.data.requirements)
    assert liquid.coolant().name == "PG25"


def test_coolant_heat_is_rho_q_cp_dt() -> None:
    coolant = load_spec(REPO / "specs" / "sim-liquid.yaml").coolant()
    # 8 L/min of PG25 (1020 kg/m3, 3900 J/(kg K)) warming by 10 K carries 5.30 kW
    assert coolant_heat_w(coolant, 8.0, 30.0, 40.0) == pytest.approx(1020 * 8 / 60_000 * 3900 * 10)
    assert coolant_heat_w(coolant, 0.0, 30.0, 40.0) == 0.0


def test_a_spec_without_coolant_says_so() -> None:
    with pytest.raises(ConfigError, match=r"sim-reference.yaml: no 'coolant' section"):
        load_spec(REPO / "specs" / "sim-reference.yaml").coolant()


def test_a_wrong_coolant_is_one_line(tmp_path: Path) -> None:
    text = (REPO / "specs" / "sim-liquid.yaml").read_text().replace("density_kg_m3: 1020", "density_kg_m3: 0")
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_spec(bad)
    line = text.splitlines().index("  density_kg_m3: 0") + 1
    assert f"bad.yaml:{line}: coolant.density_kg_m3: Input should be greater than 0" in str(exc.value)


def test_flow_and_pressure_units_convert() -> None:
    assert convert(6.0, "m3/h", "L/min") == pytest.approx(100.0)
    assert convert(1.5, "bar", "kPa") == pytest.approx(150.0)
    with pytest.raises(ConfigError, match="cannot compare L/min"):
        convert(1.0, "L/min", "kPa")
