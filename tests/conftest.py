"""Shared fixtures. Tests import the code the way Lambda sees it (see pyproject's pythonpath).

The simulator fixtures are here; the stack (moto's server, the function's resources and environment) is the plugin
``tests/stack.py``, shared by every suite.
"""

import os

# Nothing in the tests may reach AWS: fake credentials and a region, before boto3 is imported anywhere.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.pop("AWS_PROFILE", None)

# The imports below come after the environment set-up above on purpose.
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from nxcloud_simulator import NXCloudSimulator

pytest_plugins = ("tests.stack",)

SIM_ACCOUNTS = {"AK": "SK"}
"""The simulator fixtures' one account: accessKey ``AK``, accessSecret ``SK``."""


@pytest.fixture
def make_simulator() -> Iterator[Callable[..., NXCloudSimulator]]:
    """Start simulators with custom settings (a fixed clock, other accounts...); all are stopped after the test."""
    started: list[NXCloudSimulator] = []

    def make(**kwargs: Any) -> NXCloudSimulator:
        kwargs.setdefault("accounts", SIM_ACCOUNTS)
        simulator = NXCloudSimulator(**kwargs).start()
        started.append(simulator)
        return simulator

    yield make
    for simulator in started:
        simulator.stop()


@pytest.fixture
def simulator() -> Iterator[NXCloudSimulator]:
    """A fresh, started NXCloud simulator with the account AK/SK and no faults; stopped after the test."""
    with NXCloudSimulator(SIM_ACCOUNTS) as sim:
        yield sim


@pytest.fixture(scope="session")
def shared_simulator_server() -> Iterator[NXCloudSimulator]:
    """One simulator for the whole session (use ``shared_simulator``, which resets it for each test)."""
    with NXCloudSimulator(SIM_ACCOUNTS) as sim:
        yield sim


@pytest.fixture
def shared_simulator(shared_simulator_server: NXCloudSimulator) -> NXCloudSimulator:
    """The session's simulator, with records and faults cleared: for fast tests that need no custom settings."""
    shared_simulator_server.reset()
    return shared_simulator_server
