"""Stack hands mdadm/dmsetup/blockdev only the checked, resolved node paths (they accept no `--`)."""

from __future__ import annotations

import pytest

from pmemkit.guest import GuestError, stacks
from pmemkit.guest.safety import Clearance


def _clear_to(paths: dict[str, str]):
    def clear(device: str) -> Clearance:
        return Clearance(device, "pmemkit-vm", "test", paths[device], 1)

    return clear


def test_tools_get_the_checked_node_not_the_name_passed(monkeypatch):
    seen: list[list[str]] = []
    monkeypatch.setattr(
        stacks, "clear_for_destruction", _clear_to({"pmem-a": "/dev/pmem0", "pmem-b": "/dev/pmem1"})
    )
    monkeypatch.setattr(stacks, "_run", lambda argv, env=None: seen.append(argv) or "")
    monkeypatch.setattr(stacks, "_wait_for", lambda path, timeout_s=10.0: None)
    monkeypatch.setattr(stacks.subprocess, "run", lambda *a, **k: None)
    with stacks.Stack("md-raid0", "pmem-a", "pmem-b"):
        pass
    create = next(argv for argv in seen if argv[:2] == ["mdadm", "--create"])
    assert create[-2:] == ["/dev/pmem0", "/dev/pmem1"]
    assert "pmem-a" not in create


def test_a_member_that_does_not_resolve_to_an_absolute_path_is_refused(monkeypatch):
    monkeypatch.setattr(stacks, "clear_for_destruction", _clear_to({"a": "/dev/pmem0", "b": "-V"}))
    monkeypatch.setattr(stacks, "_run", lambda argv, env=None: pytest.fail(f"ran {argv}"))
    with pytest.raises(GuestError, match="absolute device paths"):
        with stacks.Stack("dm-linear", "a", "b"):
            pass
