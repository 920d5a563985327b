"""tools/sam_local/hostnet.py: what the launcher changes in SAM's Docker calls, and what it refuses."""

from __future__ import annotations

import socket

import pytest

from sam_local.hostnet import fresh_request_context, host_network_kwargs, is_loopback, refuse_non_loopback

RIE = ["/var/rapid/aws-lambda-rie", "--log-level", "error"]


def sam_kwargs(**extra: object) -> dict[str, object]:
    """What SAM CLI 1.170.0 passes to ContainerCollection.create for a function container."""
    return {
        "command": None,
        "working_dir": "/var/task",
        "ports": {"8080": ("127.0.0.1", 5123)},
        "entrypoint": list(RIE),
        "labels": {"sam.cli.container.type": "lambda"},
        **extra,
    }


def test_a_function_container_goes_on_the_host_network_with_the_emulator_on_loopback() -> None:
    changed = host_network_kwargs(sam_kwargs(), runtime_api_port=6001)

    assert changed["network_mode"] == "host"
    assert "ports" not in changed
    assert changed["entrypoint"] == [
        RIE[0],
        "--runtime-interface-emulator-address",
        "127.0.0.1:5123",
        "--runtime-api-address",
        "127.0.0.1:6001",
        *RIE[1:],
    ]


def test_other_containers_are_left_alone() -> None:
    build = {"command": ["mv"], "labels": {"sam.cli.container.type": "build"}, "ports": {"9000": 9000}}

    assert host_network_kwargs(build, runtime_api_port=1) is build


def test_an_unexpected_function_container_is_refused_rather_than_left_on_the_bridge() -> None:
    with pytest.raises(RuntimeError, match="unexpected container arguments"):
        host_network_kwargs(sam_kwargs(entrypoint=["/bin/sh"]), runtime_api_port=1)
    with pytest.raises(RuntimeError):
        host_network_kwargs(sam_kwargs(ports={}), runtime_api_port=1)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.53", True),
        ("::1", True),
        ("localhost", True),
        (b"localhost", True),
        ("10.255.255.53", False),
        ("172.17.0.1", False),
        ("pypi.org", False),
        ("sts.us-east-1.amazonaws.com", False),
        (None, False),
    ],
)
def test_is_loopback(host: object, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_the_audit_hook_refuses_lookups_and_connections_beyond_loopback(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as inet, socket.socket(socket.AF_UNIX) as unix:
        refuse_non_loopback("socket.connect", (inet, ("127.0.0.1", 1)))
        refuse_non_loopback("socket.connect", (unix, "/var/run/docker.sock"))
        refuse_non_loopback("socket.getaddrinfo", ("localhost", 80, 0, 0, 0))
        refuse_non_loopback("open", ("/etc/hosts", "r", 0))
        with pytest.raises(ConnectionRefusedError):
            refuse_non_loopback("socket.connect", (inet, ("52.94.0.1", 443)))
        with pytest.raises(ConnectionRefusedError):
            refuse_non_loopback("socket.getaddrinfo", ("pypi.org", 443, 0, 0, 0))

    assert capsys.readouterr().err.count("sam-hostnet: refused") == 2


def test_each_request_context_gets_its_own_id_and_time() -> None:
    first, second = fresh_request_context((), {}), fresh_request_context((), {"stage": "v1"})

    assert first["request_id"] != second["request_id"]
    assert second["stage"] == "v1"
    assert isinstance(first["request_time_epoch"], int) and first["request_time"].endswith(" +0000")
    assert fresh_request_context((), {"request_id": "given"})["request_id"] == "given"
    assert fresh_request_context(("r", "a", "/p", "POST", "positional-id"), {}) == {}
