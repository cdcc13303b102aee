"""`pmemkit matrix` and `pmemkit merge` on the host.

Stub-based: every test here that runs cells uses tests/unit/matrix_stub_cell.py instead of a VM;
it copies recorded real runs (tests/unit/fixtures/matrix/) and renders them with the real
renderer. The matrix, the executors (local and a Dask LocalCluster), resume, jobs and merge are
the real code. Real cells are run by tests/vm/test_vm_matrix.py.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from pmemkit.cli import main
from pmemkit.matrix import cells as matrix_cells
from pmemkit.matrix.executors import ExecutorError, pack_run_dir, unpack_run_dir
from pmemkit.matrix.jobs import decide_jobs
from pmemkit.matrix.merge import load_runs
from pmemkit.matrix.report import render_matrix

HERE = Path(__file__).parent
STUB = f"{sys.executable} {HERE / 'matrix_stub_cell.py'}"
FIXTURES = HERE / "fixtures" / "matrix"
REPO = HERE.parent.parent


def invoke(*args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def stub_matrix(out: Path, kernels: str = "5.10,6.1", *extra: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return invoke("matrix", "--kernel", kernels, "--cell-runner", STUB, "--out", str(out), *extra, env=env)


def test_cells_are_the_cross_product_with_plus_joining_one_cell() -> None:
    axes = matrix_cells.axes_from_options(
        "6.1,6.12",
        ["memmap:512M", "memmap:512M+nvdimm:512M,mode=fsdax"],
        "ext4,ext4+xfs",
        "smoke",
        "quick",
        None,
        None,
        "auto",
    )
    cells = axes.cells()
    assert len(cells) == 2 * 2 * 2 * 1
    assert ("memmap:512M", "nvdimm:512M,mode=fsdax,map=mem") in {c.pmem for c in cells}  # normalised
    assert ("ext4", "xfs") in {c.filesystems for c in cells}
    ids = [c.cell_id() for c in cells]
    assert len(set(ids)) == len(ids)
    again = matrix_cells.axes_from_options(
        "6.1,6.12",
        ["memmap:512M", "memmap:512M+nvdimm:512M,mode=fsdax"],
        "ext4,ext4+xfs",
        "smoke",
        "quick",
        None,
        None,
        "auto",
    ).cells()
    assert [c.cell_id() for c in again] == ids  # the same cell has the same name on any run
    assert matrix_cells.Cell.from_dict(cells[3].to_dict()) == cells[3]


def test_matrix_file_is_read_as_the_options(tmp_path: Path) -> None:
    path = tmp_path / "m.toml"
    path.write_text(
        'kernel = ["6.1", "6.12"]\npmem = [["memmap:512M", "nvdimm:512M,mode=fsdax"], "memmap:256M"]\n'
        'fs = ["ext4", ["ext4", "xfs"]]\nsuite = "smoke"\ntimeout = 600\n'
    )
    got = matrix_cells.read_matrix_file(path)
    assert got == {
        "kernel": "6.1,6.12",
        "pmem": ["memmap:512M+nvdimm:512M,mode=fsdax", "memmap:256M"],
        "fs": "ext4,ext4+xfs",
        "suite": "smoke",
        "timeout": "600",
    }
    path.write_text('kernels = ["6.1"]\n')
    with pytest.raises(matrix_cells.MatrixError, match="unknown key"):
        matrix_cells.read_matrix_file(path)


def test_decide_jobs_lowers_to_what_memory_holds() -> None:
    gib = 2**30
    assert decide_jobs(None, 4, 3 * gib, 20 * gib, 2).jobs == 2  # default: one per core
    assert decide_jobs(8, 3, 3 * gib, 20 * gib, 2).jobs == 3  # never more than cells
    low = decide_jobs(4, 4, 3 * gib, 7 * gib, 2)
    assert low.jobs == 2 and "--jobs 4 lowered to 2" in (low.message or "")
    assert decide_jobs(4, 4, 3 * gib, 1 * gib, 2).jobs == 1  # one guest that may not fit: check() decides


def test_too_many_guests_for_memory_lowers_jobs_with_a_message(tmp_path: Path) -> None:
    """An injected MemAvailable of 3G holds one 2G guest (+512M qemu), not four."""
    result = stub_matrix(tmp_path / "m", "5.10,6.1", "--jobs", "4", "--mem-available", "3G")
    assert result.exit_code == 0, result.output
    assert "pmemkit: --jobs 4 lowered to 1" in result.stderr
    assert "MemAvailable is 3.0G" in result.stderr
    assert json.loads((tmp_path / "m" / "matrix.json").read_text())["settings"]["jobs"] == 1


def test_two_stub_cells_make_a_matrix_directory_and_merged_report(tmp_path: Path) -> None:
    out = tmp_path / "m"
    result = stub_matrix(out)
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "matrix.json").read_text())
    assert [e["status"] for e in doc["cells"]] == ["done", "done"]
    for entry in doc["cells"]:
        run = out / entry["run_dir"]
        assert (run / "observations.jsonl").is_file() and (run / "report.md").is_file()
    report = (out / "report.md").read_text()
    assert "`5.10.0-46-amd64`, `6.1.0-57-amd64`" in report
    assert "| 5.10.0-46-amd64 (5.10.262-1) | c1 | tcg | completed |" in report
    assert "## kapi" in report and "## smoke" in report
    assert "cell 1/2 5.10 memmap:512M ext4 smoke: started" in result.stderr  # per-cell progress


def test_rows_where_kernels_differ_come_first() -> None:
    """6.1 and 6.12 answered longterm-pin on the page-cache baseline differently (recorded runs)."""
    runs = load_runs([FIXTURES / "6.12", FIXTURES / "6.1"])
    report = render_matrix([(r.identity, r.contents) for r in runs])
    kapi = report.split("## kapi", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in kapi.splitlines() if line.startswith("| c1")]
    assert "longterm-pin" in rows[0] or "longterm-pin" in rows[1]
    first = rows[0].split(" | ")
    assert first[3] != first[4]  # the two kernel columns differ
    assert report.index("6.1.0-57-amd64 |") < report.index("6.12.118+deb13-amd64 |")  # version order


def test_disagreement_with_the_model_is_marked() -> None:
    runs = load_runs([FIXTURES / "6.1"])
    obs = next(o for o in runs[0].contents.observations if o.operation == "longterm-pin")
    obs.outcome = "EIO" if obs.outcome != "EIO" else "ok"  # an answer no rule predicts, for the marker
    report = render_matrix([(r.identity, r.contents) for r in runs])
    assert "**≠**" in report
    assert "1 disagree with the model" in report


def test_merge_of_the_cells_gives_the_matrix_report(tmp_path: Path) -> None:
    """Copied elsewhere under other names and given in the other order: the same report, byte for byte."""
    out = tmp_path / "m"
    assert stub_matrix(out).exit_code == 0
    cells = sorted((out / "cells").iterdir())
    copies = []
    for n, cell in enumerate(reversed(cells)):
        copy = tmp_path / f"elsewhere-{n}" / "run"
        shutil.copytree(cell, copy)
        copies.append(copy)
    merged = tmp_path / "merged"
    result = invoke("merge", *map(str, copies), "--out", str(merged))
    assert result.exit_code == 0, result.output
    assert (merged / "report.md").read_text() == (out / "report.md").read_text()
    assert len(list((merged / "cells").iterdir())) == 2
    assert json.loads((merged / "matrix.json").read_text())["made_by"] == "merge"


def test_merge_refuses_duplicates_and_other_schemas(tmp_path: Path) -> None:
    one = tmp_path / "a"
    shutil.copytree(FIXTURES / "6.1", one)
    twin = tmp_path / "b"
    shutil.copytree(FIXTURES / "6.1", twin)
    result = invoke("merge", str(one), str(twin), "--out", str(tmp_path / "o1"))
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "are the same cell" in result.stderr
    result = invoke("merge", str(one), str(tmp_path / "." / "a"), "--out", str(tmp_path / "o2"))
    assert result.exit_code == 2 and "is given twice" in result.stderr
    plan = json.loads((twin / "plan.json").read_text())
    plan["schema"] = 99
    (twin / "plan.json").write_text(json.dumps(plan))
    result = invoke("merge", str(one), str(twin), "--out", str(tmp_path / "o3"))
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "schema 99" in result.stderr
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o3").exists()  # refused before writing


def _wait_for(predicate, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def _done(out: Path) -> int:
    try:
        doc = json.loads((out / "matrix.json").read_text())
    except (OSError, ValueError):
        return 0
    return sum(e["status"] == "done" for e in doc["cells"])


def test_resume_after_a_kill_runs_only_the_missing_cells(tmp_path: Path) -> None:
    out, log = tmp_path / "m", tmp_path / "cells.log"
    env = {**os.environ, "PMEMKIT_STUB_LOG": str(log), "PMEMKIT_STUB_DELAY": "3"}
    argv = [
        sys.executable,
        "-m",
        "pmemkit",
        "matrix",
        "--kernel",
        "5.10,6.1",
        "--jobs",
        "1",
        "--cell-runner",
        STUB,
        "--out",
        str(out),
    ]
    proc = subprocess.Popen(argv, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: _done(out) == 1)
        _wait_for(lambda: log.exists() and len(log.read_text().split()) == 2)  # the second cell began
        proc.send_signal(signal.SIGKILL)  # half-way: no chance to tidy up
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert _done(out) == 1
    before = log.read_text().split()
    result = invoke(
        "matrix",
        "--resume",
        "--out",
        str(out),
        "--cell-runner",
        STUB,
        env={"PMEMKIT_STUB_LOG": str(log), "PMEMKIT_STUB_DELAY": "0"},
    )
    assert result.exit_code == 0, result.output
    assert log.read_text().split()[len(before) :] == ["6.1"]  # only the missing cell ran again
    assert "--resume: 1 cell(s) already made, 1 to run" in result.stderr
    assert _done(out) == 2
    assert "`5.10.0-46-amd64`, `6.1.0-57-amd64`" in (out / "report.md").read_text()


def test_a_failed_cell_is_kept_apart_and_exits_6(tmp_path: Path) -> None:
    out = tmp_path / "m"
    result = stub_matrix(out, "5.10,6.1", env={"PMEMKIT_STUB_FAIL": "6.1"})
    assert result.exit_code == 6
    assert "1 cell(s) failed" in result.stderr and "stub: told to fail" in result.stderr
    doc = json.loads((out / "matrix.json").read_text())
    failed = [e for e in doc["cells"] if e["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["run_dir"].startswith("attempts/")
    report = (out / "report.md").read_text()
    assert "# pmemkit matrix: 1 cells, 1 kernel(s)" in report  # the made one
    assert (
        "**1 cell(s) of the matrix are not in this report**" in report
        and "6.1 memmap:512M ext4 smoke (failed)" in report
    )


def test_dask_localcluster_runs_two_cells(tmp_path: Path) -> None:
    """Two worker processes of a dask.distributed LocalCluster (tcp on the loopback, as a real
    cluster is reached) run the two (stub) cells; each run directory comes back as files and the
    merged report lists both."""
    distributed = pytest.importorskip("distributed")  # in the test extra: skipped only outside `make venv`
    out = tmp_path / "m"
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        result = invoke(
            "matrix",
            "--kernel",
            "5.10,6.1",
            "--executor",
            "dask",
            "--scheduler",
            cluster.scheduler_address,
            "--cell-runner",
            STUB,
            "--out",
            str(out),
        )
    assert result.exit_code == 0, result.output
    report = (out / "report.md").read_text()
    assert "# pmemkit matrix: 2 cells, 2 kernel(s)" in report
    assert (
        "| 5.10.0-46-amd64 (5.10.262-1) | c1 |" in report and "| 6.1.0-57-amd64 (6.1.192-3) | c1 |" in report
    )
    assert not list((out / "attempts").iterdir())  # every cell's run moved into cells/


def test_unpack_refuses_links_in_a_workers_archive(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("plan.json")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tar.addfile(info)
    with pytest.raises(ExecutorError, match="not a regular file"):
        unpack_run_dir(buffer.getvalue(), tmp_path / "run")
    run = tmp_path / "src"
    shutil.copytree(FIXTURES / "6.1", run)
    (run / "guest").mkdir()
    (run / "guest" / "x").write_text("guest's own")
    (run / "link").symlink_to("/etc/passwd")
    unpack_run_dir(pack_run_dir(run), tmp_path / "back")
    assert sorted(p.name for p in (tmp_path / "back").iterdir()) == sorted(
        ["environment.json", "guest-environment.json", "observations.jsonl", "plan.json"]
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--executor", "dask"], "--executor dask needs --scheduler"),
        (["--resume"], "--resume needs --out"),
        (
            ["--executor", "dask", "--scheduler", "tcp://127.0.0.1:1", "--jobs", "2"],
            "--jobs is the local executor's",
        ),
        (["--pmem", "memmap:512M+"], "an empty device around `+`"),
        (["--fs", "ext4,btrfs"], "--fs 'btrfs'"),
        (["--kernel", "6.1+6.12"], "a cell boots one kernel"),
        (["--kernel", "6.1,9.99"], "9.99"),
    ],
)
def test_bad_matrix_input_is_one_line_exit_2(args: list[str], message: str) -> None:
    result = invoke("matrix", *args)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("pmemkit: error:") and result.stderr.count("\n") == 1
    assert message in result.stderr


def test_out_that_holds_files_is_refused_without_resume(tmp_path: Path) -> None:
    (tmp_path / "x").write_text("")
    result = stub_matrix(tmp_path)
    assert result.exit_code == 2 and "is not an empty directory" in result.stderr


def test_sigterm_stops_the_running_cells_and_says_how_to_resume(tmp_path: Path) -> None:
    out, log = tmp_path / "m", tmp_path / "cells.log"
    env = {**os.environ, "PMEMKIT_STUB_LOG": str(log), "PMEMKIT_STUB_DELAY": "60"}
    argv = [
        sys.executable,
        "-m",
        "pmemkit",
        "matrix",
        "--kernel",
        "5.10,6.1",
        "--jobs",
        "2",
        "--cell-runner",
        STUB,
        "--out",
        str(out),
    ]
    proc = subprocess.Popen(
        argv, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        _wait_for(lambda: log.exists() and len(log.read_text().split()) == 2)  # both cells running
        start = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143
    assert time.monotonic() - start < 30  # the cells were stopped, not waited for (they sleep 60 s)
    assert "interrupted by SIGTERM" in stderr and f"--resume --out {out}" in stderr
    doc = json.loads((out / "matrix.json").read_text())
    assert [e["status"] for e in doc["cells"]] == ["interrupted", "interrupted"]


def test_cellrun_refuses_a_bad_cell_as_a_result_not_a_traceback(tmp_path: Path) -> None:
    spec = {
        "kernel": "6.1",
        "pmem": ["memmap:256M"],
        "filesystems": ["xfs"],
        "suites": ["smoke"],
        "memory": None,
    }
    argv = [
        sys.executable,
        "-m",
        "pmemkit.matrix.cellrun",
        "--spec",
        json.dumps(spec),
        "--runs-dir",
        str(tmp_path),
    ]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 2, result.stderr
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert (
        answer["ok"] is False
        and answer["exit_code"] == 2
        and "--fs xfs needs pmem devices" in answer["error"]
    )
    assert "Traceback" not in result.stderr
    assert not any(tmp_path.iterdir())  # refused before a run directory was made


def test_a_matrix_file_drives_the_command_and_options_win(tmp_path: Path) -> None:
    path = tmp_path / "m.toml"
    path.write_text('kernel = ["5.10", "6.1", "6.12"]\nsuite = "smoke"\n')
    out = tmp_path / "m"
    result = invoke(
        "matrix", "--file", str(path), "--kernel", "5.10,6.1", "--cell-runner", STUB, "--out", str(out)
    )
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "matrix.json").read_text())
    assert [e["cell"]["kernel"] for e in doc["cells"]] == ["5.10", "6.1"]  # --kernel won over the file
    assert {tuple(e["cell"]["suites"]) for e in doc["cells"]} == {("smoke",)}
