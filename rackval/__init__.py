"""rackval: a hardware-in-the-loop validation harness for prototype AI data-center racks.

Layers, each importing only those below it:

- ``rackval.core``: what every layer shares and that depends on nothing of ours (error types, the
  YAML loader that reports file, line and field);
- ``rackval.drivers``: capabilities (Protocols and record types), transports, device drivers and
  the driver registry;
- ``rackval.sim``: the simulated rack (one physical model on a virtual clock behind real protocol
  servers), which serves what the drivers read;
- ``rackval.harness``: rack and spec files, measurements, the safety gate, telemetry, the results
  store, reports, the pytest plugin and the CLI, on top.
"""

__version__ = "0.1.0"
