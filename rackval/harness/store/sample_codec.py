"""How a segment of one telemetry channel is packed: timestamps and values, lossless, small.

A soak stores millions of samples; as rows they cost ~145 bytes each. A segment holds up to
``SEGMENT_SAMPLES`` consecutive samples of one channel as two zstd-compressed blobs, the way
time-series databases (Prometheus, Gorilla, TimescaleDB) do it, with numpy doing the vector work
and python-zstandard the compression (its contexts can be reused, which the stdlib-style
``compression.zstd`` API cannot: a new context per segment cost more than the decompression):

* **Timestamps** are kept to the millisecond (``TIME_RESOLUTION_S``, as Prometheus keeps them) as
  integers, delta-of-delta encoded: a sampler ticking on its grid gives a run of zeros, which zstd
  squeezes to almost nothing. A time given with at most three decimals comes back bit for bit.
  Why not the microsecond: a tick's stamp is the harness's clock when it polled, and the
  readings of one tick are taken over milliseconds anyway, so the microseconds are jitter, not
  information; yet they cost: on the simulated reference run (ticks ~1 s apart with sub-ms
  jitter) microsecond times took 2.26 bytes per sample, more than the values (0.18), and
  milliseconds take 0.41. Segments written with microseconds (blob kind 1) still decode.
* **Values** come back bit for bit (NaN payloads, +-inf, -0.0, subnormals included). Most
  channels are decimals the device gave with a few digits (412.3 W, 38.25 degC, 5400 rpm, a
  counter): such a segment is stored as the integers ``value * 10**k`` for the smallest ``k``
  that reproduces every value exactly, delta encoded in the narrowest integer width that holds
  the deltas. The few values that are not (NaN for a missing sample, inf, -0.0) are kept aside
  as raw bits with their positions. A segment whose values are no such decimals (computed
  floats) is stored as the XOR of each value's bits with the previous one's, byte-shuffled
  (Gorilla's idea, in a form zstd can use).

Each blob starts with one byte naming its encoding, so the format can grow; ``CODEC_VERSION`` is
stored with every segment. Statistics (count, values, min, max, sum) are computed here too, so
the store keeps them beside the blobs and a report need not decode anything for them.
"""

from __future__ import annotations

import struct
import threading
from dataclasses import dataclass

import numpy as np
import zstandard

CODEC_VERSION = 1
TIME_RESOLUTION_S = 1e-3
_TICKS_PER_S = 1_000.0  # 1 / TIME_RESOLUTION_S, exactly
SEGMENT_SAMPLES = 1024  # samples of one channel per segment at most
ZSTD_LEVEL = 3
MAX_DECIMALS = 6  # value * 10**k tried for k = 0..MAX_DECIMALS

_TIMES_DOD_US = 1  # microsecond ticks: what the first stores wrote (read only)
_TIMES_DOD = 2  # millisecond ticks
_TICKS_OF = {_TIMES_DOD_US: 1_000_000.0, _TIMES_DOD: _TICKS_PER_S}
_VALUES_DECIMAL = 1
_VALUES_XOR = 2
_WIDTHS = (np.dtype("<u1"), np.dtype("<u2"), np.dtype("<u4"), np.dtype("<u8"))
_SCALES = tuple(10.0**k for k in range(MAX_DECIMALS + 1))
_EXACT_LIMIT = 2.0**53  # beyond this a float64 no longer holds every integer


_local = threading.local()


def _compress(data: bytes) -> bytes:
    """zstd with a compressor kept per thread (a new one per call costs 6x the compression); the
    frame records its content size, which ``_decompress`` relies on."""
    compressor = getattr(_local, "compressor", None)
    if compressor is None:
        compressor = _local.compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
    return compressor.compress(data)


def _decompress(data: bytes) -> bytes:
    """One zstd frame, with a decompression context kept per thread: creating one costs twice the
    decompression of a segment (a report decompresses ~12,000). Any zstd frame with its content
    size in the header reads, as every frame rackval wrote has (also those of the stdlib-style
    ``compression.zstd`` module the first stores used)."""
    decompressor = getattr(_local, "decompressor", None)
    if decompressor is None:
        decompressor = _local.decompressor = zstandard.ZstdDecompressor()
    return decompressor.decompress(data)


class CodecError(ValueError):
    """A blob that is not a segment this code wrote (corrupt, or from a newer rackval)."""


