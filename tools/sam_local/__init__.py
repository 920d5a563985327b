"""``make sam-local``: the built function in a real Lambda runtime container, through the real ``sam local``.

``sam local invoke`` on every sample event of ``events/`` and ``sam local start-api`` with the API samples and a short
schemathesis run, against the local stack (moto and the NXCloud simulator on 127.0.0.1), on arm64 (the template's,
under qemu) and x86_64. Each result is checked against ``events/expected.json`` and against the same event through
``make invoke`` (the in-process imitation). Every container runs on the host's network and talks to 127.0.0.1 only:
``hostnet.py`` makes SAM do that, and ``docker_events.py`` checks it. See docs/sam-local.md.
"""
