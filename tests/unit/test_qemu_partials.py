"""The CXL QEMU cache (vm/qemu_install.py) with a fetch cut short: its `.partial-*` staging folder
is never taken for an installed QEMU, and the next CXL run removes it once no live fetch owns it,
without following a link out of the cache."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import psutil
import pytest

from pmemkit.vm import qemu_install

WRAPPER = "#!/bin/sh\necho 'QEMU emulator version 10.0.2 (fake)'\n"


@pytest.fixture
def base(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PMEMKIT_CACHE", str(tmp_path / "cache"))
    folder = qemu_install.base_dir()
    folder.mkdir(parents=True)
    return folder


def _qemu_in(folder: Path) -> Path:
    wrapper = folder / "bin" / qemu_install.BINARY
    wrapper.parent.mkdir(parents=True)
    wrapper.write_text(WRAPPER)
    wrapper.chmod(0o755)
    return wrapper


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    assert not psutil.pid_exists(proc.pid)
    return proc.pid


def _age(path: Path, seconds: float) -> None:
    when = psutil.Process().create_time() - seconds
    os.utime(path, (when, when), follow_symlinks=False)


def test_a_partial_folder_with_its_wrapper_written_is_not_installed(base: Path) -> None:
    _qemu_in(base / f".partial-{os.getpid()}-abc")  # killed between the wrapper and the rename
    assert qemu_install.installed() == []
    done = _qemu_in(base / "10.0.2")
    assert qemu_install.installed() == [((10, 0, 2), done)]


def test_the_next_run_removes_stale_partials_only(base: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_text("keep me\n")
    dead = base / f".partial-{_dead_pid()}-dead"
    _qemu_in(dead)
    (dead / "link-out").symlink_to(outside)  # inside a stale folder: the link goes, not its target
    reused = base / f".partial-{os.getpid()}-reused"  # a live pid, but it started after the folder
    reused.mkdir()
    _age(reused, 3600)
    legacy_old = base / ".partial-k2j1q8x_"  # a name from before pids were in it, older than us
    legacy_old.mkdir()
    _age(legacy_old, 3600)
    mine = base / f".partial-{os.getpid()}-live"  # a fetch going on (here: this process's)
    mine.mkdir()
    legacy_new = base / ".partial-zz9y8x7w"
    legacy_new.mkdir()
    linked = base / f".partial-{_dead_pid()}-link"  # a link named like a partial: never followed
    linked.symlink_to(outside)
    done = _qemu_in(base / "10.0.2")
    old_host = tmp_path / "qemu-7.2"
    old_host.write_text("#!/bin/sh\necho 'QEMU emulator version 7.2.22 (fake)'\n")
    old_host.chmod(0o755)

    assert qemu_install.cxl_qemu(str(old_host), fetch=False) == str(done)  # the next CXL run

    left = sorted(p.name for p in base.iterdir())
    assert left == sorted(["10.0.2", mine.name, legacy_new.name, linked.name]), left
    assert linked.is_symlink() and (outside / "precious").read_text() == "keep me\n"
    assert sorted(p.name for p in outside.iterdir()) == ["precious"]
