"""``make soak``: the local stack under injected faults, every message followed to its end, and a ledger.

See ``python -m soak --help`` and README's "Fault-injection soak" section.
"""
