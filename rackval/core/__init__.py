"""The bottom layer: error types, the YAML loader and the terminal escaping of device text that the
drivers, the simulator and the harness all use. Nothing here imports anything else of rackval's."""
