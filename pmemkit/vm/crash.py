"""`--suite crash` on the host: two boots on the same NVDIMM backing files, the first killed with SIGKILL.

Why its own module: `vm.run.boot_and_collect` boots once; this flow boots twice and keeps what
each boot left. Boot 1 (plan phase `write`) makes the namespaces and filesystems, writes its files
and prints `guest.experiments.crash.MARKER` once its records are fsync'd to the share; the console
reader then sends qemu SIGKILL (no unmount, no sync: a power cut as far as the guest kernel can
tell). Boot 2 (phase `verify`) gets the same backing files (labels included, they live at the
end of each file) and a plan carrying what boot 1 recorded, mounts and checks.

What SIGKILL of qemu loses: the guest's RAM (its page cache, the journal's running transaction,
the XFS CIL, dirty inodes). What it keeps: every store the guest made into the NVDIMM, since the
backend is a MAP_SHARED mapping of the backing file and the host's page cache outlives qemu. So
what can be lost is what the guest kernel had not yet written to the NVDIMM: metadata (i_size,
block allocation, directory entries) still in its journal or caches.

Safety: the marker only triggers the kill; the host reads boot 1's observations through
`pmemkit.rundir` (no links followed, bounded), checks the records it hands to boot 2
(`plan.crash_record`), and writes only files it creates (fresh names renamed into place). Every
exit path (signal, timeout, no marker, boot 2 failing) ends qemu, keeps both boots' files in the
run directory (guest-console.log, guest-console-2.log, observations of both boots) and deletes the
scratch backing files.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pmemkit import rundir
from pmemkit.plan import crash_record
from pmemkit.vm import run as vm_run
from pmemkit.vm.boot import BootResult
from pmemkit.vm.layout import VmLayout
from pmemkit.vm.lifecycle import SignalGuard

#: guest/experiments/crash.py prints it (the guest package is not imported on the host for it).
MARKER = "PMEMKIT-CRASH-WRITTEN"
CONSOLE_1, CONSOLE_2 = rundir.CONSOLE, "guest-console-2.log"
PLAN_2 = "plan-verify.json"
DMESG_1 = "dmesg-1.txt"
GUEST_ENVIRONMENT_1 = "guest-environment-1.json"
#: Per NVDIMM and filesystem under TCG: mkfs, mount, three 4 MiB files (boot 1); mount, read (boot 2).
WRITE_PER_DEVICE_S = 90.0
VERIFY_PER_DEVICE_S = 60.0
PROBE_TIMEOUT_S = 30.0


def timeouts(options: vm_run.RunOptions) -> tuple[float, float]:
    """Each boot's limit: --timeout applies to each boot; by default scaled to the devices."""
    if options.timeout_s:
        return options.timeout_s, options.timeout_s
    n = max(len(options.pmem), 1)
    return vm_run.BOOT_BUDGET_S + WRITE_PER_DEVICE_S * n, vm_run.BOOT_BUDGET_S + VERIFY_PER_DEVICE_S * n


def probe_pmem_on(qemu: str, scratch: Path) -> dict[str, Any]:
    """Does this QEMU take `pmem=on` for a file in `scratch`? It needs libpmem at build time and
    warns when the file is not on a DAX filesystem (then it maps it without MAP_SYNC). One
    `-machine none` start that quits at once; QEMU's words are kept either way."""
    probe = scratch / "pmem-on-probe.img"
    with open(probe, "wb") as f:
        f.truncate(2 << 20)
    argv = [qemu, "-machine", "none", "-nodefaults", "-display", "none", "-monitor", "stdio"]
    argv += ["-object", f"memory-backend-file,id=probe,mem-path={probe},size=2M,share=on,pmem=on"]
    try:
        out = subprocess.run(argv, input="quit\n", capture_output=True, text=True, timeout=PROBE_TIMEOUT_S)
        used, said = out.returncode == 0, out.stderr.strip()
        why = f"qemu exited {out.returncode} with pmem=on"
    except (OSError, subprocess.TimeoutExpired) as exc:
        used, said, why = False, "", f"the probe failed: {type(exc).__name__}: {exc}"
    finally:
        probe.unlink(missing_ok=True)
    lines = [line.strip() for line in said.splitlines() if line.strip()][-4:]
    if used:
        reason = "QEMU accepted pmem=on (built with libpmem)"
        if lines:
            reason += "; it said: " + " / ".join(lines)
    else:
        reason = f"pmem=on refused, booted without it ({why}" + (f": {lines[-1]})" if lines else ")")
    return {"pmem_on": used, "reason": reason, "qemu_said": lines}


