"""``sam`` with every container on the host's network and every connection of SAM's own process to loopback.

Run it with the SAM CLI's interpreter, exactly like ``sam``:

    .venv-sam/bin/python tools/sam_local/hostnet.py local invoke -e events/x.json --skip-pull-image ...

Why it exists (SAM CLI 1.170.0, ``samcli/local/docker/container.py``): ``--docker-network host`` only means "connect
no extra network". The function's container is still created on Docker's default bridge (172.17.0.0/16) with the
runtime interface emulator's port 8080 published on 127.0.0.1, and the image SAM derives from the base image (the
emulator and the layers added) is built on the bridge too. This launcher runs the unmodified SAM CLI with two changes
to the Docker SDK calls it makes:

* a Lambda container (label ``sam.cli.container.type=lambda``) gets ``network_mode=host`` and no published port; the
  emulator listens on ``127.0.0.1:<the port SAM picked>`` and serves its runtime API on another free loopback port,
  so that concurrent containers (``start-api``) do not collide on 8080/9001;
* an image build gets ``network_mode=host``.

It also refuses, in this process, any name lookup or connection that is not loopback or a Unix socket (an audit hook;
each refusal is reported on stderr as ``sam-hostnet: refused ...``), and skips SAM's weekly "newer version?" request to
pypi.org. Set ``AWS_ENDPOINT_URL_STS`` to a closed loopback port: SAM asks STS for an account id at start-up.

And it gives each ``start-api`` request its own ``requestContext.requestId`` and time, as API Gateway does: SAM CLI
1.170.0 gives all requests of a process the same ones (see :func:`fresh_request_context`).
"""

from __future__ import annotations

import ipaddress
import socket
import sys
import time
import uuid
from typing import Any, Final

LAMBDA_LABEL: Final = "sam.cli.container.type"
RIE_PORT: Final = "8080"
LOCAL_NAMES: Final = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
REFUSED_PREFIX: Final = "sam-hostnet: refused"


def is_loopback(host: object) -> bool:
    """True for 127.0.0.0/8, ::1 and the names of the local host."""
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    if host.lower() in LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def refuse_non_loopback(event: str, args: tuple[Any, ...]) -> None:
    """Audit hook: a lookup of another name or a connection to another address raises, and is reported."""
    if event == "socket.getaddrinfo":
        host = args[0]
        if host is not None and not is_loopback(host):
            _refuse(f"name lookup of {host!r}")
    elif event == "socket.connect":
        sock, address = args
        if getattr(sock, "family", None) != socket.AF_UNIX and not is_loopback(address[0]):
            _refuse(f"connection to {address!r}")


def _refuse(what: str) -> None:
    sys.stderr.write(f"{REFUSED_PREFIX} {what} (only 127.0.0.1 is allowed)\n")
    sys.stderr.flush()
    raise ConnectionRefusedError(f"{REFUSED_PREFIX} {what}")


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def host_network_kwargs(kwargs: dict[str, Any], runtime_api_port: int) -> dict[str, Any]:
    """SAM's arguments for a Lambda container, rewritten for the host's network (other containers: unchanged)."""
    if (kwargs.get("labels") or {}).get(LAMBDA_LABEL) != "lambda":
        return kwargs
    changed = dict(kwargs)
    ports = changed.pop("ports", None) or {}
    published = ports.get(RIE_PORT) or ports.get(int(RIE_PORT))
    entrypoint = list(changed.get("entrypoint") or [])
    if not published or not entrypoint or not entrypoint[0].endswith("aws-lambda-rie"):
        raise RuntimeError(f"sam-hostnet: unexpected container arguments from SAM: {entrypoint!r} {ports!r}")
    host_port = published[1] if isinstance(published, tuple) else published
    entrypoint[1:1] = [
        "--runtime-interface-emulator-address",
        f"127.0.0.1:{host_port}",
        "--runtime-api-address",
        f"127.0.0.1:{runtime_api_port}",
    ]
    changed.update(entrypoint=entrypoint, network_mode="host")
    return changed


def fresh_request_context(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments for SAM's ``RequestContext`` with this request's own id and time (unless given).

    SAM CLI 1.170.0 computes ``request_id``, ``request_time_epoch`` and ``request_time`` in default arguments, so every
    request of a ``start-api`` process carries the same ``requestContext.requestId`` and time (aws/aws-sam-cli#9279).
    API Gateway gives each request its own, and this function keys idempotency on it.
    """
    if len(args) > 4:  # request_id passed by position: leave the call as it is
        return kwargs
    now = time.time_ns()
    fresh = {
        "request_id": str(uuid.uuid4()),
        "request_time_epoch": now // 1_000_000,
        "request_time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now / 1e9)),
    }
    return {**fresh, **kwargs}


def install() -> None:
    """Patch the Docker SDK and SAM's version check; add the audit hook."""
    import docker.api.build
    import docker.models.containers
    from samcli.lib.utils import version_checker
    from samcli.local.events import api_event

    create = docker.models.containers.ContainerCollection.create
    build = docker.api.build.BuildApiMixin.build

    def create_on_host(self: Any, image: str, command: Any = None, **kwargs: Any) -> Any:
        return create(self, image, command, **host_network_kwargs(kwargs, free_loopback_port()))

    def build_on_host(self: Any, *args: Any, **kwargs: Any) -> Any:
        kwargs["network_mode"] = "host"
        return build(self, *args, **kwargs)

    context_init = api_event.RequestContext.__init__

    def context_per_request(self: Any, *args: Any, **kwargs: Any) -> None:
        context_init(self, *args, **fresh_request_context(args, kwargs))

    api_event.RequestContext.__init__ = context_per_request
    docker.models.containers.ContainerCollection.create = create_on_host
    docker.api.build.BuildApiMixin.build = build_on_host
    version_checker.fetch_and_compare_versions = lambda: None
    sys.addaudithook(refuse_non_loopback)


def main() -> int:
    install()
    from samcli.cli.main import cli

    sys.argv[0] = "sam"
    return int(cli() or 0)


if __name__ == "__main__":
    sys.exit(main())
