"""Specs and measurements: limits with units, margins, marginal band, and clear errors."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from rackval.core.errors import ConfigError
from rackval.harness.measure import Limit, Measurement, Outcome
from rackval.harness.spec import load_spec

SPEC = """\
spec: {name: demo, version: "2"}
requirements:
  rack_power: {max: 6, unit: kW}
  voltage: {min: 220, max: 240, unit: V, marginal: 0.1}
"""


def test_spec_limits_convert_units(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC)
    spec = load_spec(path)
    m = Measurement.judged("p", 5990.0, "W", spec.limit("rack_power"))
    assert m.high == 6000.0 and m.unit == "W"
    assert m.outcome == Outcome.MARGINAL  # within 5 % (default) of the 6 kW limit
    assert m.margin == pytest.approx(10.0)
    assert Measurement.judged("p", 4000.0, "W", spec["rack_power"]).outcome == Outcome.PASS
    assert Measurement.judged("p", 6001.0, "W", spec["rack_power"]).outcome == Outcome.FAIL


def test_two_sided_limit_and_marginal_band(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC)
    volts = load_spec(path).limit("voltage")
    assert volts.judge(230.0) == (Outcome.PASS, 10.0)
    assert volts.judge(221.0)[0] == Outcome.MARGINAL  # within 10 % of the 20 V span
    assert volts.judge(219.0) == (Outcome.FAIL, -1.0)
    assert volts.judge(math.nan)[0] == Outcome.FAIL


def test_unknown_requirement_and_incompatible_unit(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC)
    spec = load_spec(path)
    with pytest.raises(ConfigError, match=r"no requirement 'rack_powr'.*rack_power"):
        spec.limit("rack_powr")
    with pytest.raises(ConfigError, match=r"cannot compare kW \(power\) with A \(current\)"):
        Measurement.judged("i", 3.0, "A", spec.limit("rack_power"))


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (SPEC.replace("unit: kW", "unit: kilowatts"), "spec.yaml:3: requirements.rack_power: Value error, unknown"),
        (SPEC.replace("{max: 6, unit: kW}", "{unit: kW}"), "spec.yaml:3: requirements.rack_power: Value error"),
        (SPEC.replace("min: 220", "min: 250"), "requirements.voltage: Value error, min 250.0 is above max"),
        (SPEC.replace('version: "2"', "versoin: 2"), "spec.versoin: unknown field"),
        # NaN compares false with everything: a NaN limit would pass every value
        (SPEC.replace("max: 6,", "max: .nan,"), "spec.yaml:3: requirements.rack_power.max: Input should be a finite"),
        (SPEC.replace("min: 220", "min: .NaN"), "spec.yaml:4: requirements.voltage.min: Input should be a finite"),
        (SPEC.replace("max: 6,", "max: .inf,"), "requirements.rack_power.max: Input should be a finite"),
        # a key given twice: the last one would silently win (a duplicate raised a limit to 9999 kW)
        (SPEC + "  rack_power: {max: 9999, unit: kW}\n", "spec.yaml:5: 'rack_power' is given twice (first on line 3)"),
        ("a:\n" + "".join("  " * i + f"- k{i}:\n" for i in range(1, 60)), "nested deeper than 32 levels"),
        ("x: " + "[" * 5000 + "]" * 5000 + "\n", "nested deeper than 32 levels"),
    ],
)
def test_bad_spec_names_line_and_field(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_spec(path)
    assert needle in str(err.value)


def test_margin_in_percent_of_the_limit() -> None:
    assert Limit(high=200.0, unit="kW").margin_pct(190.0) == pytest.approx(5.0)
    assert Limit(low=220.0, high=240.0, unit="V").margin_pct(238.0) == pytest.approx(10.0)  # of the 20 V span
    assert Limit(high=100.0, unit="degC").margin_pct(110.0) == pytest.approx(-10.0)  # outside: negative
    assert Limit(high=0.0, unit="count").margin_pct(0.0) is None


def test_limit_refuses_non_finite_bounds() -> None:
    nan, inf = math.nan, math.inf
    for bad in ({"high": nan}, {"low": nan}, {"low": 0, "high": inf}, {"high": 1, "marginal": nan}):
        with pytest.raises(ValueError, match="not a finite number"):
            Limit(**bad, unit="W", requirement="rack_power")


def test_measurement_description_names_device_value_and_limits() -> None:
    m = Measurement.judged("idle power", 6100, "W", Limit(high=6, unit="kW", requirement="rack_power"), device="an1")
    text = m.describe()
    assert text.startswith("FAIL: requirement rack_power: idle power on an1 = 6100 W")
    assert "6000 W" in text and "margin -100 W" in text
    info = Measurement.judged("x", 1, "W")
    assert info.outcome == Outcome.INFO and info.margin is None
