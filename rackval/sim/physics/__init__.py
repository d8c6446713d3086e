"""The parts of the simulated rack's model, composed by ``rackval.sim.model.RackModel``.

One shared ``state.RackState`` (the devices, the virtual time, the event queue) and one part per
seam of the physics, each owning its computations over that state: ``power`` (feeds, outlets,
PSUs, node power, inrush, capping), ``thermal`` (GPU temperatures, throttling, fans),
``sequencing`` (BMC boot, host power, overload), ``network`` (links, LLDP peers, counters),
``inventory`` (firmware; the SEL is in the state), ``cooling`` (a liquid design's CDU loop, cold
plates, coolant temperatures, leaks) and ``shelves`` (a busbar design's rectifiers, busbar and
BBUs), whose equipment is data in ``equipment``. ``topology`` builds the devices from a
``RackSize``; ``parts.ModelParts`` assembles the parts and advances time; ``injected`` keeps the
injected faults, whose effects the catalogue (``rackval.sim.faults``) declares.
"""
