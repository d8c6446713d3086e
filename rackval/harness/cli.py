"""The ``rackval`` command: ``sim`` runs a simulated rack, ``probe`` contacts every device of a rack
file, ``runs`` lists the stored runs, ``report`` re-renders a stored run, ``export`` writes a run as
CSV/Parquet, ``compare`` sets a candidate against a baseline and ``trend`` follows one measurement
across runs. The read commands never create a store (``cliutil.open_results``)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from rackval.core.errors import ConfigError
from rackval.harness.cliutil import add_results_option, default_out_dir, open_results, resolve_run


def _cmd_sim(args: argparse.Namespace) -> int:
    from rackval.sim.fault_file import load_faults
    from rackval.sim.model import RackModel
    from rackval.sim.rack import SimulatedRack
    from rackval.sim.reference import sim_design

    design = sim_design(args.params, nodes=args.nodes, seed=args.seed)
    size, params = design.size, design.params
    # checked against a model of this very rack first: a bad file is refused naming file, line and field
    faults = load_faults(Path(args.faults), rack=RackModel(size, params=params)) if args.faults else []
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if args.exit_with_parent:
        # The parent holds the other end of our stdin; the kernel closes it however the parent
        # ends (SIGKILL included), and end-of-file stops this rack, which removes its secrets.
        threading.Thread(target=lambda: (sys.stdin.buffer.read(), stop.set()), daemon=True).start()
    rack = SimulatedRack.start(size, Path(args.state_dir), params=params, time_scale=args.time_scale, faults=faults,
                               design=design)  # fmt: skip
    try:
        print(
            f"rackval sim: {design.design_revision} serial {design.rack_serial} (seed {size.seed}), {size.nodes} nodes,"
            f" time scale {args.time_scale}; rack file {rack.rack_file}",
            flush=True,
        )
        if rack.control is not None:
            print(f"  {'control':<14} {rack.control.url} (clock and faults; token in secrets/)", flush=True)
        for name, endpoint in rack.endpoints().items():
            print(f"  {name:<14} {endpoint}", flush=True)
        print("running until interrupted (Ctrl-C)", flush=True)
        stop.wait()
    finally:
        rack.stop()
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from rackval.harness.report.html import render_report

    store = open_results(args.results)
    try:
        run_id = resolve_run(store, args.run)
        if run_id is None:
            print(f"rackval report: no run {args.run!r} in {store.path}", file=sys.stderr)
            return 2
        out = Path(args.out) if args.out else default_out_dir(args.results, run_id)
        path = render_report(store, run_id, out)
        print(path)
    finally:
        store.close()
    return 0


def _version() -> str:
    """The installed distribution's version (pyproject.toml), or a word saying it is not installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("rackval")
    except PackageNotFoundError:
        return "(not installed: run from a source tree)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rackval", description=__doc__)
    parser.add_argument("--version", action="version", version=f"rackval {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    sim = sub.add_parser("sim", help="run a simulated rack on 127.0.0.1 until interrupted")
    sim.add_argument("--nodes", type=int, help="compute nodes (default: the 32-node reference rack)")
    sim.add_argument(
        "--seed", type=int, default=None, help="seed for serials and meter noise (default: the params file's, or 1)"
    )
    sim.add_argument("--params", help="model parameters (YAML, like racks/sim-model-params.yaml)")
    sim.add_argument("--faults", help="faults to inject (YAML list; each may start at a virtual time)")
    sim.add_argument(
        "--time-scale", type=float, default=1.0, help="virtual seconds per real second (0 = only when advanced)"
    )
    sim.add_argument("--state-dir", default="sim-rack", help="where to write rack.yaml and its secrets")
    sim.add_argument(
        "--exit-with-parent", action="store_true", help="stop when standard input closes (the parent process ended)"
    )
    sim.set_defaults(func=_cmd_sim)
    rep = sub.add_parser("report", help="render the HTML report of a stored run")
    rep.add_argument("run", help="run id, or 'latest'")
    add_results_option(rep)
    rep.add_argument("--out", help="output directory (default: beside the store, named by run id)")
    rep.set_defaults(func=_cmd_report)
    # Subcommands that live beside what they do register themselves.
    from rackval.harness import probe, runlist
    from rackval.harness.analysis import compare, trend
    from rackval.harness.report import exports

    probe.add_parser(sub)
    runlist.add_parser(sub)
    exports.add_parser(sub)
    compare.add_parser(sub)
    trend.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"rackval: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
