"""`sam local invoke` (the built artifact in a Lambda runtime container) and `make invoke` (the handler in-process)
give the same outcome, the same response body shape and the same AWS calls for the same event.

Needs Docker, the x86_64 base image (`make lambda-images`) and the x86_64 build (`make sam-local` makes both); skipped
without them, as in `make test` on a machine without Docker. `make sam-local` checks every event on both
architectures; this test keeps the comparison in the test suite, on x86_64 (no qemu) and the samples that exercise
the most: a batch with every per-record outcome, an API request invoked twice, one delivered from the queue, and the
other two functions' samples (a webhook callback stored, a stream batch published; `sam local invoke WebhookFunction`
and `sam local invoke PublisherFunction`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lambda_image.build import ARCHES
from lambda_image.docker import daemon_answers, image_label
from local_stack.stack import LocalStack
from sam_local.events import ONE_OF_EACH_PATH, EventRunner, manifest
from sam_local.outcomes import problems, summarize
from sam_local.paths import MakeInvoke, SamLocalInvoke

ROOT = Path(__file__).resolve().parents[2]
BUILT_X86_64 = ROOT / ".aws-sam" / "build-x86_64" / "template.yaml"
MANIFEST = manifest()

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not daemon_answers(), reason="no Docker daemon (make sam-local prepares one: docs/sam-local.md)"
    ),
    pytest.mark.skipif(
        image_label(ARCHES["x86_64"].tag, "x") is None or not BUILT_X86_64.is_file(),
        reason="no x86_64 base image or build yet (make sam-local SAM_LOCAL_ARCHES=x86_64 makes both)",
    ),
]


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EventRunner]:
    with LocalStack() as stack:
        yield EventRunner(stack, tmp_path_factory.mktemp("parity"))


@pytest.mark.parametrize("name", ONE_OF_EACH_PATH)
def test_sam_local_invoke_and_make_invoke_agree(name: str, runner: EventRunner) -> None:
    spec = MANIFEST[name]
    in_container, invoked = runner.observe(name, spec, SamLocalInvoke(BUILT_X86_64, "x86_64"))
    in_process, _ = runner.observe(name, spec, MakeInvoke())

    assert [i.failure for i in invoked if i.failure] == []
    container, process = summarize(spec, in_container), summarize(spec, in_process)
    assert problems(spec, container) == []
    assert container == process
    calls = in_container.aws_calls + (in_container.final.aws_calls if in_container.final else [])
    assert calls and all("exec-env/AWS_Lambda_python3.13" in c.user_agent for c in calls)
