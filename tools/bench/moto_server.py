"""moto's server for the bench: ``python -m bench.moto_server`` takes ``moto.server``'s arguments.

With the project's fix (``local_stack.moto_fixes``, as in every moto of the project): a PartiQL ``INSERT`` refuses
an existing key, as DynamoDB does, and costs the same however large the table.
"""

from __future__ import annotations

import sys

from moto.server import main

from local_stack.moto_fixes import refuse_duplicate_partiql_inserts

if __name__ == "__main__":
    refuse_duplicate_partiql_inserts()
    sys.exit(main(sys.argv[1:]))
