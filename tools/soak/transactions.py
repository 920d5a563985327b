"""A fix for moto's ``TransactWriteItems``, used by the soak's moto and by the bench's (a test double's cost, not
the function's)."""

from __future__ import annotations

from typing import Any


def roll_back_transactions_by_item() -> None:
    """moto's ``TransactWriteItems`` backs up each table it names with ``copy.deepcopy`` before writing, once per item
    of the transaction, to restore it if the transaction is cancelled. The function claims a whole batch in one
    transaction, so a soak's claim deep-copied the idempotency table ten times: quadratic in the table's size (at
    2,000 messages moto spent most of its time there, invocations ran past their deadline and were killed, and the
    10,000-message run could not finish). Here the tables are not copied; the items the transaction names are backed
    up instead and put back, exactly, when it fails: the same state afterwards, in a time that does not grow with
    the table. (Stream records of a cancelled transaction's writes are kept; no table written in a transaction here
    has a stream.)
    """
    import copy as _copy

    from moto.dynamodb import models as dynamodb
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table

    class _NoTableCopy:
        @staticmethod
        def deepcopy(value: Any, memo: Any = None) -> Any:
            return value if isinstance(value, Table) else _copy.deepcopy(value, memo)

    dynamodb.copy = _NoTableCopy  # type: ignore[assignment]
    original = dynamodb.DynamoDBBackend.transact_write_items

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        backups = [b for b in (_backup(self, entry) for entry in transact_items) if b is not None]
        try:
            original(self, transact_items)
        except Exception:
            for table, hash_value, range_value, item in reversed(backups):
                _restore(table, hash_value, range_value, item)
            raise

    def _backup(backend: Any, entry: dict[str, Any]) -> tuple[Any, Any, Any, Any] | None:
        op = next(iter(entry.values()), None)
        table = backend.tables.get(op.get("TableName")) if isinstance(op, dict) else None
        key = (op.get("Item") if "Item" in op else op.get("Key")) if table is not None else None
        if table is None or not isinstance(key, dict) or table.hash_key_attr not in key:
            return None
        hash_value = DynamoType(key[table.hash_key_attr])
        if table.range_key_attr is None:
            return table, hash_value, None, _copy.deepcopy(table.items.get(hash_value))
        if table.range_key_attr not in key:
            return None
        range_value = DynamoType(key[table.range_key_attr])
        return table, hash_value, range_value, _copy.deepcopy(table.items.get(hash_value, {}).get(range_value))

    def _restore(table: Any, hash_value: Any, range_value: Any, item: Any) -> None:
        if range_value is None:
            if item is None:
                table.items.pop(hash_value, None)
            else:
                table.items[hash_value] = item
            return
        bucket = table.items.setdefault(hash_value, {})
        if item is None:
            bucket.pop(range_value, None)
        else:
            bucket[range_value] = item
        if not bucket:
            table.items.pop(hash_value, None)

    dynamodb.DynamoDBBackend.transact_write_items = transact_write_items
