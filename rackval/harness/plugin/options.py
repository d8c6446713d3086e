"""The rackval command-line options of pytest (``--rack``, ``--spec``, ``--sim-nodes``...)."""

from __future__ import annotations

import os

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("rackval", "rack validation")
    group.addoption("--rack", help="rack file (YAML); default: start the simulated rack on 127.0.0.1")
    group.addoption("--spec", help="design spec (YAML); default for the simulated rack: specs/sim-reference.yaml")
    group.addoption("--report-dir", default="reports", help="where run reports go (default: reports)")
    group.addoption(
        "--results", help="results store: SQLite file or postgresql:// URL (default: <report-dir>/results.sqlite)"
    )
    group.addoption(
        "--sim-nodes", type=int, default=None, help="nodes in the simulated rack (default: the 32-node reference rack)"
    )
    group.addoption("--sim-faults", help="fault list (YAML) to inject into the simulated rack at start")
    group.addoption(
        "--sim-params",
        help="the simulated rack's size, topology and physics (YAML, a copy of racks/sim-model-params.yaml)"
        " to rehearse plans on another design; --sim-nodes still overrides the node count",
    )
    group.addoption(
        "--allow-destructive",
        action="store_true",
        default=False,
        help="allow outlet switching, host resets, power caps, feed drops and GPU load even if the rack file"
        " does not (rack.allow_destructive); each action is logged and undone at the end of the run",
    )
    group.addoption(
        "--down-recheck-s", type=float, default=30.0,
        help="a device found down (not answering, or known to have lost power) fails later operations at once;"
        " it is re-checked in the background at most this often (wall seconds, default 30)",
    )  # fmt: skip
    group.addoption("--station", default=os.environ.get("RACKVAL_STATION", ""), help="test station name")
    group.addoption("--operator", default=os.environ.get("RACKVAL_OPERATOR", ""), help="who runs the tests")
    group.addoption(
        "--export", default="", metavar="FORMATS",
        help="also write the run's measurements and telemetry as csv and/or parquet (comma-separated) into its"
        " report directory; off by default (a soak's samples.csv is ~100 MB): `rackval export RUN` any time later",
    )  # fmt: skip
