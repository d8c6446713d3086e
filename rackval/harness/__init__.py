"""The pytest side of rackval: plugin, rack and spec files, measurements, results store, reports."""
