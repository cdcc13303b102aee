"""Boot one non-default Debian kernel (6.12) on the shared root and check it is the one recorded.

Why 6.12: it exercises what 6.1 does not (a ZSTD kernel, .ko.xz modules, trixie through the
private apt configuration) at the cost of one kernel layer (~1-2 min from nothing: download,
unpack, initrd, modules disk) and one short boot. The four-kernel sweep is not part of `make test`.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.vm.helpers import pmemkit_argv, records, run_once

pytestmark = pytest.mark.vm


@pytest.fixture(scope="module")
def run_612(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    runs = tmp_path_factory.mktemp("runs")
    args = ("--kernel", "6.12", "--pmem", "memmap:256M", "--fs", "ext4", "--suite", "smoke", "--json")
    return run_once(pmemkit_argv("run", runs, *args), runs, timeout=1200)


def test_the_612_guest_finishes(run_612):
    result, run_dir = run_612
    assert result.returncode == 0, result.stderr[-3000:]
    console = (run_dir / "guest-console.log").read_text(errors="replace")
    assert "Attempted to kill init" not in console and "Kernel panic" not in console


def test_the_release_is_recorded_from_package_to_guest(run_612):
    _, run_dir = run_612
    env = json.loads((run_dir / "environment.json").read_text())
    kernel = env["kernel"]
    release = kernel["kernel_release"]
    assert release.startswith("6.12.") and kernel["kernel_choice"] == "6.12"
    assert kernel["kernel_package"] == f"linux-image-{release}"
    assert any(p.startswith(f"linux-image-{release}=") for p in kernel["kernel_packages"])
    seen = {record["provenance"].get("kernel") for record in records(run_dir)}
    assert seen == {release}  # uname -r in the guest, on every observation
    title = (run_dir / "report.md").read_text().splitlines()[0]
    assert title.startswith("# pmemkit run ") and title.endswith(f"— kernel {release}")