@dataclass(frozen=True)
class EncodedSegment:
    """One segment as stored: its span, statistics and blobs."""

    t_first: float
    t_last: float
    count: int  # samples, missing ones included
    n_values: int  # samples with a value (not NaN)
    vmin: float | None
    vmax: float | None
    vsum: float | None
    times: bytes
    values: bytes


def _zigzag(x: np.ndarray) -> np.ndarray:
    return ((x << 1) ^ (x >> 63)).view(np.uint64)


def _unzigzag(u: np.ndarray) -> np.ndarray:
    return ((u >> np.uint64(1)).view(np.int64)) ^ -((u & np.uint64(1)).view(np.int64))


def _pack_ints(x: np.ndarray) -> bytes:
    """Signed integers as one width byte + zigzagged little-endian integers of that width."""
    u = _zigzag(x.astype(np.int64, copy=False))
    top = int(u.max()) if u.size else 0
    code = 0 if top < 1 << 8 else 1 if top < 1 << 16 else 2 if top < 1 << 32 else 3
    return bytes([code]) + u.astype(_WIDTHS[code]).tobytes()


def _unpack_ints(data: bytes, n: int) -> np.ndarray:
    if not data or data[0] > 3:
        raise CodecError("bad integer width")
    width = _WIDTHS[data[0]]
    u = np.frombuffer(data, dtype=width, count=n, offset=1).astype(np.uint64)
    return _unzigzag(u)


def encode_times(t: np.ndarray) -> bytes:
    """Clock seconds (float64, any order) as millisecond delta-of-deltas, zstd compressed."""
    ticks = np.rint(np.asarray(t, dtype=np.float64) * _TICKS_PER_S).astype(np.int64)
    dod = np.diff(np.diff(ticks), prepend=0) if ticks.size > 1 else np.zeros(0, dtype=np.int64)
    head = struct.pack("<BIq", _TIMES_DOD, ticks.size, int(ticks[0]) if ticks.size else 0)
    return head + _compress(_pack_ints(dod))


def decode_times(blob: bytes) -> np.ndarray:
    try:
        kind, n, first = struct.unpack_from("<BIq", blob)
        per_s = _TICKS_OF.get(kind)
        if per_s is None:
            raise CodecError(f"unknown timestamp encoding {kind}")
        dod = _unpack_ints(_decompress(blob[13:]), max(n - 1, 0))
    except (struct.error, zstandard.ZstdError, ValueError) as exc:
        raise CodecError(f"corrupt timestamp blob: {exc}") from exc
    ticks = np.empty(n, dtype=np.int64)
    if n:
        ticks[0] = first
        np.cumsum(np.cumsum(dod), out=ticks[1:])
        ticks[1:] += first
    return ticks / per_s


def _decimals(v: np.ndarray) -> tuple[int, np.ndarray] | None:
    """(k, v * 10**k as int64) for the smallest k that gives every value back exactly, or None."""
    bits = v.view(np.uint64)
    with np.errstate(invalid="ignore", over="ignore"):
        for k, scale in enumerate(_SCALES):
            scaled = np.rint(v * scale)
            if v.size and not np.abs(scaled).max() < _EXACT_LIMIT:
                return None
            if np.array_equal((scaled / scale).view(np.uint64), bits):
                return k, scaled.astype(np.int64)
    return None


def encode_values(v: np.ndarray) -> bytes:
    """Float64 values, bit for bit (see the module docstring), zstd compressed."""
    v = np.ascontiguousarray(v, dtype=np.float64)
    n = v.size
    odd = ~np.isfinite(v) | ((v == 0) & np.signbit(v))  # kept aside as raw bits
    where = np.flatnonzero(odd)
    if where.size * 4 <= n:
        regular = v[~odd]
        found = _decimals(regular)
        if found is not None:
            k, ints = found
            full = np.zeros(n, dtype=np.int64)
            full[~odd] = ints
            if where.size:  # an odd position repeats the previous integer: a zero delta
                keep = np.where(odd, 0, np.arange(n))
                np.maximum.accumulate(keep, out=keep)
                full = full[keep]
            payload = (
                struct.pack("<BI", k, where.size) + where.astype("<u4").tobytes()
                + v[where].view("<u8").tobytes() + _pack_ints(np.diff(full, prepend=0))
            )  # fmt: skip
            return struct.pack("<BI", _VALUES_DECIMAL, n) + _compress(payload)
    bits = v.view(np.uint64)
    xor = bits ^ np.concatenate(([np.uint64(0)], bits[:-1])) if n else bits
    shuffled = xor.astype("<u8").view(np.uint8).reshape(n, 8).T.tobytes()
    return struct.pack("<BI", _VALUES_XOR, n) + _compress(shuffled)


