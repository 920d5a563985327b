"""tools/sam_local/docker_events.py: the rules that say every container stayed on the host's network."""

from __future__ import annotations

from typing import Any

from sam_local.docker_events import judge


def container(action: str, cid: str, image: str = "samcli/lambda-python:3.13-arm64-abc") -> dict[str, Any]:
    return {"Type": "container", "Action": action, "Actor": {"ID": cid, "Attributes": {"image": image}}}


def connect(cid: str, network: str) -> dict[str, Any]:
    attributes = {"container": cid, "name": network, "type": network}
    return {"Type": "network", "Action": "connect", "Actor": {"ID": "n1", "Attributes": attributes}}


def test_containers_on_the_host_network_pass() -> None:
    verdict = judge(
        [container("create", "c1"), connect("c1", "host"), container("start", "c1"), container("die", "c1")]
    )

    assert verdict.violations == []
    assert verdict.counts["container start"] == 1
    assert "1 containers started, 1 connected to the host network, 0 pulls" in verdict.summary()


def test_a_container_on_the_bridge_is_a_violation() -> None:
    verdict = judge([container("create", "c2"), connect("c2", "bridge"), container("start", "c2")])

    assert len(verdict.violations) == 2  # connected to bridge, and started off the host network
    assert "connected to network 'bridge'" in verdict.violations[0]


def test_a_container_that_starts_without_any_network_event_is_a_violation() -> None:
    assert judge([container("start", "c3")]).violations == [
        "container c3 (samcli/lambda-python:3.13-arm64-abc) started off the host network"
    ]


def test_pulls_and_new_networks_are_violations() -> None:
    pull = {"Type": "image", "Action": "pull", "Actor": {"ID": "public.ecr.aws/lambda/python:3.13-arm64"}}
    create = {"Type": "network", "Action": "create", "Actor": {"ID": "n2", "Attributes": {"name": "sam-net"}}}

    assert judge([pull, create]).violations == [
        "image pulled: public.ecr.aws/lambda/python:3.13-arm64",
        "network 'sam-net' created",
    ]
