"""The segment codec gives back every value bit for bit and every time to the millisecond, and
refuses a blob it did not write with one line."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from rackval.harness.store import sample_codec as codec
from rackval.harness.store.sample_codec import (
    CodecError,
    decode_times,
    decode_values,
    encode_block,
    encode_segment,
    encode_times,
    encode_values,
    segments_of,
    stamp,
)

AWKWARD = [
    [np.nan, np.inf, -np.inf, -0.0, 0.0, 1e-300, 5e-324, -1e-300, 1.7976931348623157e308, 412.3],
    [np.frombuffer(np.uint64(0x7FF8DEADBEEF0001).tobytes(), dtype=np.float64)[0], 1.0, 2.0],  # a NaN payload
    [3.5],  # a single sample
    [],
    [np.nan] * 5,  # a device that never answered
    [0.1 + 0.2, 1 / 3, np.pi],  # computed floats: no decimal form
    [2.0**53 + 2, 2.0**60, 1.0],  # integers a decimal scale cannot hold exactly
    [-0.0] * 3 + [1.25] * 50,
    list(np.round(np.random.default_rng(7).normal(4000, 30, 2000), 1)),  # power, 0.1 W
    list(np.cumsum(np.random.default_rng(8).integers(0, 10**9, 500)).astype(float)),  # a counter
    [4.0, 4.01, 4.001, 4.0001, 4.00001, 4.000001, 4.0000001],  # more decimals than the scale tries
]


def _bits(a: np.ndarray) -> list[int]:
    return np.asarray(a, dtype=np.float64).view(np.uint64).tolist()


@pytest.mark.parametrize("values", AWKWARD, ids=range(len(AWKWARD)))
def test_values_come_back_bit_for_bit(values: list[float]) -> None:
    v = np.array(values, dtype=np.float64)
    assert _bits(decode_values(encode_values(v))) == _bits(v)


@pytest.mark.parametrize(
    "times",
    [
        [0.0],
        [],
        [1765000000.0 + k for k in range(10)],
        [0.0, 0.1, 0.301, 7.5, 7.5, 1e6 + 0.001, 86400.25],  # irregular, a repeat, a gap
        [5.0, -3.25, 2.0],  # out of order: kept as given
        # 1 Hz with jitter
        list((1765000000123 + np.cumsum(np.random.default_rng(3).integers(900, 1_100, 300))) / 1e3),
    ],
)
def test_times_with_milliseconds_come_back_exactly(times: list[float]) -> None:
    t = np.array(times, dtype=np.float64)
    assert decode_times(encode_times(t)).tolist() == t.tolist()


def test_times_finer_than_a_millisecond_are_rounded_to_it() -> None:
    back = decode_times(encode_times(np.array([10.0004, 10.0006, 10.000001])))
    assert back.tolist() == [10.0, 10.001, 10.0]
    assert [stamp(t) for t in (10.0004, 10.0006)] == back[:2].tolist()  # an open segment holds the same


def test_segments_written_with_microsecond_times_still_decode() -> None:
    """The first stores kept microseconds (blob kind 1): their segments read back unchanged."""
    ticks = np.array([10_000_001, 11_000_003, 12_000_002], dtype=np.int64)
    dod = np.diff(np.diff(ticks), prepend=0)
    blob = struct.pack("<BIq", 1, 3, int(ticks[0])) + codec._compress(codec._pack_ints(dod))
    assert decode_times(blob).tolist() == [10.000001, 11.000003, 12.000002]


def test_jittered_ticks_cost_under_half_a_byte_a_sample() -> None:
    """A sampler's real stamps: ~1 s apart with sub-millisecond jitter (as the reference run)."""
    rng = np.random.default_rng(4)
    t = 1765000000.0 + np.cumsum(1.0 + rng.normal(0, 0.0006, 1024))
    assert len(encode_times(t)) / 1024 < 0.5


def test_segment_statistics_skip_missing_values_and_segments_are_cut_in_time_order() -> None:
    t = np.array([3.0, 1.0, 2.0, 4.0])
    v = np.array([30.0, np.nan, 20.0, -5.0])
    (first, second) = segments_of(t, v, size=2)
    assert (first.t_first, first.t_last, first.count, first.n_values, first.vmin, first.vmax) == (
        1.0, 2.0, 2, 1, 20.0, 20.0,
    )  # fmt: skip
    assert (second.count, second.vmin, second.vmax, second.vsum) == (2, -5.0, 30.0, 25.0)
    none = encode_segment(np.array([1.0]), np.array([np.nan]))
    assert (none.n_values, none.vmin, none.vmax, none.vsum) == (0, None, None, None)