def decode_values(blob: bytes) -> np.ndarray:
    try:
        kind, n = struct.unpack_from("<BI", blob)
        if kind not in (_VALUES_DECIMAL, _VALUES_XOR):
            raise CodecError(f"unknown value encoding {kind} (a newer rackval's, or damaged)")
        data = _decompress(blob[5:])
    except (struct.error, zstandard.ZstdError, ValueError) as exc:
        raise CodecError(f"corrupt value blob: {exc}") from exc
    return _values_of(kind, n, data)


def _values_of(kind: int, n: int, data: bytes) -> np.ndarray:
    """The values of a blob whose header said ``kind`` (XOR or decimal, checked by the callers)
    and ``n``, and whose payload is ``data``."""
    try:
        if kind == _VALUES_XOR:
            xor = np.frombuffer(data, dtype=np.uint8, count=8 * n).reshape(8, n).T.copy().view("<u8").ravel()
            return np.bitwise_xor.accumulate(xor).view(np.float64) if n else np.zeros(0)
        k, odd = struct.unpack_from("<BI", data)
        if k > MAX_DECIMALS:
            raise CodecError(f"bad decimal scale {k}")
        at = 5 + 4 * odd
        where = np.frombuffer(data, dtype="<u4", count=odd, offset=5).astype(np.int64)
        raw = np.frombuffer(data, dtype="<u8", count=odd, offset=at)
        ints = np.cumsum(_unpack_ints(data[at + 8 * odd :], n))
    except (struct.error, zstandard.ZstdError, ValueError) as exc:
        raise CodecError(f"corrupt value blob: {exc}") from exc
    values = ints / _SCALES[k]
    values[where] = raw.view(np.float64)
    return values


def decode_values_many(blobs: list[bytes]) -> list[np.ndarray]:
    """``decode_values`` of each blob, the same arrays bit for bit, with the vector work done once.

    Why: a report reads ~12,000 segments of ~1,000 samples; per segment, a dozen small numpy
    calls cost more than their arithmetic (~60 us a segment, most of a 10 M-sample read). Here
    the common blobs (decimal values, no odd ones) are grouped by integer width and undone as one
    array: one zigzag, one running sum over all of them (each segment's start subtracted back:
    int64 wraps, and the difference is exact modulo 2**64, so no segment sees another's sum),
    one division. Anything else goes through ``decode_values``. CodecError as it would raise."""
    out: list[np.ndarray | None] = [None] * len(blobs)
    by_width: dict[int, list[tuple[int, int, int, bytes]]] = {}
    for i, blob in enumerate(blobs):
        try:
            kind, n = struct.unpack_from("<BI", blob)
            data = _decompress(blob[5:]) if kind == _VALUES_DECIMAL and n else b""
        except (struct.error, zstandard.ZstdError, ValueError) as exc:
            raise CodecError(f"corrupt value blob: {exc}") from exc
        code = data[5] if len(data) > 5 and data[1:5] == b"\0\0\0\0" else 4  # 4: not the common form
        if code > 3 or data[0] > MAX_DECIMALS or len(data) < 6 + n * _WIDTHS[code].itemsize:
            out[i] = _values_of(kind, n, data) if data else decode_values(blob)
            continue
        by_width.setdefault(code, []).append((i, data[0], n, data))
    for code, group in by_width.items():
        size = _WIDTHS[code].itemsize
        joined = b"".join(memoryview(data)[6 : 6 + n * size] for _, _, n, data in group)
        sums = np.cumsum(_unzigzag(np.frombuffer(joined, dtype=_WIDTHS[code]).astype(np.uint64)))
        counts = np.array([n for _, _, n, _ in group], dtype=np.int64)
        ends = np.cumsum(counts)
        before = np.zeros(len(group), dtype=np.int64)
        before[1:] = sums[ends[:-1] - 1]
        scales = np.array([_SCALES[k] for _, k, _, _ in group])
        values = (sums - np.repeat(before, counts)) / np.repeat(scales, counts)
        for (i, _, _, _), end, n in zip(group, ends.tolist(), counts.tolist(), strict=True):
            out[i] = values[end - n : end]
    return out  # type: ignore[return-value]  # every slot filled above


