"""The rackval pytest plugin (the ``pytest11`` entry point ``rackval.harness.plugin``).

It is made of four modules, one job each; pytest registers the three that hold hooks or fixtures
through ``pytest_plugins`` below, so loading this package loads the whole plugin (and
``-p no:rackval`` none of it):

* ``options``: the command-line options (``--rack``, ``--spec``, ``--sim-nodes``...);
* ``run``: the session's run: rack, spec, store and simulated rack built on first use, closed
  with the report at the end;
* ``fixtures``: ``rack``, ``inventory``, ``spec``, ``safety``, ``telemetry``, ``clock``,
  ``sim_faults``, ``measure``;
* ``hooks``: device test arguments (``pdu_name``, ``node_name``...) and each test's outcome into
  the store.

``run`` keeps the run's root causes through ``causes`` (the DeviceHealth the rack's drivers go
through, and failed tests grouped by root cause in the store and the terminal summary).
"""

# fixtures before hooks: hooks imports fixtures, and pytest wants to import each plugin module itself
pytest_plugins = [
    "rackval.harness.plugin.options",
    "rackval.harness.plugin.fixtures",
    "rackval.harness.plugin.hooks",
]