def test_segments_compressed_by_the_first_stores_still_decode() -> None:
    """The first stores compressed with the stdlib-style ``compression.zstd`` API
    (backports.zstd); their frames read back unchanged (these two were written by it)."""
    values = bytes.fromhex("010600000028b52ffd201ef100000200000000021c4201002800000077000000dc000000a7420100c1010000")
    times = bytes.fromhex("0206000000102700000000000028b52ffd200b59000001d007020003000200e803")
    assert decode_values(values).tolist() == [412.3, 412.5, 411.9, 413.0, 0.0, -2.25]
    assert codec.decode_values_many([values])[0].tolist() == [412.3, 412.5, 411.9, 413.0, 0.0, -2.25]
    assert decode_times(times).tolist() == [10.0, 11.0, 12.001, 13.0, 14.0, 15.5]


_GOOD = encode_values(np.round(np.linspace(0, 50, 300), 2))
BAD_BLOBS = [
    b"", b"\x09\x00\x00\x00\x00", b"\x01\x05\x00\x00\x00garbage", b"\x02\x01\x00\x00\x00",
    _GOOD[:-3], _GOOD[:9],  # a truncated frame; a frame header cut short
]  # fmt: skip


@pytest.mark.parametrize("blob", BAD_BLOBS)
def test_a_blob_it_did_not_write_is_one_codec_error(blob: bytes) -> None:
    with pytest.raises(CodecError):
        decode_values(blob)
    with pytest.raises(CodecError):
        decode_times(blob)


def test_regular_channels_cost_about_a_byte_a_sample() -> None:
    rng = np.random.default_rng(1)
    t = 1765000000.0 + np.arange(1024.0)
    temperature = np.round(60 + np.cumsum(rng.normal(0, 0.05, 1024)), 1)
    segment = encode_segment(t, temperature)
    assert (len(segment.times) + len(segment.values)) / 1024 < 1.0


def test_a_block_of_channels_encodes_as_each_channel_alone() -> None:
    """What a stream folds (all channels at once) is exactly what each channel would be alone."""
    rng = np.random.default_rng(5)
    t = 1000.0 + np.arange(139.0)
    block = np.round(rng.normal(100, 5, (139, 8)), 1)
    block[:, 1] = np.nan  # a device that never answered
    block[17, 2] = -0.0
    block[:, 3] = rng.normal(0, 1, 139)  # no decimal form
    block[:, 4] = np.cumsum(rng.integers(0, 2**40, 139)).astype(float)  # a counter: wide deltas
    block[:, 5] = 7.0  # constant
    block[40, 6] = np.inf
    for j, segment in enumerate(encode_block(t, block)):
        alone = encode_segment(t, block[:, j])
        assert segment == alone, j
        assert _bits(decode_values(segment.values)) == _bits(block[:, j])


def test_many_blobs_decode_as_each_alone() -> None:
    """The batched decode (one vector pass over many segments) gives each segment's values bit
    for bit, whatever the mix: every awkward case, every integer width, repeats of one blob."""
    rng = np.random.default_rng(9)
    arrays = [np.array(a, dtype=np.float64) for a in AWKWARD]
    arrays += [np.round(rng.normal(60, 3, 1024), k) for k in range(4)]  # 1-byte and 2-byte deltas
    arrays += [np.cumsum(rng.integers(0, 2**40, 300)).astype(float), np.full(10, 2.0**52)]  # 8-byte deltas
    arrays += [np.array([-(2.0**52), 2.0**52, -(2.0**52)])]  # deltas near the int64 edge
    blobs = [encode_values(a) for a in arrays]
    blobs = blobs + blobs[::-1]
    expected = [decode_values(b) for b in blobs]
    got = codec.decode_values_many(blobs)
    assert [_bits(g) for g in got] == [_bits(e) for e in expected]
    assert codec.decode_values_many([]) == []


@pytest.mark.parametrize("blob", [*BAD_BLOBS, struct.pack("<BI", 1, 3) + codec._compress(b"\x09" + bytes(5))])
def test_a_bad_blob_among_many_is_one_codec_error(blob: bytes) -> None:
    good = encode_values(np.arange(5.0))
    with pytest.raises(CodecError):
        codec.decode_values_many([good, blob, good])
    with pytest.raises(CodecError):
        decode_values(blob)
