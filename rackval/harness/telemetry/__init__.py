"""Telemetry: time series (channels) of many devices sampled at a fixed rate, streamed into the
store, and the summaries plans assert on.

A channel is one time series (``pdu-a/outlet3/power_w``, ``node05/gpu2/temperature_c``,
``tor1/Ethernet8/in_errors``). What each capability offers is declared in
``rackval.harness.readers``; this package is split by job:

* ``channels``: which channels a rack or one device offers (``rack_channels``, ``gpu_channels``...);
* ``sampler``: the fixed-rate ``Sampler`` (real or virtual time, errors per device, storage) and the
  ``telemetry`` fixture's factory;
* ``series``: the summaries of a run's channels, read from their stored history (``summary``, ``time_above``,
  ``settling_time``, counter ``growth`` and ``rate``).

Plans import what they need from here (``from rackval.harness.telemetry import Channel,
gpu_channels``).
"""

from rackval.harness.readers import Channel
from rackval.harness.telemetry.channels import (
    KINDS,
    analyzer_channels,
    bmc_channels,
    cdu_channels,
    gpu_channels,
    node_coolant_channels,
    pdu_channels,
    rack_channels,
    shelf_channels,
    switch_counter_channels,
)
from rackval.harness.telemetry.sampler import Progress, Sampler, SamplerStats, print_progress, sampler_factory

__all__ = [
    "KINDS",
    "Channel",
    "Progress",
    "Sampler",
    "SamplerStats",
    "analyzer_channels",
    "bmc_channels",
    "cdu_channels",
    "gpu_channels",
    "node_coolant_channels",
    "pdu_channels",
    "print_progress",
    "rack_channels",
    "sampler_factory",
    "shelf_channels",
    "switch_counter_channels",
]
