"""Client CPU per var-bind: our SnmpTransport vs ezsnmp (net-snmp's C library) against net-snmp snmpd.

Why: a rack poller reads hundreds of OIDs per second from dozens of PDUs and switches on one
2-core box; the SNMP client's CPU cost is what limits how many devices one harness can poll.
ezsnmp wraps net-snmp's C client, the fastest thing a Python program can call, so it is the
bar. Target: ours <= 2x ezsnmp's CPU per var-bind.

Both clients run in this process against the same snmpd (a C agent, so the agent is not what we
measure), one after the other within each repeat, and CPU is ``time.process_time()`` of this
process: it counts every thread, and ezsnmp's C code runs in-process too, so the comparison is
like for like. Cases: v2c and v3 authPriv (SHA-256 + AES-128), each as a 24-OID GET and a bulk
walk. Our side is the lean codec path (rackval/drivers/transport/snmp_ber.py, snmp_usm.py,
snmp_channel.py); the last line prints what pysnmp's own BER codec alone would cost, for scale.

Run: ``.venv/bin/python bench/bench_snmp.py [--repeats 7] [--gets 200] [--walks 10] [--profile]``
(needs ``pip install ezsnmp`` in the venv; a bench-only dependency).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# 22 IF-MIB ifTable columns of ifIndex 1 (lo) + sysDescr.0 + sysUpTime.0 = 24 var-binds per GET.
GET_OIDS = [f"1.3.6.1.2.1.2.2.1.{col}.1" for col in range(1, 23)] + ["1.3.6.1.2.1.1.1.0", "1.3.6.1.2.1.1.3.0"]
# IP-MIB: ~500 rows of mixed types (integers, IpAddress, OIDs, counters) on a typical Linux host.
WALK_ROOT = "1.3.6.1.2.1.4"
MAX_REPETITIONS = 25


def _measure(fn: Callable[[], int], times: int) -> tuple[float, float, int]:
    """(CPU seconds, wall seconds, var-binds) for ``times`` calls of ``fn``."""
    cpu0, wall0 = time.process_time(), time.perf_counter()
    varbinds = sum(fn() for _ in range(times))
    return time.process_time() - cpu0, time.perf_counter() - wall0, varbinds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--gets", type=int, default=200, help="GETs per repeat")
    parser.add_argument("--walks", type=int, default=10, help="bulk walks per repeat")
    parser.add_argument("--profile", action="store_true", help="cProfile our side and print the top functions")
    args = parser.parse_args()

    sys.path.insert(0, str(REPO))  # tests.snmpd_peer: the project's net-snmp fixture
    from ezsnmp import Session

    from rackval.drivers.config import Credentials, DeviceConfig, Secret
    from rackval.drivers.transport.snmp import SnmpTransport
    from tests.support.snmpd_peer import start_snmpd

    with tempfile.TemporaryDirectory(prefix="bench-snmp-") as tmp:
        peer = start_snmpd(Path(tmp) / "snmpd")
        try:
            config = DeviceConfig(
                name="snmpd",
                kind="pdu",
                driver="-",
                host=peer.host,
                port=peer.port,
                credentials=Credentials(community=Secret(peer.ro_community)),
                timeout_s=2.0,
            )
            ours = SnmpTransport(config)
            ez = Session(
                hostname=peer.host,
                port_number=peer.port,
                version="2c",
                community=peer.ro_community,
                timeout=2,
                retries=1,
                print_oids_numerically=True,
                set_max_repeaters_to_num=MAX_REPETITIONS,
            )

            v3_config = DeviceConfig(
                name="snmpd-v3",
                kind="pdu",
                driver="-",
                host=peer.host,
                port=peer.port,
                credentials=Credentials(
                    snmp_version="3", username=peer.v3_user, auth_protocol="SHA256",
                    auth_key=Secret(peer.v3_auth_pass), priv_protocol="AES128", priv_key=Secret(peer.v3_priv_pass),
                ),
                timeout_s=2.0,
            )  # fmt: skip
            ours_v3 = SnmpTransport(v3_config)
            ez_v3 = Session(
                hostname=peer.host,
                port_number=peer.port,
                version="3",
                security_level="authPriv",
                security_username=peer.v3_user,
                auth_protocol="SHA-256",
                auth_passphrase=peer.v3_auth_pass,
                privacy_protocol="AES",
                privacy_passphrase=peer.v3_priv_pass,
                timeout=2,
                retries=1,
                print_oids_numerically=True,
                set_max_repeaters_to_num=MAX_REPETITIONS,
            )

            def ours_get() -> int:
                return len(ours.get(GET_OIDS))

            def ours_v3_get() -> int:
                return len(ours_v3.get(GET_OIDS))

            def ez_v3_get() -> int:
                return len(ez_v3.get(GET_OIDS))

            def ours_v3_walk() -> int:
                return len(ours_v3.walk(WALK_ROOT, max_repetitions=MAX_REPETITIONS))

            def ez_v3_walk() -> int:
                return len(ez_v3.bulk_walk(WALK_ROOT))

            def ez_get() -> int:
                return len(ez.get(GET_OIDS))

            def ours_walk() -> int:
                return len(ours.walk(WALK_ROOT, max_repetitions=MAX_REPETITIONS))

            def ez_walk() -> int:
                return len(ez.bulk_walk(WALK_ROOT))

            # warm up: engine creation, first socket, imports, net-snmp init
            assert ours_get() == 24 and ez_get() == 24, "both clients must see all 24 objects"
            assert ours_v3_get() == 24 and ez_v3_get() == 24, "both v3 clients must see all 24 objects"
            rows_ours, rows_ez = ours_walk(), ez_walk()
            print(f"machine: {_machine()}")
            print(f"agent: net-snmp snmpd {peer.host}:{peer.port} (v2c; v3 authPriv SHA-256 + AES-128)")
            print(f"walk {WALK_ROOT}: ours {rows_ours} "
                  f"rows, ezsnmp {rows_ez} rows; max-repetitions {MAX_REPETITIONS}")  # fmt: skip

            cases = [
                ("GET 24 OIDs", ours_get, ez_get, args.gets),
                (f"bulk walk {WALK_ROOT}", ours_walk, ez_walk, args.walks),
                ("v3 GET 24 OIDs", ours_v3_get, ez_v3_get, args.gets),
                (f"v3 bulk walk {WALK_ROOT}", ours_v3_walk, ez_v3_walk, args.walks),
            ]
            print(f"{args.repeats} repeats; medians of per-repeat figures\n")
            print(f"{'case':<24} {'client':<8} {'CPU us/varbind':>15} {'CPU ms/op':>10} {'wall ms/op':>11}")
            ok = True
            per_case: dict[str, dict[str, list[tuple[float, float, float]]]] = {}
            for label, ours_fn, ez_fn, times in cases:
                per: dict[str, list[tuple[float, float, float]]] = {"ours": [], "ezsnmp": []}
                per_case[label] = per
                for _ in range(args.repeats):
                    for who, fn in (("ours", ours_fn), ("ezsnmp", ez_fn)):
                        cpu, wall, vbs = _measure(fn, times)
                        per[who].append((cpu / vbs * 1e6, wall / times * 1e3, cpu / times * 1e3))
                med = {who: tuple(statistics.median(x[i] for x in rows) for i in range(3)) for who, rows in per.items()}
                for who in ("ours", "ezsnmp"):
                    us_vb, wall_ms, cpu_ms = med[who]
                    print(f"{label:<24} {who:<8} {us_vb:>15.2f} {cpu_ms:>10.3f} {wall_ms:>11.3f}")
                ratio = med["ours"][0] / med["ezsnmp"][0]
                wall_ratio = med["ours"][1] / med["ezsnmp"][1]
                verdict = "OK" if ratio <= 2.0 else "ABOVE TARGET"
                ok = ok and ratio <= 2.0
                print(f"{label:<24} ratio    CPU {ratio:.2f}x ezsnmp (target <= 2x: {verdict}); "
                      f"wall {wall_ratio:.2f}x\n")  # fmt: skip

            floor = _codec_floor(len(GET_OIDS), repeats=args.repeats)
            ez_get_ms = statistics.median(x[2] for x in per_case["GET 24 OIDs"]["ezsnmp"])
            print(f"pysnmp BER codec alone, no I/O: build+encode a 24-OID GET {floor[0]:.3f} ms CPU, decode its "
                  f"24-var-bind response {floor[1]:.3f} ms CPU = {sum(floor) / len(GET_OIDS) * 1e3:.1f} us/varbind, "
                  f"{sum(floor) / ez_get_ms:.2f}x ezsnmp's whole GET")  # fmt: skip

            if args.profile:
                _profile(ours_get, ours_walk, args.gets, args.walks)
            ours.close()
            ours_v3.close()
        finally:
            peer.stop()
    return 0 if ok else 1


def _codec_floor(count: int, repeats: int) -> tuple[float, float]:
    """CPU ms of pysnmp's own message build+encode (request) and decode (response), no I/O.

    This is the part of our client's cost that lives in pysnmp/pyasn1 and that no change to our
    transport can remove; it bounds what optimising rackval/drivers/transport/snmp.py could achieve.
    """
    from pyasn1.codec.ber import decoder, encoder
    from pysnmp.proto import api, rfc1902
    from pysnmp.proto.mpmod.rfc2576 import SnmpV2cMessageProcessingModel

    p = api.PROTOCOL_MODULES[api.SNMP_VERSION_2C]
    oids = GET_OIDS[:count]

    def request() -> bytes:
        pdu = p.GetRequestPDU()
        p.apiPDU.set_defaults(pdu)
        p.apiPDU.set_varbinds(pdu, [(rfc1902.ObjectName(o), rfc1902.Null("")) for o in oids])
        msg = p.Message()
        p.apiMessage.set_defaults(msg)
        p.apiMessage.set_community(msg, b"community")
        p.apiMessage.set_pdu(msg, pdu)
        return encoder.encode(msg)

    # a response shaped like snmpd's: alternating counters and short strings
    rsp = p.GetResponsePDU()
    p.apiPDU.set_defaults(rsp)
    values = [rfc1902.Counter32(12345678) if i % 2 else rfc1902.OctetString(b"eth0-port1") for i in range(count)]
    p.apiPDU.set_varbinds(rsp, [(rfc1902.ObjectName(o), v) for o, v in zip(oids, values, strict=True)])
    msg = p.Message()
    p.apiMessage.set_defaults(msg)
    p.apiMessage.set_community(msg, b"community")
    p.apiMessage.set_pdu(msg, rsp)
    wire = encoder.encode(msg)
    spec = SnmpV2cMessageProcessingModel()._snmpMsgSpec  # what pysnmp decodes every v2c message with

    enc, dec = [], []
    for _ in range(repeats):
        c0 = time.process_time()
        for _ in range(100):
            request()
        enc.append((time.process_time() - c0) / 100 * 1e3)
        c0 = time.process_time()
        for _ in range(100):
            decoder.decode(wire, asn1Spec=spec)
        dec.append((time.process_time() - c0) / 100 * 1e3)
    return statistics.median(enc), statistics.median(dec)


def _profile(get: Callable[[], int], walk: Callable[[], int], gets: int, walks: int) -> None:
    """cProfile our client (v2c and v3 on the lean path run in the calling thread)."""
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(gets):
        get()
    for _ in range(walks):
        walk()
    prof.disable()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(20)
    print("\ncProfile, calling thread (tottime order):")
    print(buf.getvalue())


def _machine() -> str:
    import os
    import platform

    return f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"


if __name__ == "__main__":
    sys.exit(main())
