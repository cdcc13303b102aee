"""The run directory as a safe place: planted links are never followed, damage is a warning, a
directory that is not a run is refused, and a full or read-only disk is one line, no traceback,
with no temp file left behind (issue 8 findings 4, 5, 10; issue 9's run-directory module)."""

from __future__ import annotations

import dataclasses
import json
import os
import stat
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from pmemkit.cli import main
from pmemkit.scenario import Observation, Scenario

PLAN = {
    "schema": 1,
    "suites": ["smoke"],
    "pmem": [{"source": "memmap", "size": 256 << 20, "start": 1 << 30, "mode": None, "map": None}],
    "filesystems": ["ext4"],
    "accel": "tcg",
    "profile": "quick",
}
ENVIRONMENT = {"pmemkit_version": "0.1", "accel": "tcg", "qemu": "QEMU 7.2", "qemu_argv": ["qemu"]}


#: The smallest real `pmemkit run` these fault tests drive (the VM itself is faked).
SMALL_RUN = ["run", "--accel", "tcg", "--pmem", "memmap:256M", "--fs", "ext4"]


def _obs(op: str = "dax-mount") -> Observation:
    sc = Scenario(kernel="6.1.0-56-amd64", source="memmap", mode="raw", fs="ext4")
    return Observation("smoke", op, "ok", sc, "/dev/pmem0", detail="mounted", provenance={"accel": "tcg"})


def make_run(path: Path, observations: bytes | None = None) -> Path:
    """An old-layout run directory (the guest share was RUN/ itself)."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "plan.json").write_text(json.dumps(PLAN))
    (path / "environment.json").write_text(json.dumps(ENVIRONMENT))
    data = observations if observations is not None else (_obs().to_json() + "\n").encode()
    (path / "observations.jsonl").write_bytes(data)
    return path


def report(path: Path):
    return CliRunner().invoke(main, ["report", str(path)])


def one_line_error(result, code: int, needle: str) -> str:
    assert result.exit_code == code, (result.output, result.exception)
    assert isinstance(result.exception, SystemExit), repr(result.exception)  # no traceback
    lines = [line for line in result.output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("pmemkit: error:")]
    assert errors == lines[-1:] and needle in lines[-1] and "Traceback" not in result.output, lines
    return lines[-1]


def tree(path: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(path)): (p.lstat().st_mode, p.lstat().st_size) for p in path.rglob("*")}


def temp_files(path: Path) -> list[str]:
    return [p.name for p in path.rglob("*") if p.name.endswith(".tmp") or ".tmp" in p.name]


@contextmanager
def tmpfs(path: Path, size: str = "256k"):
    """A small tmpfs of our own (root only), always unmounted."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _mount_type(path: Path) -> str | None:
    """The filesystem type mounted exactly at `path`, from /proc/self/mounts (None: not a mount)."""
    target = os.path.realpath(path)
    found = None
    with open("/proc/self/mounts") as mounts:
        for line in mounts:
            fields = line.split()
            if len(fields) > 2 and fields[1].replace("\\040", " ") == target:
                found = fields[2]  # the last mount on a path is the one that counts
    return found


