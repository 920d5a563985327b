"""make run's view of the suppression entries the run created: masked numbers, one aligned line each."""

from __future__ import annotations

from local_stack.suppression_entries import entry_lines
from nxcloud_wa.suppressions import Reason, Scope, Suppression

AT = "2027-01-15T08:00:00.000+00:00"


def test_each_entry_is_a_line_with_its_numbers_masked() -> None:
    entries = [
        Suppression("85291234867", "8613612345759", Scope.ALL, Reason.UNDELIVERABLE, "131026", AT, 1_802_592_000),
        Suppression("8618512348399", "8613612349759", Scope.MARKETING, Reason.OPTED_OUT, "Stop promotions", AT),
    ]

    heading, header, *lines = entry_lines(entries)

    assert heading.startswith("suppression entries created during the run (2;")
    assert header.split() == ["business", "number", "recipient", "scope", "reason", "source", "applies"]
    assert lines[0].split()[:5] == ["+852****4867", "+86*******5759", "all", "undeliverable", "131026"]
    assert lines[0].endswith("until 2027-02-14 08:00 UTC")
    assert lines[1].endswith("until removed")
    assert header.index("recipient") == lines[0].index("+86*******5759") == lines[1].index("+86*******9759")
    text = "\n".join(lines)
    assert "8613612345759" not in text and "8618512348399" not in text


def test_a_run_that_created_none_says_so() -> None:
    assert entry_lines([]) == ["suppression entries created during the run: none"]


def test_the_frequency_caps_counts_in_the_same_table_are_no_entries() -> None:
    """The cap's ``cap#`` items share the list's table (docs/audience.md); the run's view and the soak's watch read
    the table whole, so they must leave them out, as the index does."""
    import boto3
    from moto import mock_aws

    from local_stack.suppression_entries import all_entries
    from nxcloud_wa.suppressions import encode, encode_sends

    class Local:
        suppressions_table = "suppressions"

        @staticmethod
        def client(name: str) -> object:
            return boto3.client(name, region_name="us-east-1")

    entry = Suppression("8618512348399", "8613612349759", Scope.MARKETING, Reason.OPTED_OUT, "Stop promotions", AT)
    with mock_aws():
        dynamodb = Local.client("dynamodb")
        dynamodb.create_table(  # type: ignore[attr-defined]
            TableName=Local.suppressions_table,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        dynamodb.put_item(TableName=Local.suppressions_table, Item=encode(entry))  # type: ignore[attr-defined]
        count = encode_sends(entry.key, {"0123456789abcdef": 1_800_000_000}, 1_800_086_400)
        dynamodb.put_item(TableName=Local.suppressions_table, Item=count)  # type: ignore[attr-defined]

        assert all_entries(Local()) == [entry]  # type: ignore[arg-type]
