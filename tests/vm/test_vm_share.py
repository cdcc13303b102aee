"""A hostile guest plants symlinks in its results share; the host must neither see nor follow them.

One boot (smoke suite, one small memmap device, ext4) from a copy of this checkout whose
`python3 -m pmemkit guest-run` first plants symlinks to a host file in the share, under the names
the host once wrote through (`.environment.json.tmp`, `.report.md.tmp`) and the names it writes
now (`report.md`, `plots`). The same run checks that a normal run still leaves every file.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from tests.vm.helpers import pmemkit_argv, records, run_once

pytestmark = pytest.mark.vm

ROOT = Path(__file__).resolve().parents[2]
PLANTED = (".environment.json.tmp", ".report.md.tmp", "report.md", "plots", "planted-link")
PLANT = """\
import os as _os
import sys as _sys

if _sys.argv[1:2] == ["guest-run"] and _os.path.isdir("/mnt/pmemkit-out"):
    for _name in {names!r}:
        _os.symlink({victim!r}, "/mnt/pmemkit-out/" + _name)
    _link = _os.path.islink("/mnt/pmemkit-out/planted-link")
    print(f"PMEMKIT-STEP planted symlinks; in the guest planted-link is a link: {{_link}}", flush=True)
"""


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("share")
    victim = work / "victim.txt"
    victim.write_text("precious\n")
    checkout = work / "checkout"
    for part in ("pmemkit", "vm"):  # same vm/ recipe: the cached image is reused
        shutil.copytree(ROOT / part, checkout / part, ignore=shutil.ignore_patterns("__pycache__"))
    main = checkout / "pmemkit" / "__main__.py"
    main.write_text(PLANT.format(names=PLANTED, victim=str(victim)) + main.read_text())
    runs = work / "runs"
    argv = pmemkit_argv("run", runs, "--suite", "smoke", "--pmem", "memmap:256M", "--fs", "ext4", "--json")
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    result, run_dir = run_once(argv, runs, timeout=900, cwd=checkout, env=env)
    return result, run_dir, victim


def test_run_writes_every_file_outside_the_share(hostile_run):
    result, run_dir, _ = hostile_run
    assert result.returncode == 0, result.stderr[-3000:]
    for name in (
        "plan.json",
        "environment.json",
        "guest-console.log",
        "observations.jsonl",
        "guest-environment.json",
        "dmesg.txt",
        "report.md",
    ):
        assert (run_dir / name).stat().st_size > 0, name
        assert stat.S_ISREG(os.lstat(run_dir / name).st_mode), name
    assert (run_dir / "guest" / "plan.json").is_file()  # the guest's copy, inside its share
    found = records(run_dir)
    assert found and all(record["experiment"] for record in found)
    assert "Emulated pmem" in (run_dir / "report.md").read_text()


def test_guest_symlinks_are_plain_files_on_the_host(hostile_run):
    _, run_dir, victim = hostile_run
    console = (run_dir / "guest-console.log").read_text(errors="replace")
    assert "in the guest planted-link is a link: True" in console  # the guest did make links
    for name in PLANTED:
        mode = os.lstat(run_dir / "guest" / name).st_mode
        assert not stat.S_ISLNK(mode) and stat.S_ISREG(mode), (name, oct(mode))
    assert victim.read_text() == "precious\n"
