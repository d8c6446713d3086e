"""Benchmark: one poll of a Modbus CDU (loops, pumps, filters, reservoirs, leak detectors) through
the generic register map, against pymodbus's own TCP server on 127.0.0.1.

Prints the read requests one poll sends and its median wall time, with neighbouring registers
read together (the map's defaults: read_gap 4, max_read 125) and one request per point
(read_gap 0, max_read 1: what the driver did before). On loopback a request costs well under a
millisecond; through a facility gateway it costs the device's turnaround, so the request count
is the figure that carries over to a real CDU. Not a test.

    .venv/bin/python bench/bench_modbus.py [--polls 50]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.poll_timing import poll_cost
from rackval.drivers.config import DeviceConfig
from rackval.drivers.modbus.modbus_device import ModbusCdu
from rackval.drivers.modbus.register_map import load_register_map
from tests.peers.test_modbus_pymodbus import CDU_VALUES, GENERIC
from tests.support.modbus_peer import PymodbusServer, words_for


def poll(cdu: ModbusCdu) -> None:
    cdu.loops(), cdu.pumps(), cdu.filters(), cdu.reservoirs(), cdu.leak_detectors()


def measure(host: str, port: int, read_gap: int, max_read: int, polls: int) -> tuple[int, float]:
    config = DeviceConfig(name="cdu-modbus", kind="cdu", driver="modbus-cdu", host=host, port=port,
                          options={"register_map": str(GENERIC)}, timeout_s=3.0)  # fmt: skip
    cdu = ModbusCdu(config)
    object.__setattr__(cdu.map, "read_gap", read_gap)  # the map's own limits, as a file would give them
    object.__setattr__(cdu.map, "max_read", max_read)
    return poll_cost(cdu, "read", poll, polls)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--polls", type=int, default=50)
    args = parser.parse_args(argv)
    server = PymodbusServer(words_for(load_register_map(GENERIC), CDU_VALUES))
    try:
        print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        together = measure(server.host, server.port, 4, 125, args.polls)
        alone = measure(server.host, server.port, 0, 1, args.polls)
    finally:
        server.stop()
    for label, (requests, median) in (("neighbours together (read_gap 4)", together),
                                      ("one request per point (before)", alone)):  # fmt: skip
        print(f"{label:34s} {requests:3d} requests per poll, median {median * 1e3:6.1f} ms per poll (loopback)")
    print(f"ratio: {together[0] / alone[0]:.2f}x the requests, {together[1] / alone[1]:.2f}x the time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
