"""pymodbus's own Modbus TCP server as a third-party peer for the Modbus drivers' tests.

The server runs in a subprocess (``python -c`` with pymodbus's ``StartTcpServer``) on a free
loopback port, holding the registers and bits a test gives it in sparse data blocks: an address
it was not given answers exception 2 (Illegal Data Address), as a device without that register
does. The process is bounded (a wall-clock limit) and stopped by its PID. ``words_for`` lays
out a register map's fields with the map's own encoding (``register_map.to_words``).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from typing import Any

from rackval.drivers.modbus.register_map import RegisterMap, to_words

_SERVER = """
import json, signal, sys, warnings
warnings.simplefilter("ignore")
signal.alarm(int(sys.argv[3]))
from pymodbus.datastore import ModbusDeviceContext, ModbusServerContext, ModbusSparseDataBlock
from pymodbus.server import StartTcpServer
spec = json.loads(sys.argv[2])
def block(name):
    return ModbusSparseDataBlock({int(k): v for k, v in spec.get(name, {}).items()} or {65535: 0})
device = ModbusDeviceContext(di=block("discrete"), co=block("coil"), hr=block("holding"), ir=block("input"))
StartTcpServer(context=ModbusServerContext(devices=device, single=True), address=("127.0.0.1", int(sys.argv[1])))
"""

Tables = dict[str, dict[int, int]]


def words_for(m: RegisterMap, values: Mapping[str, Any]) -> Tables:
    """{table: {address: raw}} holding each field of ``values`` as ``m`` encodes it."""
    tables: Tables = {"holding": {}, "input": {}, "coil": {}, "discrete": {}}
    for field, value in values.items():
        point = m.find(field)
        assert point is not None, f"the map has no {field}"
        for i, word in enumerate(to_words(point, m.order(point), value)):
            tables[point.table][m.address(point) + i] = word
    return tables


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PymodbusServer:
    """pymodbus's TCP server holding ``tables`` on 127.0.0.1:<free port> until ``stop()``."""

    def __init__(self, tables: Tables, *, limit_s: int = 120) -> None:
        self.host = "127.0.0.1"
        spec = json.dumps({t: {str(a): v for a, v in regs.items()} for t, regs in tables.items()})
        for _ in range(5):  # the free port may be taken between finding and binding it
            self.port = _free_port()
            self._proc = subprocess.Popen(
                [sys.executable, "-c", _SERVER, str(self.port), spec, str(limit_s)],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
            )  # fmt: skip
            if self._wait_listening(10.0):
                return
            self.stop()
        raise RuntimeError("pymodbus server did not start")

    def _wait_listening(self, within_s: float) -> bool:
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                return False
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return True
            except OSError:
                time.sleep(0.05)
        return False

    def stop(self) -> None:
        if self._proc.poll() is None:
            os.killpg(self._proc.pid, signal.SIGTERM)
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self._proc.pid, signal.SIGKILL)
                self._proc.wait(5)
        if self._proc.stderr is not None:
            self._proc.stderr.close()
