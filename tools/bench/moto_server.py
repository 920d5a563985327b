"""moto's server for the bench: ``python -m bench.moto_server`` takes ``moto.server``'s arguments.

With two fixes. ``soak.transactions``: moto's ``TransactWriteItems`` deep-copies each table it names, once per item,
to roll back a cancelled transaction. The function claims a batch in one transaction, so against stock moto every
batch cost more than the one before as the bench's tables grew (~10 ms of moto time per batch per thousand items),
and the later sections measured moto, not the function. Rolled back item by item, the same transactions leave the
same state in a time that does not grow with the table. ``local_stack.moto_fixes``: a PartiQL ``INSERT`` refuses an
existing key, as DynamoDB does, and costs the same however large the table (as in every moto of the project).
"""

from __future__ import annotations

import sys

from moto.server import main
from soak.transactions import roll_back_transactions_by_item

from local_stack.moto_fixes import refuse_duplicate_partiql_inserts

if __name__ == "__main__":
    roll_back_transactions_by_item()
    refuse_duplicate_partiql_inserts()
    sys.exit(main(sys.argv[1:]))
