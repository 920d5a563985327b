"""Where moto, the project's AWS double, does not do what AWS documents, and the project depends on the difference.

Every process in which moto answers for the project installs these fixes: the local stack's server
(:class:`local_stack.aws.MotoServer`, so also the integration tests, ``make run`` and ``sam local``), the soak's and
the bench's moto processes (``soak.aws_service.service_main``, ``bench.moto_server``), and the unit tests' in-process
DynamoDB (``tests/unit/conftest.py``). Each fix is installed once per process (a second call does nothing) and checks
first that the moto internals it replaces are still there: a moto upgrade that moves them fails at install time
instead of silently bringing back the behaviour the fix removed.
"""

from __future__ import annotations

import inspect
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final

MOTO_CHECKED: Final = "5.2.5"
"""The moto version the fixes were written and checked against (requirements/dev.txt)."""
DUPLICATE_ITEM_MESSAGE: Final = "Duplicate primary key exists in table"
"""DynamoDB's message for an ``INSERT`` on an existing key (``DuplicateItemException``, and a ``BatchExecuteStatement``
entry's ``Error.Message``)."""
INSERT: Final = re.compile(r'\s*INSERT\s+INTO\s+("(?:[^"]|"")+"|[^\s"]+)\s+VALUE\s+(.*)', re.IGNORECASE | re.DOTALL)
"""``INSERT INTO table VALUE item``, the only form of PartiQL ``INSERT`` DynamoDB has (one item per statement)."""


def refuse_duplicate_partiql_inserts() -> None:
    """Make moto's PartiQL ``INSERT`` refuse an existing key, as DynamoDB does.

    DynamoDB ("PartiQL insert statements for DynamoDB"): an ``INSERT`` whose primary key is already in the table fails
    with ``DuplicateItemException`` (HTTP 400, message :data:`DUPLICATE_ITEM_MESSAGE`) and writes nothing; in a
    ``BatchExecuteStatement`` that statement's response carries ``Error: {"Code": "DuplicateItem", "Message": ...}``
    and the others run ("BatchStatementError": ``DuplicateItem`` is one of its codes). moto 5.2.5 instead overwrites
    the item (``DynamoDBBackend.execute_statement`` stores every row the parser calls new with ``put_item``), so a
    claim made by ``INSERT`` could not be proved at-most-once against it.

    Here ``execute_statement`` takes over ``INSERT`` statements only (``SELECT``, ``UPDATE`` and ``DELETE`` still go to
    moto's): the item is parsed with moto's own parser and written by moto's own conditional put, on the condition
    that its key does not exist, under a lock (moto's server answers requests on several threads; two ``INSERT`` of
    one key must not both find it free); a failed condition becomes ``DuplicateItemException``. moto's
    ``batch_execute_statement`` already runs each statement through ``execute_statement`` and reports a statement's
    exception as ``{"Code": e.name, "Message": e.message}``, so the exception's ``name`` is the batch code. Two more
    reasons not to leave the write to moto's ``INSERT``: it cannot bind ``Parameters`` (``VALUE {'id': ?}`` fails in
    its serializer, and in ``partiql.get_query_metadata``, which the batch calls first: replaced here for ``INSERT``),
    which are bound here in order, as DynamoDB binds them; and it copies every item of every table into the parser's
    input for each statement (125 ms per ``INSERT`` beside 5,000 items), where a soak's claims would spend their time.

    Not fixed: ``ExecuteTransaction`` (moto runs its statements one by one, not atomically; a duplicate there raises
    ``DuplicateItemException`` instead of cancelling), and a duplicate's ``Error`` carries no ``Item`` (DynamoDB
    documents ``Item`` for a failed condition check under ``ReturnValuesOnConditionCheckFailure``, not for
    ``DuplicateItem``).
    """
    from moto.dynamodb.exceptions import ConditionalCheckFailed, DynamodbException
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.parsing import partiql
    from py_partiql_parser._internal.utils import QueryMetadata

    original_execute = DynamoDBBackend.execute_statement
    if getattr(original_execute, "_refuses_duplicate_inserts", False):
        return
    _require_moto_internals()
    original_metadata = partiql.get_query_metadata
    lock = threading.Lock()

    class DuplicateItemException(DynamodbException):
        def __init__(self) -> None:
            super().__init__("com.amazonaws.dynamodb.v20120810#DuplicateItemException", DUPLICATE_ITEM_MESSAGE)

        @property
        def name(self) -> str:  # the BatchStatementError code (moto's batch_execute_statement reports e.name)
            return "DuplicateItem"

    def execute_statement(self: Any, statement: str, parameters: list[dict[str, Any]]) -> list[dict[str, Any]]:
        parts = _insert_parts(statement)
        if parts is None:
            return original_execute(self, statement, parameters)
        table = self.get_table(parts[0])
        item = _bound_item(parts[1], parameters or [])
        try:
            with lock:
                table.put_item(
                    item,
                    condition_expression="attribute_not_exists(#key)",
                    expression_attribute_names={"#key": table.hash_key_attr},
                )
        except ConditionalCheckFailed:
            raise DuplicateItemException() from None
        return []

    def get_query_metadata(statement: str) -> Any:
        parts = _insert_parts(statement)
        return original_metadata(statement) if parts is None else QueryMetadata(tables={parts[0]: parts[0]})

    execute_statement._refuses_duplicate_inserts = True  # type: ignore[attr-defined]
    DynamoDBBackend.execute_statement = execute_statement  # type: ignore[method-assign]
    partiql.get_query_metadata = get_query_metadata


