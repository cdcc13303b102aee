"""Every pmemkit child of a VM test ends with its test, and with pytest (tests/vm/helpers.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.vm import helpers


@pytest.fixture(scope="session", autouse=True)
def _children_end_with_pytest() -> Iterator[None]:
    old = helpers.install_signal_handlers()
    try:
        yield
    finally:
        helpers.end_all()
        helpers.restore_signal_handlers(old)


@pytest.fixture(autouse=True)
def _children_end_with_the_test() -> Iterator[None]:
    yield
    helpers.end_all()
