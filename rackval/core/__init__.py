"""The bottom layer: error types and the YAML loader that the drivers, the simulator and the harness
all use. Nothing here imports anything else of rackval's."""