def _insert_parts(statement: str) -> tuple[str, str] | None:
    """The table's name and the item's text of an ``INSERT``; ``None`` for any other statement (moto's to run)."""
    match = INSERT.fullmatch(statement)
    if match is None:
        return None
    name, document = match.groups()
    return (name[1:-1].replace('""', '"') if name.startswith('"') else name), document.strip()


def _bound_item(document: str, parameters: list[dict[str, Any]]) -> dict[str, Any]:
    """The item of an ``INSERT`` in DynamoDB's JSON, each ``?`` bound to the next of ``parameters`` in text order."""
    from moto.dynamodb.exceptions import MockValidationException
    from py_partiql_parser._internal.json_parser import JsonParser
    from py_partiql_parser._internal.utils import Variable, serializer

    def bind(value: Any, values: Iterator[dict[str, Any]]) -> dict[str, Any]:
        if isinstance(value, Variable) and value.value == "?":
            return next(values)
        if isinstance(value, Mapping):
            return {"M": {name: bind(v, values) for name, v in value.items()}}
        if isinstance(value, list):
            return {"L": [bind(v, values) for v in value]}
        return dict(serializer.serialize(value))

    parsed = next(JsonParser.parse(document), None)
    if not isinstance(parsed, Mapping) or not parsed:
        raise MockValidationException("Statement wasn't well formed: INSERT INTO table VALUE {item}")
    values = iter(parameters)
    try:
        item = {name: bind(value, values) for name, value in parsed.items()}
    except StopIteration:
        item = {}
    if not item or next(values, None) is not None:
        raise MockValidationException("Number of parameters in request and statement don't match.")
    return item


def _require_moto_internals() -> None:
    """Fail now, naming what is missing, if moto no longer has what :func:`refuse_duplicate_partiql_inserts` uses."""
    import moto
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import Table
    from moto.dynamodb.parsing import partiql

    def arguments(function: Callable[..., Any]) -> list[str]:
        return list(inspect.signature(function).parameters)

    def batch_source() -> str:
        return inspect.getsource(DynamoDBBackend.batch_execute_statement)

    checks: dict[str, Callable[[], bool]] = {
        "DynamoDBBackend.execute_statement(self, statement, parameters)": lambda: (
            arguments(DynamoDBBackend.execute_statement) == ["self", "statement", "parameters"]
        ),
        "partiql.get_query_metadata(statement)": lambda: arguments(partiql.get_query_metadata) == ["statement"],
        "DynamoDBBackend.batch_execute_statement running each statement through partiql.get_query_metadata and "
        "self.execute_statement, and reporting its error as e.name and e.message": lambda: all(
            text in batch_source()
            for text in ("partiql.get_query_metadata(", "self.execute_statement(", '"Code": e.name', "e.message")
        ),
        "DynamoDBBackend.get_table(table_name)": lambda: arguments(DynamoDBBackend.get_table) == ["self", "table_name"],
        "Table.put_item(item_attrs, condition_expression=, expression_attribute_names=)": lambda: (
            {"item_attrs", "condition_expression", "expression_attribute_names"} <= set(arguments(Table.put_item))
        ),
    }
    missing = [what for what, holds in checks.items() if not _holds(holds)]
    if missing:
        raise RuntimeError(
            f"moto {moto.__version__} no longer has {'; '.join(missing)}. local_stack.moto_fixes was checked against "
            f"moto {MOTO_CHECKED}: re-check refuse_duplicate_partiql_inserts against this moto"
        )


def _holds(check: Callable[[], bool]) -> bool:
    try:
        return check()
    except (AttributeError, OSError, TypeError, ValueError):
        return False