def segment_stats(v: np.ndarray) -> tuple[int, float | None, float | None, float | None]:
    """(values present, min, max, sum) over the samples that have a value (not NaN)."""
    present = v[~np.isnan(v)]
    if not present.size:
        return 0, None, None, None
    with np.errstate(invalid="ignore"):  # +inf and -inf in one segment: the sum is NaN
        return int(present.size), float(present.min()), float(present.max()), float(present.sum())


def encode_segment(t: np.ndarray, v: np.ndarray) -> EncodedSegment:
    """One channel's samples (``t`` ascending, NaN for a missing value) as one segment."""
    n_values, vmin, vmax, vsum = segment_stats(v)
    return EncodedSegment(
        float(t[0]), float(t[-1]), int(t.size), n_values, vmin, vmax, vsum, encode_times(t), encode_values(v)
    )


def segments_of(t: np.ndarray, v: np.ndarray, size: int = SEGMENT_SAMPLES) -> list[EncodedSegment]:
    """Samples of one channel, sorted by time here (stably), cut into segments of ``size``."""
    order = np.argsort(t, kind="stable")
    if not np.array_equal(order, np.arange(t.size)):
        t, v = t[order], v[order]
    return [encode_segment(t[i : i + size], v[i : i + size]) for i in range(0, t.size, size)]


def encode_block(t: np.ndarray, block: np.ndarray) -> list[EncodedSegment]:
    """One segment per column of ``block`` (ticks x channels, sampled at the times ``t``,
    ascending): what a sample stream folds. The same blobs as ``encode_segment`` column by
    column, with the vector work (decimal scale, deltas, widths, statistics) done once for the
    whole block and the times encoded once; a column holding odd values (NaN, inf, -0.0) takes
    the per-column path."""
    n, m = block.shape
    times = encode_times(t)
    t_first, t_last = float(t[0]), float(t[-1])
    odd = (~np.isfinite(block) | ((block == 0) & np.signbit(block))).any(axis=0)
    scale_of = np.full(m, -1)
    ints = np.zeros((n, m), dtype=np.int64)
    with np.errstate(invalid="ignore", over="ignore"):
        for k, scale in enumerate(_SCALES):
            todo = np.flatnonzero((scale_of < 0) & ~odd)
            if not todo.size:
                break
            part = block[:, todo]
            scaled = np.rint(part * scale)
            exact = (np.abs(scaled) < _EXACT_LIMIT).all(axis=0)
            exact &= ((scaled / scale).view(np.uint64) == part.view(np.uint64)).all(axis=0)
            chosen = todo[exact]
            scale_of[chosen] = k
            ints[:, chosen] = scaled[:, exact].astype(np.int64)
    zigzag = np.ascontiguousarray(_zigzag(np.diff(ints, axis=0, prepend=0)).T)
    top = zigzag.max(axis=1) if n else np.zeros(m, dtype=np.uint64)
    codes = (top >= 1 << 8).astype(int) + (top >= 1 << 16) + (top >= 1 << 32)
    by_channel = np.ascontiguousarray(block.T)  # a row per channel: sums add up as a channel's alone
    vmin = by_channel.min(axis=1).tolist() if n else []
    vmax = by_channel.max(axis=1).tolist() if n else []
    vsum = by_channel.sum(axis=1).tolist()
    head = struct.pack("<BI", _VALUES_DECIMAL, n)
    out: list[EncodedSegment] = []
    for j, (k, code) in enumerate(zip(scale_of.tolist(), codes.tolist(), strict=True)):
        if k < 0:  # odd values, or no decimal form: the general path
            column = np.ascontiguousarray(block[:, j])
            count, lo, hi, total = segment_stats(column)
            out.append(EncodedSegment(t_first, t_last, n, count, lo, hi, total, times, encode_values(column)))
            continue
        payload = struct.pack("<BIB", k, 0, code) + zigzag[j].astype(_WIDTHS[code]).tobytes()
        out.append(EncodedSegment(t_first, t_last, n, n, vmin[j], vmax[j], vsum[j], times, head + _compress(payload)))
    return out


def stamp(t: float) -> float:
    """``t`` as a segment gives it back (to ``TIME_RESOLUTION_S``): what an open segment holds, so
    a series read mid-run has the same times before and after its segment closes."""
    return float(np.rint(t * _TICKS_PER_S) / _TICKS_PER_S)
