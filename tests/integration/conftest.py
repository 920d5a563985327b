"""Fixtures for the function's integration tests. The stack itself (moto's server, the function's resources and
environment, the ``stack`` fixture and :class:`Stack`) is shared by every suite: see tests/stack.py.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.stack import ACCESS_SECRET, SECRET, WEBHOOK_TOKEN, Stack, message

__all__ = ["ACCESS_SECRET", "SECRET", "WEBHOOK_TOKEN", "Stack", "message"]  # the integration tests import them here


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    """Everything the function's Powertools logger writes, at every level (it writes to stdout, not through root)."""
    from observability import logger

    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logger.registered_formatter)
    logger.addHandler(handler)
    try:
        yield buffer
    finally:
        logger.removeHandler(handler)


@pytest.fixture
def page_example_texts() -> list[str]:
    """The three request examples of NXCloud's page, with real digits in place of the masked ones."""
    folder = Path(__file__).resolve().parents[1] / "data" / "page_examples"
    texts = [p.read_text(encoding="utf-8") for p in sorted(folder.glob("*.json"))]
    assert len(texts) == 3, f"expected the page's three examples in {folder}"
    return texts