def fill(fs: Path, cap: int = 32 << 20) -> None:
    """Use every free block of the small tmpfs mounted at `fs`, and never more than `cap` bytes.

    Refuses anything but a tmpfs of at most 16 MiB that this test mounted: a test that once
    filled "the disk the run is on" filled the machine's root disk instead (77 GiB).
    """
    assert _mount_type(fs) == "tmpfs", f"fill() only fills a tmpfs mount point, not {fs}"
    st = os.statvfs(fs)
    assert st.f_blocks * st.f_frsize <= 16 << 20, f"{fs} is larger than 16 MiB"
    fd = os.open(fs / "filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    written = 0
    try:
        while written < cap:
            n = os.write(fd, b"\0" * 4096)
            if n == 0:
                break
            written += n
    except OSError:
        pass
    finally:
        os.close(fd)


def test_fill_refuses_what_is_not_a_small_tmpfs(tmp_path):
    with pytest.raises(AssertionError, match="only fills a tmpfs"):
        fill(tmp_path)
    assert not (tmp_path / "filler").exists()


# -- finding 4: planted symlinks are never followed ----------------------------------------------


def test_report_replaces_planted_links_instead_of_writing_through_them(tmp_path):
    run = make_run(tmp_path / "run")
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    for name in (".report.md.tmp", "report.md", ".environment.json.tmp"):
        (run / name).symlink_to(victim)
    assert report(run).exit_code == 0
    assert victim.read_text() == "precious\n"
    assert stat.S_ISREG(os.lstat(run / "report.md").st_mode)
    assert "Emulated pmem" in (run / "report.md").read_text()


def test_a_planted_plots_link_is_not_followed(tmp_path):
    from pmemkit.measure.stats import summarize

    fault = Observation(
        "mmap",
        "first-touch-write",
        "ok",
        Scenario(kernel="6.1", source="memmap", mode="raw", fs="ext4"),
        "/dev/pmem0",
        metrics={"latency": summarize([3000, 5000, 40000])},
    )
    run = make_run(tmp_path / "run", (fault.to_json() + "\n").encode())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (run / "plots").symlink_to(elsewhere)
    result = report(run)
    assert result.exit_code == 0, result.output
    assert list(elsewhere.iterdir()) == []
    text = (run / "report.md").read_text()
    assert "plots is a symbolic link" in text and "](plots/" not in text


def test_linked_and_special_guest_files_are_not_read(tmp_path):
    run = make_run(tmp_path / "run")
    secret = tmp_path / "secret.jsonl"
    secret.write_text(_obs("secret-op").to_json() + "\n")
    (run / "observations.jsonl").unlink()
    (run / "observations.jsonl").symlink_to(secret)
    os.mkfifo(run / "guest-environment.json")  # reading a FIFO would block forever
    argv = [sys.executable, "-m", "pmemkit", "report", str(run)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    text = (run / "report.md").read_text()
    assert "secret-op" not in text
    assert "observations.jsonl is a symbolic link: not followed" in text
    assert "guest-environment.json is not a regular file" in text


def test_guest_files_are_read_with_a_bound(tmp_path, monkeypatch):
    from pmemkit import rundir

    monkeypatch.setattr(rundir, "MAX_OBSERVATIONS_BYTES", 4096)
    line = (_obs().to_json() + "\n").encode()
    run = make_run(tmp_path / "run", line * (8192 // len(line) + 2))
    with rundir.RunDir.open(run) as files:
        loaded = files.load()
    assert 0 < len(loaded.observations) <= 4096 // len(line)
    assert any("larger than" in w for w in loaded.warnings)


def test_the_results_share_maps_guest_symlinks_to_files():
    from pmemkit.vm.qemu import share_args

    assert "security_model=mapped-xattr" in share_args("out", Path("/r"), readonly=False)[1]
    assert "security_model=none" not in share_args("out", Path("/r"), readonly=False)[1]


def _fake_vm(monkeypatch, tmp_path: Path, guest) -> None:
    """`vm.run.run` with everything but the run directory replaced: `guest(share)` plays the guest."""
    import pmemkit.vm.run as vm_run
    from pmemkit.vm.boot import BootResult

    monkeypatch.setattr(vm_run, "QEMU", "true")
    image = SimpleNamespace(
        vmlinux=tmp_path / "vmlinux",
        initrd=tmp_path / "initrd",
        rootfs=tmp_path / "rootfs",
        image_id="test",
        manifest=lambda: {"image_id": "test"},
    )
    monkeypatch.setattr(vm_run, "ensure_image", lambda progress: image)
    monkeypatch.setattr(vm_run, "choose_accel", lambda *a: SimpleNamespace(accel="tcg", reason="test"))
    monkeypatch.setattr(vm_run.compileall, "compile_dir", lambda *a, **k: True)
    monkeypatch.setattr(vm_run, "cache_dir", lambda: tmp_path / "cache")

    def boot(argv, console_log, timeout, progress, guard=None):
        spec = next(a for a in argv if "mount_tag=pmemkit_out" in a)
        share = Path(spec.split("path=")[1].split(",")[0])
        console_log.write_text("[    0.000000] Linux version 6.1\nPMEMKIT-PHASE done rc=0 5.0\n")
        guest(share)
        return BootResult(returncode=0, timed_out=False, elapsed_s=5.0, phases={"qemu": 0.0, "done": 5.0})

    monkeypatch.setattr(vm_run, "boot", boot)


def test_a_guest_planting_links_in_its_share_reaches_nothing_of_the_hosts(tmp_path, monkeypatch):
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    secret = tmp_path / "secret"
    secret.write_text("host secret\n")
    seen: dict[str, Path] = {}

    def guest(share: Path) -> None:
        seen["share"] = share
        for name in (".environment.json.tmp", ".report.md.tmp", "report.md", "environment.json", "plots"):
            (share / name).symlink_to(victim)
        (share / "dmesg.txt").symlink_to(secret)
        (share / "observations.jsonl").write_text(_obs().to_json() + "\n")

    _fake_vm(monkeypatch, tmp_path, guest)
    result = CliRunner().invoke(
        main,
        [*SMALL_RUN, "--runs-dir", str(tmp_path / "runs")],
    )
    assert result.exit_code == 0, (result.output, result.exception)
    (run,) = (tmp_path / "runs").iterdir()
    assert seen["share"] == (run / "guest").resolve()  # the guest's share is a subdirectory only
    assert victim.read_text() == "precious\n"
    for name in ("plan.json", "environment.json", "observations.jsonl", "dmesg.txt", "report.md"):
        assert stat.S_ISREG(os.lstat(run / name).st_mode), name
    assert "host secret" not in (run / "dmesg.txt").read_text()
    assert "reconstructed from guest-console.log" in (run / "dmesg.txt").read_text()
    assert "guest/dmesg.txt is a symbolic link" in (run / "report.md").read_text()
    assert json.loads((run / "plan.json").read_text())["suites"] == [
        "smoke",
        "mmap",
        "odirect",
        "fio",
        "kapi",
    ]


# -- finding 5 / issue 9: report refuses a directory that is not a run --------------------------------


@pytest.mark.parametrize(
    "files",
    [
        {},
        {"passwd": "root:x:0:0::/root:/bin/sh\n", "hosts": "127.0.0.1 localhost\n"},
        {"plan.json": "[1, 2]", "environment.json": '{"editor": "vi"}'},
        {"observations.jsonl": '{"a": 1}\n["x"]\n'},
    ],
    ids=["empty", "etc-like", "foreign-json", "foreign-jsonl"],
)
def test_report_refuses_a_directory_that_is_not_a_run(tmp_path, files):
    etc = tmp_path / "etc"
    etc.mkdir()
    for name, text in files.items():
        (etc / name).write_text(text)
    before = tree(etc)
    one_line_error(report(etc), 2, "is not a pmemkit run directory")
    assert tree(etc) == before  # nothing written


def test_report_refuses_before_json_too(tmp_path):
    result = CliRunner().invoke(main, ["report", "--json", str(tmp_path)])
    one_line_error(result, 2, "is not a pmemkit run directory")


def test_old_and_new_layouts_both_render(tmp_path):
    old = make_run(tmp_path / "old")
    assert report(old).exit_code == 0 and "| dax-mount |" in (old / "report.md").read_text()
    new = tmp_path / "new"
    new.mkdir()
    (new / "plan.json").write_text(json.dumps(PLAN))
    (new / "guest").mkdir()
    (new / "guest" / "observations.jsonl").write_text(_obs().to_json() + "\n")
    result = report(new)
    assert result.exit_code == 0 and result.output.startswith("1 observations"), result.output
    assert "not collected: read from guest/" in (new / "report.md").read_text()


def test_schema_1_and_schema_2_runs_render_their_variants_alike(tmp_path):
    """Schema 1 spelled a variant `op:variant`; schema 2 has a field. Both render one row, compared."""
    sc = Scenario(kernel="6.1.0-56-amd64", source="nvdimm", mode="fsdax", map="mem", fs="ext4")
    obs = Observation("odirect", "odirect-read-into-dax", "EFAULT", sc, "/dev/pmem0", variant="read-only")
    old_line = obs.to_json().replace(
        '"operation": "odirect-read-into-dax"', '"operation": "odirect-read-into-dax:read-only"'
    )
    old_line = old_line.replace('"schema": 2', '"schema": 1').replace(', "variant": "read-only"', "")
    assert '"variant"' not in old_line and '"schema": 1' in old_line
    texts = []
    for name, plan_schema, line in (("v1", 1, old_line), ("v2", 2, obs.to_json())):
        run = make_run(tmp_path / name, (line + "\n").encode())
        (run / "plan.json").write_text(json.dumps({**PLAN, "schema": plan_schema}))
        assert report(run).exit_code == 0
        texts.append((run / "report.md").read_text())
    for text in texts:
        assert "1 (scenario × operation) cells compared: 1 agree, 0 disagree" in text
        assert "| odirect-read-into:read-only |" in text  # the matrix folds the mapping (it is the column)
    assert texts[0].replace("v1", "vX") == texts[1].replace("v2", "vX")


def test_a_model_that_fails_to_import_is_said_in_the_report(tmp_path, monkeypatch):
    run = make_run(tmp_path / "run")
    monkeypatch.setitem(sys.modules, "pmemkit.model", None)  # import now raises ImportError
    assert report(run).exit_code == 0
    assert "the model could not be imported" in (run / "report.md").read_text()


# -- finding 10: damage is a warning, faults are one line --------------------------------------------


def test_damaged_files_become_warnings_not_tracebacks(tmp_path):
    good = _obs().to_json()
    lines = [good, "[1, 2, 3]", '"a string"', good.replace('"ok"', '"\xff"'), good]
    data = "\n".join(lines).encode().replace("\xff".encode(), b"\xff") + b"\n" + good[:40].encode()
    run = make_run(tmp_path / "run", data)
    (run / "environment.json").write_bytes(b'{"pmemkit_version": "\xff"}')
    (run / "guest-environment.json").write_text("[]")
    result = report(run)
    assert result.exit_code == 0, (result.output, result.exception)
    text = (run / "report.md").read_text()
    assert "line 2 skipped: a JSON list, not an object" in text
    assert "line 3 skipped: a JSON str" in text
    assert "line 4 skipped: not valid UTF-8" in text
    assert "line 6 skipped: incomplete (no newline; a torn write)" in text
    assert "environment.json is not valid UTF-8" in text
    assert "guest-environment.json holds a JSON list" in text
    assert result.output.startswith("2 observations")


def test_a_plots_file_is_left_alone_with_a_warning(tmp_path):
    from pmemkit.measure.stats import summarize

    fault = Observation(
        "mmap",
        "first-touch-read",
        "ok",
        Scenario(kernel="6.1", source="memmap", mode="raw", fs="ext4"),
        "/dev/pmem0",
        metrics={"latency": summarize([3000, 5000])},
    )
    run = make_run(tmp_path / "run", (fault.to_json() + "\n").encode())
    (run / "plots").write_text("mine\n")
    result = report(run)
    assert result.exit_code == 0, (result.output, result.exception)
    assert (run / "plots").read_text() == "mine\n"
    assert "plots is not a directory" in (run / "report.md").read_text()


def test_runs_dir_that_is_a_file_is_refused_before_anything(tmp_path):
    runs = tmp_path / "runs"
    runs.write_text("a file\n")
    result = CliRunner().invoke(main, ["run", "--accel", "tcg", "--runs-dir", str(runs)])
    one_line_error(result, 2, "exists and is not a directory")


def test_read_only_runs_dir_and_run_dir(tmp_path):
    with tmpfs(tmp_path / "ro") as fs:
        run = make_run(fs / "run")
        (run / "report.md").write_text("old report\n")
        subprocess.run(["mount", "-o", "remount,ro", str(fs)], check=True)
        result = CliRunner().invoke(main, ["run", "--accel", "tcg", "--runs-dir", str(fs / "runs")])
        one_line_error(result, 2, "Read-only file system (EROFS)")
        one_line_error(report(run), 2, "Read-only file system (EROFS)")
        assert (run / "report.md").read_text() == "old report\n"


def test_report_on_a_full_disk_is_one_line_and_leaves_no_temp_file(tmp_path):
    with tmpfs(tmp_path / "full") as fs:
        run = make_run(fs / "run")
        (run / "report.md").write_text("old report\n")
        fill(fs)
        line = one_line_error(report(run), 3, "No space left on device (ENOSPC)")
        assert "report.md" in line
        assert temp_files(run) == []
        assert (run / "report.md").read_text() == "old report\n"


def test_observation_writer_never_leaves_a_torn_line(tmp_path, capsys):
    from pmemkit.guest.results import ObservationWriter

    with tmpfs(tmp_path / "full", size="64k") as fs:
        writer = ObservationWriter(fs / "observations.jsonl")
        big = dataclasses.replace(_obs(), detail="x" * 5000)
        with pytest.raises(OSError):
            for _ in range(100):
                writer.add(big)
        data = (fs / "observations.jsonl").read_bytes()
        assert data.endswith(b"\n") and data.count(b"\n") == len(writer) > 0
        assert [json.loads(line)["detail"] for line in data.splitlines()] == ["x" * 5000] * len(writer)
        assert temp_files(fs) == []


def test_disk_full_mid_run_is_one_line_and_leaves_no_temp_file(tmp_path, monkeypatch):
    with tmpfs(tmp_path / "full") as fs:

        def guest(share: Path) -> None:
            assert share.is_relative_to(fs.resolve()), share  # never fill anything but our tmpfs
            (share / "observations.jsonl").write_text(_obs().to_json() + "\n")
            fill(fs)  # the guest fills the disk the run directory is on

        _fake_vm(monkeypatch, tmp_path, guest)
        result = CliRunner().invoke(
            main,
            [*SMALL_RUN, "--runs-dir", str(fs / "runs")],
        )
        one_line_error(result, 3, "No space left on device (ENOSPC)")
        assert temp_files(fs) == []


# -- finding 10: well-formed JSON of the wrong shape, huge numbers, other schemas ---------------------


def _metric_obs() -> Observation:
    from pmemkit.measure.stats import summarize

    sc = Scenario(kernel="6.1", source="memmap", mode="raw", fs="ext4")
    return Observation(
        "mmap", "first-touch-read", "ok", sc, "/dev/pmem0", metrics={"latency": summarize([3000, 5000])}
    )


def test_fields_of_the_wrong_shape_are_left_out_with_a_warning(tmp_path):
    bad = _metric_obs().to_dict()
    bad["metrics"] = {"latency": [1, 2, 3]}  # a list where a summary belongs
    lines = [_obs().to_json(), json.dumps(bad), _metric_obs().to_json()]
    run = make_run(tmp_path / "run", ("\n".join(lines) + "\n").encode())
    (run / "environment.json").write_text(json.dumps({**ENVIRONMENT, "boot": 5}))
    (run / "plan.json").write_text(json.dumps({**PLAN, "suites": 5}))
    result = report(run)
    assert result.exit_code == 0, (result.output, result.exception)
    assert result.output.startswith("2 observations")
    text = (run / "report.md").read_text()
    assert "environment.json: 'boot' left out" in text
    assert "plan.json: 'suites' left out" in text
    assert "observation 2 ('mmap' 'first-touch-read') left out" in text
    assert "| dax-mount |" in text


def test_huge_json_numbers_are_warnings(tmp_path):
    digits = "9" * 5000  # more digits than int() converts: a ValueError, not a JSONDecodeError
    lines = [
        _obs().to_json(),
        f'{{"schema": 1, "n": {digits}}}',
        _obs().to_json().replace('"metrics": {}', '"metrics": {"x": 1e999}'),
    ]
    run = make_run(tmp_path / "run", ("\n".join(lines) + "\n").encode())
    (run / "guest-environment.json").write_text(f'{{"ram": {digits}}}')
    (run / "environment.json").write_text(
        json.dumps({**ENVIRONMENT, "timeout_s": 1e308, "guest_ram_bytes": 10**4000})
    )
    result = report(run)
    assert result.exit_code == 0, (result.output, result.exception)
    text = (run / "report.md").read_text()
    assert "observations.jsonl line 2 skipped: Exceeds the limit" in text
    assert "guest-environment.json is not valid JSON (Exceeds the limit" in text
    assert digits not in text  # messages are bounded
    assert result.output.startswith("2 observations")


def test_a_run_of_another_schema_is_refused_naming_it(tmp_path):
    run = make_run(tmp_path / "run")
    (run / "plan.json").write_text(json.dumps({**PLAN, "schema": 3}))
    before = tree(run)
    one_line_error(report(run), 2, "was written with schema 3 (plan.json); this pmemkit reads schema 2")
    one_line_error(CliRunner().invoke(main, ["report", "--json", str(run)]), 2, "written with schema 3")
    assert tree(run) == before
    only_obs = tmp_path / "only-obs"
    only_obs.mkdir()
    (only_obs / "observations.jsonl").write_text(
        _obs().to_json().replace('"schema": 2', '"schema": 0') + "\n"
    )
    assert '"schema": 0' in (only_obs / "observations.jsonl").read_text()
    one_line_error(report(only_obs), 2, "was written with schema 0 (observations.jsonl line 1)")
    assert not (only_obs / "report.md").exists()


HOSTILE_VALUES = [5, [], None, 1e308, 10**100, "x", {}, True, float("nan")]


def test_any_value_anywhere_is_rendered_or_refused_in_one_line(tmp_path):
    """Every top-level field (and each metric) of every file replaced by each hostile value:
    render_report renders (exit 0) or raises RunDirError, never anything else."""
    from pmemkit.pipeline import render_report
    from pmemkit.rundir import RunDirError

    env = {**ENVIRONMENT, "boot": {"phases_s": {"qemu": 0.0, "done": 5.0}}, "memmap": ["256M!1G"]}
    docs = {"plan": PLAN, "env": env, "obs": _metric_obs().to_dict()}
    cases = []
    for doc, value in docs.items():
        for key in value:
            cases += [(doc, (key,), h) for h in HOSTILE_VALUES]
    cases += [("obs", ("metrics", "latency"), h) for h in HOSTILE_VALUES]
    cases += [("obs", ("scenario", "kernel"), h) for h in HOSTILE_VALUES]
    for n, (doc, path, hostile) in enumerate(cases):
        files = json.loads(json.dumps(docs))
        target = files[doc]
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = hostile
        run = tmp_path / f"r{n}"
        run.mkdir()
        (run / "plan.json").write_text(json.dumps(files["plan"]))
        (run / "environment.json").write_text(json.dumps(files["env"]))
        (run / "observations.jsonl").write_text(_obs().to_json() + "\n" + json.dumps(files["obs"]) + "\n")
        try:
            render_report(run)
        except RunDirError as exc:
            assert "\n" not in str(exc) and len(str(exc)) < 400, (doc, path, hostile)


def test_a_disk_that_fills_mid_run_still_gets_the_report(tmp_path, monkeypatch):
    """The guest's results take most of a small disk, so copying them into RUN/ fails (ENOSPC):
    the run says so in one line, leaves no temp file and no torn copy, and the report is still
    written (from guest/, with a warning)."""
    big = dataclasses.replace(_obs(), provenance={"accel": "tcg", "pad": "x" * 30_000})  # not in the report
    with tmpfs(tmp_path / "full", size="512k") as fs:

        def guest(share: Path) -> None:
            assert share.is_relative_to(fs.resolve()), share
            (share / "observations.jsonl").write_text((big.to_json() + "\n") * 10)  # 300 kB of 512

        _fake_vm(monkeypatch, tmp_path, guest)
        result = CliRunner().invoke(
            main,
            [*SMALL_RUN, "--runs-dir", str(fs / "runs")],
        )
        line = one_line_error(result, 3, "No space left on device (ENOSPC)")
        (run,) = (fs / "runs").iterdir()
        assert "observations.jsonl" in line and "report.md written (10 observation(s))" in line, line
        assert temp_files(fs) == []
        assert not (run / "observations.jsonl").exists()  # no torn copy
        text = (run / "report.md").read_text()
        assert "the guest's files were not collected: read from guest/" in text
        assert "No space left on device" in text  # the collect fault, from environment.json
        assert stat.S_ISREG(os.lstat(run / "dmesg.txt").st_mode)


# -- every file the host reads or writes, with a link planted in its place ----------------------------

MARK = "VICTIM-MARK"


def _victim(tmp_path: Path) -> Path:
    victim = tmp_path / "victim"
    victim.write_text(_obs(MARK).to_json() + "\n")  # a valid observation: reading it would show
    return victim


@pytest.mark.parametrize(
    "name", ["plan.json", "environment.json", "guest-environment.json", "observations.jsonl"]
)
def test_report_never_reads_through_a_planted_link(tmp_path, name):
    run = make_run(tmp_path / "run")
    victim = _victim(tmp_path)
    (run / name).unlink(missing_ok=True)
    (run / name).symlink_to(victim)
    result = report(run)
    assert result.exit_code == 0, (result.output, result.exception)
    text = (run / "report.md").read_text()
    assert MARK not in text and f"{name} is a symbolic link: not followed" in text
    assert victim.read_text() == _obs(MARK).to_json() + "\n"


@pytest.mark.parametrize(
    "name",
    [
        "report.md",
        ".report.md.tmp",
        "report.html",
        "observations.csv",
        "plots/first-touch-read-cdf.png",
        "plots",
    ],
)
def test_report_never_writes_through_a_planted_link(tmp_path, name):
    run = make_run(tmp_path / "run", (_metric_obs().to_json() + "\n").encode())
    victim = _victim(tmp_path)
    before = victim.read_text()
    (run / name).parent.mkdir(exist_ok=True)
    (run / name).symlink_to(victim)
    result = report(run)
    assert result.exit_code == 0, (result.output, result.exception)
    assert victim.read_text() == before
    assert stat.S_ISREG(os.lstat(run / "report.md").st_mode)
    if name.startswith("plots/"):  # replaced by the new plot, not written through
        assert stat.S_ISREG(os.lstat(run / name).st_mode) and (run / name).read_bytes().startswith(b"\x89PNG")
    for written in ("report.html", "observations.csv"):
        assert stat.S_ISREG(os.lstat(run / written).st_mode)


@pytest.mark.parametrize(
    "name", ["observations.jsonl", "guest-environment.json", "dmesg.txt", "environment.json"]
)
def test_collect_replaces_links_in_the_run_and_never_reads_links_in_the_share(tmp_path, name):
    from pmemkit.rundir import RunDir, write_atomic

    run = tmp_path / "run"
    run.mkdir()
    victim = _victim(tmp_path)
    before = victim.read_text()
    with RunDir.open(run, require_run=False) as files:
        files.write("plan.json", json.dumps(PLAN))
        share = files.make_guest_share(json.dumps(PLAN))
    (share / name).symlink_to(victim)  # the guest's link: not read
    (run / name).symlink_to(victim)  # a link where the host writes: replaced
    with RunDir.open(run) as files:
        warnings = files.collect()
    write_atomic(run / "environment.json", json.dumps(ENVIRONMENT))
    assert victim.read_text() == before
    assert (
        f"guest/{name} is a symbolic link: not followed, not read" in warnings or name == "environment.json"
    )
    for written in ("observations.jsonl", "dmesg.txt", "environment.json"):
        assert stat.S_ISREG(os.lstat(run / written).st_mode), written
    assert MARK not in (run / "observations.jsonl").read_text()
    assert MARK not in (run / "dmesg.txt").read_text()


def test_a_share_replaced_by_a_link_is_not_read_and_not_reused(tmp_path):
    from pmemkit.rundir import RunDir, RunDirError

    run = tmp_path / "run"
    run.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "observations.jsonl").write_text(_obs(MARK).to_json() + "\n")
    (run / "guest").symlink_to(elsewhere)
    with RunDir.open(run, require_run=False) as files:
        with pytest.raises(RunDirError, match="cannot create .*guest: File exists"):
            files.make_guest_share("{}")
        warnings = files.collect()
    assert "guest/ is missing or not a directory: nothing collected" in warnings
    assert MARK not in (run / "observations.jsonl").read_text()
    assert sorted(p.name for p in elsewhere.iterdir()) == ["observations.jsonl"]


def test_temp_names_are_fresh_and_created_exclusively(tmp_path, monkeypatch):
    """Two writes never share a temp name, and a temp name that exists is never opened."""
    from pmemkit import rundir

    names: list[str] = []
    real_open = os.open

    def spy(path, flags, *args, **kwargs):
        if str(path).endswith(".tmp"):
            names.append(str(path))
            assert flags & os.O_EXCL and flags & os.O_NOFOLLOW and flags & os.O_CREAT
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(rundir.os, "open", spy)
    for _ in range(20):
        rundir.write_atomic(tmp_path / "report.md", "x")
    assert len(names) == 20 and len(set(names)) == 20
    assert all(len(n) >= len(".report.md.") + 16 + len(".tmp") for n in names)  # 64 random bits
    monkeypatch.setattr(rundir.secrets, "token_hex", lambda n: "0" * 16)  # a guessed name, planted
    (tmp_path / ".report.md.0000000000000000.tmp").symlink_to(tmp_path / "victim")
    with pytest.raises(rundir.RunDirError, match="File exists"):
        rundir.write_atomic(tmp_path / "report.md", "y")
    assert not (tmp_path / "victim").exists() and (tmp_path / "report.md").read_text() == "x"