def written_records(objects: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """Boot 1's `crash-write` observations that succeeded, as the records boot 2 checks against
    (each checked by `plan.crash_record`); plus a warning per observation that was refused."""
    records, warnings = [], []
    for value in objects:
        if value.get("experiment") != "crash" or value.get("operation") != "crash-write":
            continue
        if value.get("outcome") != "ok":
            continue
        metrics = value.get("metrics") if isinstance(value.get("metrics"), dict) else {}
        scenario = value.get("scenario") if isinstance(value.get("scenario"), dict) else {}
        candidate = {
            "pmem_index": metrics.get("pmem_index"),
            "fs": scenario.get("fs"),
            "way": metrics.get("way"),
            "file": metrics.get("file"),
            "size": metrics.get("size_bytes"),
            "block": metrics.get("block_bytes"),
            "checksums": metrics.get("checksums"),
        }
        try:
            records.append(crash_record(candidate))
        except Exception as exc:  # ScenarioError: a damaged record is left out and said so
            warnings.append(f"boot 1's crash-write record for {str(candidate['way'])[:20]} refused: {exc}")
    return records, warnings


def crash_run(
    options: vm_run.RunOptions, layout: VmLayout, progress: Callable[[str], None], guard: SignalGuard
) -> vm_run.Collected:
    """Both boots; the Collected of the last boot that ran, environment.json describing both."""
    timeout_1, timeout_2 = timeouts(options)
    layers = vm_run.build_layers(options, layout, progress, guard)
    guard.hold()  # from here a signal is raised inside boot(), which ends qemu; the caller reports
    run_dir = vm_run.make_run_dir(options.runs_dir)
    progress(f"run directory: {run_dir}")
    plan = vm_run.make_plan(options, layout, layers, crash={"phase": "write"})
    share = vm_run.make_share(run_dir, plan)
    scratch = vm_run.new_scratch()
    crash: dict[str, Any] = {"marker": MARKER, "boots": []}
    environment: dict[str, Any] = {}
    failure: str | None = None
    faults: list[rundir.RunDirError] = []
    result: BootResult | None = None
    try:
        pmem = probe_pmem_on(layers.qemu, scratch)
        crash["pmem_on"] = pmem
        progress(f"crash: {pmem['reason']}")
        backing = vm_run.make_backing(scratch, layout)  # made once: boot 2 gets the same files
        crash["backing"] = "sparse files on the host (the cache's scratch/), kept between the two boots"
        command = vm_run.qemu_command(layers, layout, share, backing, pmem_on=pmem["pmem_on"])
        environment = vm_run.base_environment(layers, layout, command, timeout_1)
        environment["crash"] = crash
        crash["timeouts_s"] = [timeout_1, timeout_2]
        rundir.write_atomic(run_dir / rundir.ENVIRONMENT, json.dumps(environment, indent=2) + "\n")
        progress(
            f"crash boot 1 (write; {layers.choice.accel}): killed with SIGKILL at {MARKER}; "
            f"timeout {timeout_1:.0f} s"
        )
        result = _boot(
            crash, "write", command.argv(), run_dir / CONSOLE_1, timeout_1, progress, guard, MARKER
        )
        failure = write_failure(result, timeout_1)
        boot1, faults = _keep_boot_1(run_dir)
        records, warnings = written_records(boot1)
        crash["written_records"] = len(records)
        crash["warnings"] = warnings
        if failure is None and not records:
            failure = "boot 1 recorded no write that succeeded (see its observations): boot 2 not started"
        if failure is None and guard.received is not None:  # it came while boot 1 was collected
            failure = f"interrupted by {guard.received.name} after boot 1: boot 2 not started"
        if failure is None:
            verify = vm_run.make_plan(options, layout, layers, crash={"phase": "verify", "written": records})
            try:
                _stage_boot_2(run_dir, share, verify)
            except rundir.RunDirError as exc:
                failure = f"boot 2 could not be given its plan: {exc}; boot 2 not started"
        if failure is None:
            progress(
                f"crash: qemu killed {result.killed_at:.1f} s into boot 1; boot 2 on the same backing files"
            )
            result = _boot(crash, "verify", command.argv(), run_dir / CONSOLE_2, timeout_2, progress, guard)
            failure = vm_run.failure_message(result, timeout_2)
            if failure is not None:
                failure = f"boot 2 (verify): {failure}"
            faults += _keep_boot_2(run_dir, boot1)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    scratch_left = scratch.exists()
    if result is None:  # the probe or the backing files failed before any boot: raised above
        result = BootResult(returncode=None, timed_out=False, elapsed_s=0.0)
    environment["boot"] = vm_run.boot_record(result)
    environment["failure"] = failure
    try:
        rundir.write_atomic(run_dir / rundir.ENVIRONMENT, json.dumps(environment, indent=2) + "\n")
    except rundir.RunDirError as exc:
        faults.append(exc)
    return vm_run.Collected(run_dir, result, environment, failure, faults, scratch if scratch_left else None)


def died_at_start(result: BootResult) -> bool:
    """qemu ended by itself before the guest kernel printed its banner: no guest code ran, so the
    backing files are as they were and the boot can be started again."""
    return (
        "kernel" not in result.phases
        and "qemu" in result.phases
        and result.returncode not in (0, None)
        and not (result.timed_out or result.interrupted or result.killed_at is not None)
    )


def _boot(
    crash: dict[str, Any],
    phase: str,
    argv: list[str],
    console: Path,
    timeout: float,
    progress: Callable[[str], None],
    guard: SignalGuard,
    kill_on: str | None = None,
) -> BootResult:
    """One boot of the two, started once more if qemu died before the guest kernel began (QEMU
    7.2 with pmem=on aborted once at start-up, "free(): invalid pointer", in 1 of 3 runs here);
    every attempt is kept in environment.json's crash.boots."""
    extra = {"kill_on": kill_on} if kill_on is not None else {}
    result = vm_run.boot(argv, console, timeout, progress, guard, **extra)
    if died_at_start(result) and guard.received is None:
        said = result.stderr.strip().splitlines()[-1:] or [f"status {result.returncode}"]
        crash["boots"].append(
            {"phase": phase, "retried": f"qemu died at start: {said[0]}", **vm_run.boot_record(result)}
        )
        progress(f"crash: qemu died before the guest kernel started ({said[0]}); starting {phase} boot again")
        result = vm_run.boot(argv, console, timeout, progress, guard, **extra)
    crash["boots"].append({"phase": phase, **vm_run.boot_record(result)})
    return result


def write_failure(result: BootResult, timeout: float) -> str | None:
    """Boot 1 succeeded only when the marker came and qemu was killed on it; else one line."""
    if result.killed_at is not None and not result.interrupted:
        return None
    if result.interrupted or result.timed_out or result.panic or result.fatal:
        return f"boot 1 (write): {vm_run.failure_message(result, timeout)}; boot 2 not started"
    why = (
        f"qemu exited with status {result.returncode}"
        if "done" not in result.phases
        else "the guest finished"
    )
    return (
        f"boot 1 (write): the guest never printed {MARKER} ({why}); its records were not all written, "
        "so boot 2 was not started"
    )


def _keep_boot_1(run_dir: Path) -> tuple[list[dict[str, Any]], list[rundir.RunDirError]]:
    """Collect boot 1's files into RUN/ and keep copies under boot-1 names; returns its
    observations (as checked JSON objects) and the faults met."""
    faults: list[rundir.RunDirError] = []
    objects: list[dict[str, Any]] = []
    with rundir.RunDir.open(run_dir, require_run=False) as files:
        try:
            files.collect()  # RUN/observations.jsonl, guest-environment.json, dmesg.txt (from the console)
        except rundir.RunDirError as exc:
            faults.append(exc)
        warnings: list[str] = []
        read = rundir.read_at(files.fd, rundir.OBSERVATIONS, rundir.MAX_OBSERVATIONS_BYTES)
        objects = [value for _, value in rundir.json_object_lines(read, rundir.OBSERVATIONS, warnings)]
        for source, copy in ((rundir.DMESG, DMESG_1), (rundir.GUEST_ENVIRONMENT, GUEST_ENVIRONMENT_1)):
            data = rundir.read_at(files.fd, source, rundir.MAX_LOG_BYTES).data
            if data is not None:
                try:
                    files.write(copy, data)
                except rundir.RunDirError as exc:
                    faults.append(exc)
    return objects, faults


def _stage_boot_2(run_dir: Path, share: Path, verify: Any) -> None:
    """The verify plan into the share (replacing boot 1's, never through a link the guest left)
    and RUN/plan-verify.json; boot 1's observations on the share emptied, so a boot 2 that dies
    early cannot be mistaken for one that wrote them again."""
    text = json.dumps(verify.to_dict(), indent=2) + "\n"
    with rundir.RunDir.open(run_dir, require_run=False) as files:
        files.write(PLAN_2, text)
        guest = files.guest_fd()
        if guest is None:
            raise rundir.RunDirError(f"{share} is no longer a directory: boot 2 cannot be given its plan")
        try:
            rundir.write_at(guest, rundir.PLAN, text, str(share / rundir.PLAN))
            rundir.write_at(guest, rundir.OBSERVATIONS, "", str(share / rundir.OBSERVATIONS))
            rundir.write_at(guest, rundir.DMESG, "", str(share / rundir.DMESG))
        finally:
            os.close(guest)


def _keep_boot_2(run_dir: Path, boot1: list[dict[str, Any]]) -> list[rundir.RunDirError]:
    """Collect boot 2's files, then RUN/observations.jsonl = boot 1's then boot 2's; a boot 2 that
    saved no dmesg gets one rebuilt from its own console log."""
    faults: list[rundir.RunDirError] = []
    with rundir.RunDir.open(run_dir, require_run=False) as files:
        try:
            files.collect()
        except rundir.RunDirError as exc:
            faults.append(exc)
        warnings: list[str] = []
        read = rundir.read_at(files.fd, rundir.OBSERVATIONS, rundir.MAX_OBSERVATIONS_BYTES)
        boot2 = [value for _, value in rundir.json_object_lines(read, rundir.OBSERVATIONS, warnings)]
        lines = "".join(json.dumps(v, sort_keys=True) + "\n" for v in [*boot1, *boot2])
        writes = [(rundir.OBSERVATIONS, lines)]
        dmesg = rundir.read_at(files.fd, rundir.DMESG, rundir.MAX_LOG_BYTES).data or b""
        if dmesg.startswith(b"# reconstructed") or not dmesg.strip():
            console = rundir.read_at(files.fd, CONSOLE_2, rundir.MAX_LOG_BYTES).data or b""
            text = console.decode("utf-8", errors="replace")
            kernel = [line for line in text.splitlines() if line.startswith("[")]
            header = "# reconstructed from guest-console-2.log: boot 2 ended before saving dmesg\n"
            writes.append((rundir.DMESG, header + "\n".join(kernel) + "\n"))
        for name, text in writes:
            try:
                files.write(name, text)
            except rundir.RunDirError as exc:
                faults.append(exc)
    return faults
