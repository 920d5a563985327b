"""``make bench``: cold start, handler overhead, batch concurrency and memory, measured side by side on this machine.

Every figure is printed next to the one it is compared with (the boto3 import floor, the simulator's latency, the
function's MemorySize), so what matters is the ratio, not the machine. Nothing is asserted: the figures are read,
and README shows the latest ones. ``python -m bench --help`` lists the knobs.

This package must stay cheap to import: :mod:`bench.child` runs inside the fresh interpreters whose start-up is
being timed.
"""
