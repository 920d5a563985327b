"""The SQS trigger end to end: real handler, moto's server for SQS/DynamoDB/Secrets Manager, the NXCloud simulator."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from .conftest import ACCESS_SECRET, Stack, message

PAGE_EXAMPLES = ["example1_image_header_body.json", "example2_url_buttons.json", "example3_copy_code.json"]


def _attrs(dlq_message: dict[str, Any]) -> dict[str, str]:
    return {k: v["StringValue"] for k, v in dlq_message.get("MessageAttributes", {}).items()}


def test_valid_batch_is_sent_once_each_and_queue_drains(stack: Stack, simulator: Any) -> None:
    ids = [stack.enqueue(message(to=f"861380000{i:04d}")) for i in range(7)]
    event, response = stack.run_batch()

    assert len(event["Records"]) == 7
    assert response == {"batchItemFailures": []}
    assert len(simulator.accepted) == 7
    assert sorted(r.body["to"] for r in simulator.accepted) == sorted(f"861380000{i:04d}" for i in range(7))
    assert stack.queue_depth() == 0
    assert stack.dlq_messages() == []
    assert len(set(ids)) == 7


@pytest.mark.parametrize(("check", "reads"), [("enforce", 1), ("off", 0)])
def test_a_batch_of_ten_new_messages_costs_three_dynamodb_requests_and_the_suppression_check_one(
    stack: Stack, simulator: Any, monkeypatch: pytest.MonkeyPatch, check: str, reads: int
) -> None:
    """One claim for the whole batch, one settlement, one turn at the business number's rate, and, with the
    suppression check on (the default), one read of the list: counted on the wire (every HTTP request, retries
    included)."""
    from collections import Counter

    import runtime

    monkeypatch.setenv("SUPPRESSION_CHECK", check)
    rt = runtime.get()
    requests: Counter[str] = Counter()

    def count(request: Any, **_: Any) -> None:
        requests[request.headers["X-Amz-Target"].decode().split(".")[-1]] += 1

    rt.delivery.store.client.meta.events.register("before-send.dynamodb", count)
    for i in range(10):
        stack.enqueue(message(to=f"861380000{i:04d}"))
    event, response = stack.run_batch()

    assert len(event["Records"]) == 10
    assert response == {"batchItemFailures": []}
    assert len(simulator.accepted) == 10
    expected = Counter({"BatchExecuteStatement": 1, "BatchWriteItem": 1, "UpdateItem": 1, "BatchGetItem": reads})
    assert requests == +expected
    assert sum(requests.values()) <= 3 + reads


def test_defaults_come_from_the_secret_and_message_values_win(stack: Stack, simulator: Any) -> None:
    stack.enqueue(message())
    stack.enqueue(message(to="8613800000001", tenant_id=99, appkey="own"))
    stack.run_batch()

    bodies = sorted((r.body for r in simulator.accepted), key=lambda b: b["to"])
    assert (bodies[0]["tenant_id"], bodies[0]["appkey"], bodies[0]["business_phone"]) == (1, "app1", "8618512348399")
    assert (bodies[1]["tenant_id"], bodies[1]["appkey"]) == (99, "own")
    assert all(b["messaging_product"] == "whatsapp" and b["type"] == "template" for b in bodies)


def test_invalid_records_are_dead_lettered_unchanged_with_reason(stack: Stack, simulator: Any) -> None:
    bad_json = '{"to": "8613800000000", "template": '
    bad_field = json.dumps(message(template={"name": "x", "language": {"code": "xx_XX"}}))
    id_json = stack.enqueue(bad_json)
    id_field = stack.enqueue(bad_field)
    _, response = stack.run_batch()

    assert response == {"batchItemFailures": []}
    assert simulator.requests == []
    dead = {_attrs(m)["source_message_id"]: m for m in stack.dlq_messages()}
    assert dead[id_json]["Body"] == bad_json
    assert dead[id_field]["Body"] == bad_field
    for source_id in (id_json, id_field):
        attrs = _attrs(dead[source_id])
        assert attrs["reason"] == "invalid_message"
        assert attrs["error_class"] == "permanent"
        assert attrs["source"] == "sqs"
        assert "failed_at" in attrs
    assert "language.code" in _attrs(dead[id_field])["error_message"]
    assert "not valid JSON" in _attrs(dead[id_json])["error_message"]
    assert stack.queue_depth() == 0


def test_permanent_rejection_is_dead_lettered_with_nxcloud_code_and_trace(stack: Stack, simulator: Any) -> None:
    simulator.add_fault(kind="code", code=22093, template="missing_template")
    source_id = stack.enqueue(message(template={"name": "missing_template", "language": {"code": "en_US"}}))
    _, response = stack.run_batch()

    assert response == {"batchItemFailures": []}
    (dead,) = stack.dlq_messages()
    attrs = _attrs(dead)
    assert attrs["source_message_id"] == source_id
    assert attrs["error_class"] == "permanent"
    assert attrs["error_code"] == "22093"
    assert attrs["reason"] == "nxcloud_code"
    assert len(attrs["nxcloud_trace_id"]) == 32
    assert attrs["idempotency_key"] == source_id
    assert json.loads(dead["Body"])["template"]["name"] == "missing_template"


def test_retryable_failure_is_reported_then_redrive_policy_dead_letters_it(stack: Stack, simulator: Any) -> None:
    simulator.add_fault(kind="http_status", status=500, to="8613800000009")
    ok_id = stack.enqueue(message())
    bad_id = stack.enqueue(message(to="8613800000009"))

    _, first = stack.run_batch()
    assert first == {"batchItemFailures": [{"itemIdentifier": bad_id}]}
    assert [r.body["to"] for r in simulator.accepted] == ["8613800000000"]
    for _ in range(2):  # maxReceiveCount is 3 in these tests
        _, again = stack.run_batch()
        assert again == {"batchItemFailures": [{"itemIdentifier": bad_id}]}
    event, _ = stack.run_batch()

    assert event["Records"] == []  # the queue's redrive policy moved it, after the 3rd receive
    (dead,) = stack.dlq_messages()
    assert dead["MessageId"] == bad_id or json.loads(dead["Body"])["to"] == "8613800000009"
    assert ok_id != bad_id
    assert len(simulator.accepted) == 1


def test_transient_failure_then_success_sends_exactly_once(stack: Stack, simulator: Any) -> None:
    simulator.add_fault(kind="http_status", status=502, times=1)
    source_id = stack.enqueue(message())
    _, first = stack.run_batch()
    _, second = stack.run_batch()

    assert first == {"batchItemFailures": [{"itemIdentifier": source_id}]}
    assert second == {"batchItemFailures": []}
    assert len(simulator.accepted) == 1
    assert stack.dlq_messages() == []


def test_dlq_write_failure_reports_the_record_instead_of_losing_it(
    stack: Stack, simulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import runtime

    monkeypatch.setenv("DLQ_URL", stack.resources.dlq_url + "-missing")
    runtime.reset()
    source_id = stack.enqueue("not json")
    _, response = stack.run_batch()

    assert response == {"batchItemFailures": [{"itemIdentifier": source_id}]}
    assert stack.queue_depth() == 1


def test_duplicate_delivery_is_suppressed_by_idempotency_key(stack: Stack, simulator: Any) -> None:
    stack.enqueue(message(), attributes={"idempotency_key": "order-42"})
    stack.enqueue(message(), attributes={"idempotency_key": "order-42"})
    stack.enqueue(message(idempotency_key="order-43"))
    stack.enqueue(message(idempotency_key="order-43"))
    for _ in range(4):  # two of the same key in one batch: the second waits (in progress) and replays later
        stack.run_batch()

    assert len(simulator.accepted) == 2
    assert "idempotency_key" not in simulator.accepted[0].body
    assert stack.queue_depth() == 0


def test_redelivered_message_is_not_sent_again(stack: Stack, simulator: Any) -> None:
    stack.enqueue(message())
    event = stack.receive()
    first = stack.invoke(event)
    second = stack.invoke(event)  # the same records again, as after a lost delete

    assert first == second == {"batchItemFailures": []}
    assert len(simulator.accepted) == 1


def test_key_reused_for_another_message_is_dead_lettered(stack: Stack, simulator: Any) -> None:
    stack.enqueue(message(idempotency_key="k1"))
    stack.run_batch()
    stack.enqueue(message(to="8613800000001", idempotency_key="k1"))
    _, response = stack.run_batch()

    assert response == {"batchItemFailures": []}
    assert len(simulator.accepted) == 1
    (dead,) = stack.dlq_messages()
    assert _attrs(dead)["reason"] == "idempotency_key_reused"


def test_unknown_outcome_dead_letters_by_default_and_never_resends(stack: Stack, simulator: Any) -> None:
    simulator.add_fault(kind="read_timeout_after_accept", times=1, hang=2)
    stack.enqueue(message())
    event = stack.receive()
    response = stack.invoke(event)
    again = stack.invoke(event)

    assert response == again == {"batchItemFailures": []}
    assert len(simulator.accepted) == 1
    dead = stack.dlq_messages()
    assert {_attrs(m)["reason"] for m in dead} == {"unknown_outcome"}
    assert _attrs(dead[0])["error_code"] == "read_timeout"


def test_unknown_outcome_is_retried_under_retry_policy(
    stack: Stack, simulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import runtime

    monkeypatch.setenv("UNKNOWN_OUTCOME_POLICY", "retry")
    runtime.reset()
    simulator.add_fault(kind="read_timeout_after_accept", times=1, hang=2)
    source_id = stack.enqueue(message())
    _, first = stack.run_batch()
    _, second = stack.run_batch()

    assert first == {"batchItemFailures": [{"itemIdentifier": source_id}]}
    assert second == {"batchItemFailures": []}
    assert len(simulator.accepted) == 2  # at least once: the documented price of this policy
    assert stack.dlq_messages() == []


def test_page_examples_are_sent_unchanged(stack: Stack, simulator: Any, page_example_texts: list[str]) -> None:
    for text in page_example_texts:
        stack.enqueue(text)
    _, response = stack.run_batch()

    assert response == {"batchItemFailures": []}
    sent = {r.body["template"]["name"]: r.body for r in simulator.accepted}
    for text in page_example_texts:
        original = json.loads(text)
        assert sent[original["template"]["name"]] == original


def test_credentials_are_fetched_once_for_a_batch_and_cached_across_invocations(
    stack: Stack, simulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aws_lambda_powertools.utilities.parameters.secrets import SecretsProvider

    fetches: list[str] = []
    real_get = SecretsProvider._get

    def counting_get(self: SecretsProvider, name: str, **kwargs: Any) -> Any:
        fetches.append(name)
        return real_get(self, name, **kwargs)

    monkeypatch.setattr(SecretsProvider, "_get", counting_get)
    for i in range(10):
        stack.enqueue(message(to=f"86138000000{i:02d}"))
    stack.run_batch()
    for i in range(5):
        stack.enqueue(message(to=f"86138000001{i:02d}"))
    stack.run_batch()

    assert len(simulator.accepted) == 15
    assert fetches == [stack.resources.secret_id]


def test_rotated_secret_is_refreshed_once_after_auth_error(stack: Stack, simulator: Any) -> None:
    stack.enqueue(message())
    stack.run_batch()  # caches the current secret
    secrets = stack.resources.client("secretsmanager")
    rotated = {
        "accessKey": "AK",
        "accessSecret": "rotated-secret",
        "tenant_id": 1,
        "appkey": "a",
        "business_phone": "8618512348399",
    }
    secrets.put_secret_value(SecretId=stack.resources.secret_id, SecretString=json.dumps(rotated))
    simulator.set_account("AK", "rotated-secret")
    stack.enqueue(message(to="8613800000001"))
    _, response = stack.run_batch()

    assert response == {"batchItemFailures": []}
    codes = [r.code for r in simulator.requests]
    assert codes == [0, 1003, 0]


def test_logs_carry_no_secret_signature_or_full_number(
    stack: Stack, simulator: Any, captured_logs: io.StringIO
) -> None:
    simulator.add_fault(kind="code", code=22091, to="8613800000001")
    simulator.add_fault(kind="http_status", status=500, to="8613800000002")
    stack.enqueue(message())
    stack.enqueue(message(to="8613800000001"))
    stack.enqueue(message(to="8613800000002"))
    stack.enqueue('{"to": "8613800000003"}')
    stack.run_batch()

    logs = captured_logs.getvalue()
    lines = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    outcomes = sorted(line.get("outcome") for line in lines if line.get("outcome"))
    assert outcomes == ["dead_lettered", "dead_lettered", "retry", "sent"]
    assert ACCESS_SECRET not in logs
    for record in simulator.requests:
        assert record.headers["sign"] not in logs
    for number in ("8613800000000", "8613800000001", "8613800000002", "8613800000003"):
        assert number not in logs
    assert "+86*******0000" in logs
    assert all(line.get("sqs_message_id") for line in lines if line.get("outcome"))
