"""Device drivers for rackval: transports for each wire protocol and one driver per device family.

Drivers are synchronous and thread-safe per instance; fan-out across devices happens in the
harness with one driver instance per device.
"""
