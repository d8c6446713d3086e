"""Modbus TCP: one connection per device through pymodbus, every request within the deadline.

Facility equipment answers Modbus slowly, drops connections, and says "I do not have this" with
an exception reply rather than an empty value. This transport owns those parts so the Modbus
drivers only deal with register maps: it connects on first use (and again after a failure),
bounds every request, with the connect it needs, by the device's ``timeout_s`` (pymodbus's own
socket timeout per read, and the watchdog, ``rackval.drivers.transport.watchdog``, which shuts
the socket down when a peer trickles or never answers), and turns every outcome into a
``DeviceError`` naming device, address and the operation (table, address, count, unit id):

* exception 1 *Illegal Function* or 2 *Illegal Data Address*: ``NotAvailable`` (the device
  lacks that table or register; the caller reads its other points);
* exception 3 *Illegal Data Value*: ``DeviceProtocolError``; any other exception (4 *Server
  Device Failure*, 6 *Server Device Busy*, 10 / 11 gateway): ``DeviceError`` with its name;
* no answer within ``timeout_s``: ``DeviceTimeout``; connection refused: ``DeviceError``;
* an answer with fewer registers or bits than asked: ``DeviceProtocolError``.

pymodbus logs what goes wrong ("Connection to ... failed") on its own loggers; with nothing
configured, Python would print those on the terminal beside our one-line error, so the
``pymodbus`` logger gets a NullHandler here (an application that configures logging still sees
them).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from pymodbus.client import ModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException

from rackval.core.errors import DeviceError, DeviceProtocolError, DeviceTimeout, NotAvailable
from rackval.drivers.config import DeviceConfig
from rackval.drivers.transport.watchdog import WATCHDOG, abort_socket

EXCEPTIONS = {
    1: "Illegal Function",
    2: "Illegal Data Address",
    3: "Illegal Data Value",
    4: "Server Device Failure",
    5: "Acknowledge",
    6: "Server Device Busy",
    8: "Memory Parity Error",
    10: "Gateway Path Unavailable",
    11: "Gateway Target Device Failed To Respond",
}
_ABSENT = (1, 2)
_READ = {"holding": "read_holding_registers", "input": "read_input_registers", "coil": "read_coils",
         "discrete": "read_discrete_inputs"}  # fmt: skip
DEFAULT_PORT = 502
logging.getLogger("pymodbus").addHandler(logging.NullHandler())


class ModbusTransport:
    """Requests to one Modbus TCP device (unit ``unit_id``), one at a time (an internal lock)."""

    def __init__(self, config: DeviceConfig, unit_id: int) -> None:
        self.name = config.name
        self._config = config
        self._unit = unit_id
        self._port = config.port if config.port is not None else DEFAULT_PORT
        self._client: ModbusTcpClient | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ModbusTransport({self.name!r}, {self._config.address!r}, unit {self._unit})"

    def _err(self, cls: type[DeviceError], operation: str, detail: str) -> DeviceError:
        return cls(self._config.name, self._config.address, operation, detail)

    def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def _call(self, operation: str, method: str, *args: Any, **kwargs: Any) -> Any:
        """One request within ``timeout_s``; the response, or a DeviceError (see the module docstring)."""
        timeout = self._config.timeout_s
        with self._lock:
            start = time.monotonic()
            if self._client is None:
                self._client = ModbusTcpClient(self._config.host, port=self._port, timeout=timeout, retries=0)
            client = self._client
            guard = WATCHDOG.schedule(timeout, lambda: abort_socket(client.socket))
            try:
                if not client.connected and not client.connect():
                    raise self._err(DeviceError, operation, f"cannot connect to port {self._port}")
                response = getattr(client, method)(*args, device_id=self._unit, **kwargs)
            except (ModbusIOException, ConnectionException, OSError) as exc:
                self._drop()
                if guard.fired or time.monotonic() - start >= timeout or isinstance(exc, ModbusIOException):
                    raise self._err(DeviceTimeout, operation, f"no answer within {timeout:g} s") from None
                raise self._err(DeviceError, operation, f"connection failed ({type(exc).__name__})") from None
            except ModbusException as exc:
                self._drop()
                raise self._err(DeviceProtocolError, operation, f"{type(exc).__name__}: {exc}"[:200]) from None
            finally:
                guard.cancel()
            if guard.fired:
                self._drop()
                raise self._err(DeviceTimeout, operation, f"no answer within {timeout:g} s")
        if response.isError():
            code = getattr(response, "exception_code", None)
            what = f"Modbus exception {code} ({EXCEPTIONS.get(code, 'unknown')})"
            if code in _ABSENT:
                raise self._err(NotAvailable, operation, f"the device does not have it: {what}")
            raise self._err(DeviceProtocolError if code == 3 else DeviceError, operation, what)
        return response

    def read(self, table: str, address: int, count: int) -> list[int]:
        """``count`` registers (or bits, as 0 / 1) of ``table`` from ``address``."""
        what = "register" if table in ("holding", "input") else "bit"
        op = f"read {table} {what} {address} (x{count}, unit {self._unit})"
        response = self._call(op, _READ[table], address, count=count)
        values = response.registers if table in ("holding", "input") else [1 if b else 0 for b in response.bits]
        if len(values) < count:
            raise self._err(DeviceProtocolError, op, f"answered {len(values)} values, asked for {count}")
        return [int(v) for v in values[:count]]

    def write(self, table: str, address: int, value: list[int] | bool) -> None:
        """A coil (``value`` a bool: FC 5) or holding registers (one: FC 6, more: FC 16)."""
        op = f"write {table} {address} = {value!r} (unit {self._unit})"
        if table == "coil" and isinstance(value, bool):
            self._call(op, "write_coil", address, value)
        elif table == "holding" and isinstance(value, list) and len(value) == 1:
            self._call(op, "write_register", address, value[0])
        elif table == "holding" and isinstance(value, list):
            self._call(op, "write_registers", address, value)
        else:
            raise self._err(DeviceError, op, f"a {table} cannot be written")

    def close(self) -> None:
        with self._lock:
            self._drop()
