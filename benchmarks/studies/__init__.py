"""One-off studies: each answered one question once, and its module's docstring opens with the conclusion. None is
part of the default `booking bench` run.

- ``retention_year``: Redis memory over a simulated year, with and without the retention;
- ``outage``: searches and holds through a Redis stopped and started again (``booking bench --preset outage``);
- ``gc_site``: the garbage collector's thresholds in the engine's processes (``--set engine_gc=G0,G1,G2``);
- ``confirmation_latency``: how long after a booking its confirmation mail arrives.
"""
