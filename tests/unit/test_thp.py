"""Issue 15 item 6: THP set to one policy inside pmemkit's VM, never on a user's machine, recorded."""

from __future__ import annotations

from pmemkit.guest import provenance, thp


def _sysfs(root):
    root.mkdir()
    (root / "enabled").write_text("[always] madvise never\n")
    (root / "defrag").write_text("always defer defer+madvise [madvise] never\n")
    return root


def test_the_policy_is_written_in_the_vm_and_read_back(tmp_path):
    root = _sysfs(tmp_path / "thp")
    record = thp.apply_policy(root, in_vm=True)
    assert (root / "enabled").read_text() == "madvise" and (root / "defrag").read_text() == "madvise"
    assert record["set_by_pmemkit"] is True and record["policy"] == {
        "enabled": "madvise",
        "defrag": "madvise",
    }
    assert "MADV_HUGEPAGE" in record["why"]


def test_outside_the_vm_nothing_is_written_and_the_reason_is_recorded(tmp_path):
    root = _sysfs(tmp_path / "thp")
    record = thp.apply_policy(root, in_vm=False)
    assert (root / "enabled").read_text() == "[always] madvise never\n"
    assert record["set_by_pmemkit"] is False and "--target local" in record["why"]


def test_a_kernel_without_thp_or_a_refused_write_is_recorded_not_raised(tmp_path):
    assert "does not exist" in thp.apply_policy(tmp_path / "none", in_vm=True)["why"]
    root = _sysfs(tmp_path / "thp")
    (root / "defrag").unlink()
    (root / "defrag").mkdir()  # writing it fails like a refusing kernel
    record = thp.apply_policy(root, in_vm=True)
    assert record["set_by_pmemkit"] is False and "kept" in record["why"]


def test_provenance_carries_the_mode_in_force_and_who_set_it(tmp_path, monkeypatch):
    root = _sysfs(tmp_path / "thp")
    thp.forget()
    monkeypatch.setattr("pmemkit.guest.safety.vm_token", lambda: None)
    try:
        found = provenance.controlled_thp(root)
    finally:
        thp.forget()
    assert found["enabled"] == "always" and found["defrag"] == "madvise"  # as found, untouched
    assert found["set_by_pmemkit"] is False and found["policy"]["enabled"] == "madvise"
    monkeypatch.setattr("pmemkit.guest.safety.vm_token", lambda: "token")
    try:
        found = provenance.controlled_thp(root)
    finally:
        thp.forget()
    assert found["enabled"] == "madvise" and found["set_by_pmemkit"] is True
