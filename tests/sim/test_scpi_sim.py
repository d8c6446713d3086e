"""SCPI slice: ScpiTransport and YokogawaWtAnalyzer against the simulated analyzer (a real TCP
SCPI server) and against tiny one-off socket peers that misbehave on purpose."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from rackval.core.errors import ConfigError, DeviceError, DeviceProtocolError, DeviceTimeout
from rackval.drivers.capabilities import Device, PowerAnalyzer, PowerMeter
from rackval.drivers.config import DeviceConfig
from rackval.drivers.instrument.yokogawa import YokogawaWtAnalyzer
from rackval.drivers.transport.scpi import ScpiTransport, resource_string
from rackval.sim.model import RackModel
from rackval.sim.scpi_server import ScpiServer, start_analyzer_scpi

# ---- fixtures and helpers ---------------------------------------------------------------------


@pytest.fixture
def model() -> RackModel:
    return RackModel()


@pytest.fixture
def server(model: RackModel) -> Iterator[ScpiServer]:
    srv = start_analyzer_scpi(model, "analyzer")
    yield srv
    srv.stop()


def make_config(host: str, port: int | None, *, timeout_s: float = 2.0, **options: object) -> DeviceConfig:
    return DeviceConfig(
        name="wt-feed", kind="analyzer", driver="yokogawa_wt", host=host, port=port,
        options=options, timeout_s=timeout_s,
    )  # fmt: skip


@pytest.fixture
def transport(server: ScpiServer) -> Iterator[ScpiTransport]:
    t = ScpiTransport(make_config(server.host, server.port))
    yield t
    t.close()


@pytest.fixture
def analyzer(server: ScpiServer) -> Iterator[YokogawaWtAnalyzer]:
    a = YokogawaWtAnalyzer(make_config(server.host, server.port))
    yield a
    a.close()


class TinyPeer:
    """A one-off line-based TCP peer: ``respond(line)`` returns the bytes to send back, or None."""

    def __init__(self, respond: Callable[[str], bytes | None]) -> None:
        self.respond = respond
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self.received: list[str] = []
        self._stop = threading.Event()
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except (TimeoutError, OSError):
                continue
            self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(0.1)
        buf = b""
        while not self._stop.is_set():
            try:
                chunk = conn.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            if not chunk:
                return
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                text = line.decode(errors="replace")
                self.received.append(text)
                reply = self.respond(text)
                if reply is not None:
                    conn.sendall(reply)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.listener.close()
        for conn in self._conns:
            conn.close()


@pytest.fixture
def tiny_peer() -> Iterator[Callable[[Callable[[str], bytes | None]], TinyPeer]]:
    peers: list[TinyPeer] = []

    def start(respond: Callable[[str], bytes | None]) -> TinyPeer:
        peer = TinyPeer(respond)
        peers.append(peer)
        return peer

    yield start
    for peer in peers:
        peer.stop()


def fake_wt(values: str) -> Callable[[str], bytes | None]:
    """A WT stand-in that accepts any setup, has no errors and answers VAL? with ``values``."""

    def respond(line: str) -> bytes | None:
        upper = line.upper()
        if "ERR" in upper and upper.endswith("?"):
            return b'+0,"No error"\n'
        if "VAL" in upper and upper.endswith("?"):
            return values.encode() + b"\n"
        return None

    return respond


# ---- identity and readings ------------------------------------------------------------------


def test_identify_matches_model_info(analyzer: YokogawaWtAnalyzer, model: RackModel) -> None:
    info = model.analyzers["analyzer"].info
    ident = analyzer.identify()
    assert (ident.vendor, ident.model, ident.serial, ident.firmware) == (
        info.vendor, info.model, info.serial, info.firmware,
    )  # fmt: skip
    assert isinstance(analyzer, Device)
    assert isinstance(analyzer, PowerAnalyzer)
    assert isinstance(analyzer, PowerMeter)


@pytest.mark.parametrize("element", [1, "SIGMA", "sigma"])
def test_read_power_matches_model_feeds(server: ScpiServer, model: RackModel, element: object) -> None:
    model.set_utilization("node01", 0.7)
    truth = sum(model.feed_power_w(f) for f in ("A", "B"))
    a = YokogawaWtAnalyzer(make_config(server.host, server.port, element=element))
    try:
        reading = a.read()
        assert reading.power_w == pytest.approx(truth, rel=0.005)
        assert a.power_watts() == pytest.approx(truth, rel=0.005)
        assert reading.voltage_v == pytest.approx(230.0, rel=0.005)
        assert reading.power_factor == pytest.approx(0.99, abs=0.01)
        assert reading.current_a == pytest.approx(truth / (230.0 * 0.99), rel=0.01)
        # configured exactly the four items the driver parses
        assert a.transport.query(":NUM:NORM:NUM?") == "4"
        assert a.transport.query(":NUM:NORM:ITEM3?") == f"P,{str(element).upper()}"
    finally:
        a.close()


def test_read_reuses_connection_and_reopens_after_close(analyzer: YokogawaWtAnalyzer) -> None:
    analyzer.read()
    generation = analyzer.transport.generation
    analyzer.read()
    assert analyzer.transport.generation == generation  # configured once per connection
    analyzer.close()
    analyzer.close()  # idempotent
    assert analyzer.read().power_w > 0  # lazily reconnects and reconfigures
    assert analyzer.transport.generation == generation + 1


def test_rejected_setup_is_reported_not_read(server: ScpiServer) -> None:
    # The simulated analyzer has one element: ITEM<k> P,2 is out of range (-222).
    a = YokogawaWtAnalyzer(make_config(server.host, server.port, element=2))
    try:
        with pytest.raises(DeviceError) as info:
            a.read()
        message = str(info.value)
        assert "-222" in message and "configure numeric items" in message
        assert "wt-feed" in message and f"{server.host}:{server.port}" in message
        assert "ITEM1 U,2" in message
    finally:
        a.close()


def test_bad_element_option_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        YokogawaWtAnalyzer(make_config("127.0.0.1", 1, element="B"))


def test_concurrent_reads_on_one_driver(analyzer: YokogawaWtAnalyzer) -> None:
    results: list[float] = []
    failures: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(20):
                results.append(analyzer.power_watts())
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert not failures
    assert len(results) == 80 and all(r > 0 for r in results)


# ---- SCPI parser --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query", [":NUMeric:NORMal:VALue?", ":NUM:NORM:VAL?", "num:norm:val?", "NUM:NORM:VALUE?", ":Num:Val?"]
)
def test_header_forms_are_equivalent(transport: ScpiTransport, query: str) -> None:
    transport.write(":NUMeric:NORMal:ITEM1 FU,1")
    transport.write("num:norm:num 1")
    assert transport.query(query) == "5.00000E+01"
    assert transport.errors() == []


def test_settings_read_back_in_any_form(transport: ScpiTransport) -> None:
    transport.write(":NUMeric:NORMal:ITEM2 P,1")
    assert transport.query("num:norm:item2?") == "P,1"
    transport.write("nUm:NoRm:ItEm2 lambda,sigma")
    assert transport.query(":NUMeric:NORMal:ITEM2?") == "LAMBDA,SIGMA"
    transport.write(":NUMERIC:FORMAT ASC")
    assert transport.query("NUM:FORM?") == "ASCII"
    for form in ("SYST:ERR?", ":SYSTem:ERRor?", ":system:error:next?"):
        assert transport.query(form) == '+0,"No error"'


def test_compound_message_and_relative_path(transport: ScpiTransport, model: RackModel) -> None:
    info = model.analyzers["analyzer"].info
    assert transport.query("*IDN?;*OPC?") == f"YOKOGAWA,WT5000,{info.serial},{info.firmware};1"
    transport.write(":NUM:NORM:ITEM1 I,1;ITEM2 U,1;:NUM:NORM:NUM 2")
    assert transport.query(":NUM:NORM:ITEM1?;ITEM2?;NUM?") == "I,1;U,1;2"
    assert transport.errors() == []


def test_in_between_forms_are_undefined(transport: ScpiTransport) -> None:
    transport.write(":NUME:NORM:NUM 3")  # neither the short (NUM) nor the long (NUMERIC) form
    assert [code for code, _ in transport.errors()] == [-113]


def test_undefined_header_goes_to_queue_and_check_names_it(transport: ScpiTransport) -> None:
    transport.write("BOGUS:CMD 1")
    assert transport.query("*ESR?") == "32"  # command error bit
    with pytest.raises(DeviceError) as info:
        transport.check("set up the analyzer")
    message = str(info.value)
    assert "-113" in message and "Undefined header" in message
    assert "wt-feed" in message and transport.config.address in message
    assert "BOGUS:CMD" in message and "set up the analyzer" in message
    transport.check("queue drained")  # nothing left


@pytest.mark.parametrize(
    ("command", "code"),
    [
        (":NUM:FORM FLOAT", -221),
        (":NUM:FORM BINARY", -224),
        (":NUM:NORM:NUM 0", -222),
        (":NUM:NORM:NUM 256", -222),
        (":NUM:NORM:NUM many", -104),
        (":NUM:NORM:ITEM1 X,1", -224),
        (":NUM:NORM:ITEM1 P,2", -222),
        (":NUM:NORM:ITEM1", -109),
        (":NUM:NORM:ITEM1 P,1,2,3", -108),
    ],
)
def test_bad_parameters(transport: ScpiTransport, command: str, code: int) -> None:
    transport.write(command)
    assert [c for c, _ in transport.errors()] == [code]


def test_error_queue_overflow_is_bounded(transport: ScpiTransport) -> None:
    transport.write(";".join(["NOPE"] * 40))
    errors = transport.errors(max_items=100)
    assert len(errors) == 32
    assert [c for c, _ in errors[:31]] == [-113] * 31
    assert errors[-1] == (-350, "Queue overflow")
    assert transport.errors() == []


def test_cls_clears_queue_and_esr(transport: ScpiTransport) -> None:
    transport.write("NOPE")
    transport.write(":NUM:NORM:NUM 0")
    transport.clear()
    assert transport.errors() == []
    assert transport.query("*ESR?") == "0"
    transport.opc()


def test_malformed_input_does_not_kill_the_server(server: ScpiServer, model: RackModel) -> None:
    with socket.create_connection((server.host, server.port), timeout=2) as sock:
        sock.sendall(b'\x00\xff\xfe garbage;;;  ;\n"unterminated\n:::\n' + b"A" * 70_000 + b"\n")
        sock.sendall(b"*IDN?\n")
        reply = sock.makefile("rb").readline()
    assert reply.startswith(b"YOKOGAWA,WT5000,")
    t = ScpiTransport(make_config(server.host, server.port))
    try:
        codes = [c for c, _ in t.errors()]
    finally:
        t.close()
    assert -363 in codes and -102 in codes


# ---- misbehaving peers and unreachable instruments ----------------------------------------


@pytest.mark.parametrize("bad", ["NAN", "INF", "9.91E+37", "-INF"])
def test_nan_or_overrange_reply_is_a_protocol_error(tiny_peer, bad: str) -> None:
    peer = tiny_peer(fake_wt(f"2.30E+02,1.00E+01,{bad},9.90E-01"))
    a = YokogawaWtAnalyzer(make_config("127.0.0.1", peer.port))
    try:
        with pytest.raises(DeviceProtocolError) as info:
            a.read()
    finally:
        a.close()
    message = str(info.value)
    assert "ITEM3 P,1" in message and bad in message
    assert "wt-feed" in message and f"127.0.0.1:{peer.port}" in message
    assert any(line.startswith(":NUMeric:NORMal:ITEM3 P,1") for line in peer.received)


@pytest.mark.parametrize("bad", ["NAN", "9.91E+37"])
def test_power_factor_without_data_is_not_available_and_keeps_the_reading(tiny_peer, bad: str) -> None:
    """No current, no power factor: LAMBDA is "no data"; U, I and P of the same reading are kept."""
    peer = tiny_peer(fake_wt(f"2.30E+02,0.00E+00,0.00E+00,{bad}"))
    a = YokogawaWtAnalyzer(make_config("127.0.0.1", peer.port))
    try:
        reading = a.read()
    finally:
        a.close()
    assert (reading.voltage_v, reading.current_a, reading.power_w, reading.power_factor) == (230.0, 0.0, 0.0, None)


@pytest.mark.parametrize("values", ["2.30E+02,1.00E+01,2.3E+03", "2.30E+02,1.00E+01,abc,9.90E-01"])
def test_malformed_value_list_is_a_protocol_error(tiny_peer, values: str) -> None:
    peer = tiny_peer(fake_wt(values))
    a = YokogawaWtAnalyzer(make_config("127.0.0.1", peer.port))
    try:
        with pytest.raises(DeviceProtocolError, match="NORMal:VALue"):
            a.read()
    finally:
        a.close()


@pytest.mark.parametrize(("reply", "match"), [(b"YOKOGAWA,WT5000\n", "maker,model"), (b"\xff\xfeYOKO\n", "garbled")])
def test_bad_identity_reply(tiny_peer, reply: bytes, match: str) -> None:
    peer = tiny_peer(lambda line: reply if line == "*IDN?" else None)
    t = ScpiTransport(make_config("127.0.0.1", peer.port))
    try:
        with pytest.raises(DeviceProtocolError, match=match) as info:
            t.identity()
    finally:
        t.close()
    assert "*IDN?" in str(info.value)


def test_silent_instrument_times_out(tiny_peer) -> None:
    peer = tiny_peer(lambda line: None)
    t = ScpiTransport(make_config("127.0.0.1", peer.port, timeout_s=0.3))
    start = time.monotonic()
    try:
        with pytest.raises(DeviceTimeout) as info:
            t.query("*IDN?")
    finally:
        t.close()
    assert time.monotonic() - start < 3
    message = str(info.value)
    assert "wt-feed" in message and f"127.0.0.1:{peer.port}" in message and "*IDN?" in message


def test_connection_refused_is_a_device_error() -> None:
    # Bound but not listening: the kernel answers RST, and no one else can take the port meanwhile.
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        t = ScpiTransport(make_config("127.0.0.1", port, timeout_s=1))
        try:
            with pytest.raises(DeviceError) as info:
                t.identity()
        finally:
            t.close()
    assert not isinstance(info.value, DeviceTimeout)
    message = str(info.value)
    assert "refused" in message and "wt-feed" in message and f"127.0.0.1:{port}" in message


def test_default_and_explicit_resource_strings(server: ScpiServer, model: RackModel) -> None:
    assert resource_string(make_config("10.0.0.5", None)) == "TCPIP0::10.0.0.5::5025::SOCKET"
    assert resource_string(make_config("127.0.0.1", server.port)) == f"TCPIP0::127.0.0.1::{server.port}::SOCKET"
    vxi = make_config("10.0.0.5", None, resource="TCPIP0::10.0.0.5::inst0::INSTR")
    assert resource_string(vxi) == "TCPIP0::10.0.0.5::inst0::INSTR"
    # An explicit resource wins over host/port.
    explicit = make_config("unused.invalid", 1, resource=f"TCPIP0::127.0.0.1::{server.port}::SOCKET")
    a = YokogawaWtAnalyzer(explicit)
    try:
        assert a.identify().serial == model.analyzers["analyzer"].info.serial
        assert a.read().power_w > 0
    finally:
        a.close()


def test_transports_are_independent(server: ScpiServer) -> None:
    """Closing one transport must not close another's session (pyvisa shares its manager)."""
    config = make_config(server.host, server.port)
    transports = [ScpiTransport(config) for _ in range(4)]
    failures: list[BaseException] = []

    def use(t: ScpiTransport) -> None:
        try:
            for _ in range(10):
                t.opc()
        except BaseException as exc:
            failures.append(exc)

    try:
        threads = [threading.Thread(target=use, args=(t,)) for t in transports]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=20)
        assert not failures
        transports[0].close()
        assert transports[1].identity()[0] == "YOKOGAWA"
        assert transports[0].identity()[0] == "YOKOGAWA"  # reopens after close
    finally:
        for t in transports:
            t.close()


def test_host_port_form_is_not_a_visa_resource(server: ScpiServer) -> None:
    t = ScpiTransport(make_config("127.0.0.1", None, resource=f"127.0.0.1:{server.port}"))
    try:
        with pytest.raises(DeviceError, match="invalid VISA resource"):
            t.identity()
    finally:
        t.close()


def test_server_stop_is_idempotent_with_a_client_connected(model: RackModel) -> None:
    srv = start_analyzer_scpi(model, "analyzer")
    t = ScpiTransport(make_config(srv.host, srv.port, timeout_s=0.5))
    try:
        t.identity()
        start = time.monotonic()
        srv.stop()
        srv.stop()
        assert time.monotonic() - start < 3
        with pytest.raises(DeviceError):
            t.identity()
    finally:
        t.close()
        srv.stop()
