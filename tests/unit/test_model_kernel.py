"""Kernel version parsing and ranges: the axis every rule is keyed on."""

from __future__ import annotations

import pytest

from pmemkit.model import KernelRange, ModelError, parse_kernel
from pmemkit.model.kernel import LATEST_STABLE
from pmemkit.scenario import ScenarioError


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("4.2", (4, 2, 0)),
        ("4.15", (4, 15, 0)),
        ("5.17", (5, 17, 0)),
        ("6.1.5", (6, 1, 5)),
        ("6.1.150", (6, 1, 150)),
        ("6.12", (6, 12, 0)),
        ("6.15", (6, 15, 0)),
        ("6.17", (6, 17, 0)),
        ("v6.12", (6, 12, 0)),
        ("6.1.0-50-amd64", (6, 1, LATEST_STABLE)),
        ("6.12.0-0.deb12.3-amd64", (6, 12, LATEST_STABLE)),
        ("5.15.7-foo", (5, 15, 7)),
    ],
)
def test_accepted_spellings(text: str, key: tuple[int, int, int]) -> None:
    k = parse_kernel(text)
    assert (k.major, k.minor, k.patch) == key
    assert str(k) == text


def test_debian_release_is_latest_stable_of_its_series() -> None:
    debian = parse_kernel("6.1.0-50-amd64")
    assert debian.distro
    assert parse_kernel("6.1.150") < debian < parse_kernel("6.2-rc1")
    assert debian.canonical() == "6.1.y"


def test_rc_ordering() -> None:
    order = ["6.10", "6.11-rc1", "6.11-rc3", "6.11-rc4", "6.11", "6.11.1", "6.12-rc1"]
    kernels = [parse_kernel(t) for t in order]
    assert kernels == sorted(kernels)
    assert parse_kernel("6.11-rc2").canonical() == "6.11-rc2"


@pytest.mark.parametrize("text", ["3.19", "2.6.32", "banana", "", "6", "6.1.2-rc1", "6.x"])
def test_rejected(text: str) -> None:
    with pytest.raises(ModelError):
        parse_kernel(text)


def test_model_error_is_a_scenario_error() -> None:
    with pytest.raises(ScenarioError):
        parse_kernel("3.0")


def test_range_is_half_open() -> None:
    r = KernelRange("4.15", "5.2")
    assert parse_kernel("4.15") in r
    assert parse_kernel("5.1.21") in r
    assert parse_kernel("5.2") not in r
    assert parse_kernel("4.14.300") not in r
    assert str(r) == ">=4.15,<5.2"
    assert str(KernelRange()) == ">=4.0"
    assert str(KernelRange(before="4.3")) == ">=4.0,<4.3"
    assert str(KernelRange("5.17")) == ">=5.17"
