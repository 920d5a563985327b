"""The outbox: what a dead letter's attributes say, and how entries are grouped into SendMessageBatch requests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from nxcloud_wa.error_codes import KEY_REUSED
from nxcloud_wa.failures import failure
from nxcloud_wa.sqs import sqs_text, string_attributes
from outbox import SQS_BATCH_BYTES, DeadLetter, PutBackCopy, _requests, send_all


def letter(size: int = 10) -> DeadLetter:
    return DeadLetter.of("x" * size, failure(KEY_REUSED), source="sqs", source_id="m", idempotency_key="k")


def test_attributes_say_why_and_where_and_leave_empty_values_out() -> None:
    values = {k: v["StringValue"] for k, v in letter().attributes.items()}
    assert values.keys() == {
        "reason",
        "error_class",
        "error_code",
        "error_message",
        "source",
        "source_message_id",
        "idempotency_key",
        "failed_at",
    }  # no nxcloud_trace_id: there was none
    assert (values["reason"], values["error_class"], values["error_code"]) == (
        "idempotency_key_reused",
        "permanent",
        "idempotency_key_reused",
    )


def test_characters_sqs_refuses_are_escaped() -> None:
    assert sqs_text("a\x08b\ufffe") == "a\\u0008b\\ufffe"
    assert sqs_text("中文 ✓") == "中文 ✓"


def test_letters_are_grouped_ten_at_a_time_and_within_the_batch_size_limit() -> None:
    assert [len(group) for group in _requests([letter() for _ in range(23)])] == [10, 10, 3]
    big = SQS_BATCH_BYTES // 3
    assert [len(group) for group in _requests([letter(big) for _ in range(5)])] == [2, 2, 1]


@pytest.fixture
def sqs() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("sqs", region_name="us-east-1")


def test_every_letter_gets_its_own_result(sqs: Any) -> None:
    url = sqs.create_queue(QueueName="dlq")["QueueUrl"]
    results = send_all(sqs, url, [letter() for _ in range(12)])
    assert len(results) == 12 and all(isinstance(r, str) for r in results)
    missing = send_all(sqs, url + "-missing", [letter()])
    assert len(missing) == 1 and isinstance(missing[0], Exception)


def test_an_entry_sqs_refuses_fails_alone(sqs: Any) -> None:
    url = sqs.create_queue(QueueName="small", Attributes={"MaximumMessageSize": "1024"})["QueueUrl"]
    results = send_all(sqs, url, [letter(), letter(4096), letter()])
    assert isinstance(results[0], str) and isinstance(results[2], str)
    assert isinstance(results[1], Exception) and "1024 bytes" in str(results[1])


def test_the_refused_characters_are_exactly_the_complement_of_what_sqs_allows() -> None:
    """Every code point, against SQS's rule as its documentation writes it (the pattern is its complement, written
    out so that it compiles quickly at cold start)."""
    from nxcloud_wa.sqs import NOT_SQS_TEXT

    def allowed(c: int) -> bool:
        return c in (0x9, 0xA, 0xD) or 0x20 <= c <= 0xD7FF or 0xE000 <= c <= 0xFFFD or 0x10000 <= c <= 0x10FFFF

    wrong = [c for c in range(0x110000) if (NOT_SQS_TEXT.match(chr(c)) is None) != allowed(c)]

    assert wrong == []


class RecordingSQS:
    """Takes every batch and remembers its entries."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.entries += Entries
        return {"Successful": [{"Id": e["Id"], "MessageId": f"id-{e['Id']}"} for e in Entries]}


def test_a_put_back_copy_is_delayed_and_a_dead_letter_is_not() -> None:
    sqs = RecordingSQS()
    copy = PutBackCopy("{}", string_attributes({"throttled": "1"}), delay_seconds=7)

    assert send_all(sqs, "q", [copy, letter()]) == ["id-0", "id-1"]
    assert [e.get("DelaySeconds") for e in sqs.entries] == [7, None]


def test_every_attribute_is_a_string_with_empty_values_left_out() -> None:
    assert string_attributes({"a": "x\x08", "b": None, "c": ""}) == {
        "a": {"DataType": "String", "StringValue": "x\\u0008"}
    }
