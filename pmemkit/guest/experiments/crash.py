"""The crash experiment (`--suite crash`, issue 12 items 4-5): does data written to a DAX file survive
a SIGKILL of qemu, written three ways?

Two boots on the same NVDIMM backing files (the host's side is `pmemkit.vm.crash`):

- boot 1, phase `write`: labels, namespaces and one filesystem per device as usual (--fs in turn;
  mkfs, mount -o dax), then on each filesystem a new file per way, extended with ftruncate (no blocks yet) and
  filled through a shared mapping, so every fault allocates blocks:
  `map-sync` (MAP_SHARED_VALIDATE|MAP_SYNC), `msync` (MAP_SHARED, then msync(MS_SYNC)) and
  `no-sync` (MAP_SHARED, nothing else). The synced ways go first on every filesystem and the
  unsynced last, so no later fsync commits the unsynced file's metadata by the way. Each way's
  record (size, a crc32 per 4 KiB block, extents) is a `crash-write` observation, fsync'd to the
  share; then the guest prints MARKER and waits: the host kills qemu with SIGKILL. Nothing is
  unmounted, synced or closed.
- boot 2, phase `verify`: the same namespaces found where they are (no init-labels, no
  create-namespace, no mkfs), mounted (journal recovery happens: `crash-remount`, with the kernel's
  words), and per way a `crash-verify` observation: file present, size, extents (FIEMAP) and every
  block's crc32 against boot 1's record (intact / zero / other / missing).

Outcomes of `crash-verify` (pmemkit's outcome vocabulary; `metrics["survival"]` says it in words):
`ok` = survived (the file is there, with its size, every block intact); `ENOENT` = lost (open(2)
after recovery finds no such file); `short` = partial (the file is there but its size or some
block differs from what was written).
"""

from __future__ import annotations

import fcntl
import json
import mmap
import os
import struct
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pmemkit.guest.experiments import Target, observation_provenance, register
from pmemkit.guest.prepare import (
    DAX_MOUNT_OPTIONS,
    MKFS_OPTIONS,
    PreparedDevice,
    find_existing,
    match_devices,
    mkfs,
    mount_dax,
    unmount,
)
from pmemkit.guest.syscalls import errno_name, statx_dax
from pmemkit.plan import CRASH_FILE_PREFIX, CRASH_WAYS, Plan, crash_filesystems, crash_record, write_atomic
from pmemkit.scenario import Observation

NAME = "crash"
WRITE_OP, VERIFY_OP, REMOUNT_OP = "crash-write", "crash-verify", "crash-remount"
#: The console line that tells the host boot 1's records are on the share: it kills qemu on it.
MARKER = "PMEMKIT-CRASH-WRITTEN"
FILE_BYTES = 4 << 20  # two 2 MiB extents' worth: PMD faults where the allocator aligns them
BLOCK = 4096
MAP_SHARED_VALIDATE = 0x03
MAP_SYNC = 0x080000  # include/uapi/asm-generic/mman-common.h
FS_IOC_FIEMAP = 0xC020660B  # _IOWR('f', 11, struct fiemap)
FIEMAP_HEADER = struct.Struct("=QQIIII")  # fm_start, fm_length, fm_flags, mapped, count, reserved
FIEMAP_EXTENT = struct.Struct("=QQQQQI12x")  # logical, physical, length, reserved64[2], flags
FIEMAP_FLAGS = {0x1: "last", 0x2: "unknown", 0x4: "delalloc", 0x8: "encoded", 0x800: "unwritten"}
MAX_EXTENTS = 64
#: Kernel lines of a mount that tell about the journal (ext4/jbd2) or the log (XFS).
JOURNAL_WORDS = ("EXT4-fs", "jbd2", "JBD2", "XFS")
SURVIVAL = {"ok": "survived", "ENOENT": "lost", "short": "partial"}
WAIT_FOR_KILL_S = 3600


@register(NAME, kinds=(), vm_only=True)
def run(target: Target, params: dict[str, Any]) -> Iterator[Observation]:
    """Never called on a target: the suite is two boots, run by `run_phase` (see the module doc)."""
    return iter(())


def file_name(way: str) -> str:
    return f"{CRASH_FILE_PREFIX}{way}.dat"


def checksums(data: bytes, block: int = BLOCK) -> list[int]:
    """crc32 of each `block` bytes (the last block may be shorter)."""
    return [zlib.crc32(data[i : i + block]) for i in range(0, len(data), block)]


def compare_blocks(found: bytes, expected: list[int], block: int = BLOCK) -> dict[str, int]:
    """Each block of what was written, as found: intact (same crc32), zero (all zeros), other
    (different bytes) or missing (beyond the end of the file found)."""
    counts = {"intact": 0, "zero": 0, "other": 0, "missing": 0}
    for index, want in enumerate(expected):
        piece = found[index * block : (index + 1) * block]
        if not piece:
            counts["missing"] += 1
        elif zlib.crc32(piece) == want:
            counts["intact"] += 1
        elif not piece.strip(b"\0"):
            counts["zero"] += 1
        else:
            counts["other"] += 1
    return counts


def judge(present: bool, size: int, written: int, counts: dict[str, int]) -> str:
    """ok (survived), ENOENT (lost: no file), short (partial: size or any block differs)."""
    if not present:
        return "ENOENT"
    blocks = sum(counts.values())
    return "ok" if size == written and counts["intact"] == blocks else "short"


def fiemap(fd: int) -> list[dict[str, Any]]:
    """The file's extents from FS_IOC_FIEMAP, without FIEMAP_FLAG_SYNC (that would sync the file)."""
    buf = bytearray(FIEMAP_HEADER.size + FIEMAP_EXTENT.size * MAX_EXTENTS)
    FIEMAP_HEADER.pack_into(buf, 0, 0, 0xFFFFFFFFFFFFFFFF, 0, 0, MAX_EXTENTS, 0)
    fcntl.ioctl(fd, FS_IOC_FIEMAP, buf, True)
    mapped = FIEMAP_HEADER.unpack_from(buf, 0)[3]
    extents = []
    for i in range(min(mapped, MAX_EXTENTS)):
        logical, physical, length, _, _, flags = FIEMAP_EXTENT.unpack_from(
            buf, FIEMAP_HEADER.size + i * FIEMAP_EXTENT.size
        )
        names = [name for bit, name in FIEMAP_FLAGS.items() if flags & bit]
        extents.append({"logical": logical, "physical": physical, "length": length, "flags": names})
    return extents


def _extents(fd: int) -> list[dict[str, Any]] | str:
    try:
        return fiemap(fd)
    except OSError as exc:
        return f"FIEMAP failed: {errno_name(exc.errno or 0)}"


def _uptime() -> float:
    with open("/proc/uptime") as f:
        return float(f.read().split()[0])


# ---- the guest's flow ------------------------------------------------------------------------------


def run_phase(plan: Plan, out_dir: Path) -> int:
    """Carry out this boot's phase of the crash suite; 0 when every step ran, 1 otherwise.

    Boot 1 does not return when its writes were recorded: it prints MARKER and waits to be killed.
    """
    from pmemkit.guest.probe import probe
    from pmemkit.guest.provenance import collect
    from pmemkit.guest.results import ObservationWriter
    from pmemkit.guest.targets import EXPECTED, device_provenance, device_scenario, failure, step

    assert plan.crash is not None
    phase = plan.crash["phase"]
    writer = ObservationWriter(out_dir / "observations.jsonl")
    env = collect(plan.accel, plan.pmemkit_version)
    env["crash_phase"] = phase
    step(f"crash suite, boot {'1 (write)' if phase == 'write' else '2 (verify)'}")
    try:
        devices = (
            match_devices(plan.pmem, plan.placements)
            if phase == "write"
            else find_existing(plan.pmem, plan.placements)
        )
    except EXPECTED as exc:
        from pmemkit.guest.runner import _unprepared

        for cfg in plan.pmem:
            writer.add(failure(env, "prepare", "setup", exc, _unprepared(env, cfg), cfg.spec()))
        devices = []
    env["probe"] = probe()
    write_atomic(out_dir / "guest-environment.json", json.dumps(env, indent=2, default=str) + "\n")
    if not devices:
        return 1
    failures = 0
    targets: list[tuple[PreparedDevice, Target]] = []
    chosen = crash_filesystems(plan.pmem, plan.filesystems)
    for device in devices:
        fs = chosen[device.index]
        scenario = device_scenario(env, device, fs)
        path = device.namespace.path or "?"
        provenance = {
            **device_provenance(env, device),
            "fs": fs,
            "mount_options": DAX_MOUNT_OPTIONS,
            "mkfs_options": MKFS_OPTIONS[fs],
            "crash_phase": phase,
        }
        target = Target("fs", "", path, scenario, "", provenance, plan.params())
        try:
            if phase == "write":
                step(f"{scenario.label()} on {path}: mkfs.{fs}, mount -o {DAX_MOUNT_OPTIONS}")
                mkfs(path, fs)
            else:
                step(f"{scenario.label()} on {path}: mount -o {DAX_MOUNT_OPTIONS} (no mkfs)")
            result = mount_dax(path, fs)
        except EXPECTED as exc:
            writer.add(
                failure(env, NAME if phase == "verify" else "prepare", _mount_op(phase), exc, scenario, path)
            )
            failures += 1
            continue
        writer.add(_mount_observation(phase, target, result))
        if result.mountpoint is None:
            failures += 1
            continue
        target.path = result.mountpoint
        targets.append((device, target))
    if phase == "write":
        return _write_all(targets, writer, failures)
    return _verify_all(plan, targets, writer, failures)


def _mount_op(phase: str) -> str:
    return "dax-mount" if phase == "write" else REMOUNT_OP


def _mount_observation(phase: str, target: Target, result: Any) -> Observation:
    journal = [m for m in result.messages if any(w in m for w in JOURNAL_WORDS)]
    experiment = "prepare" if phase == "write" else NAME
    return Observation(
        experiment,
        _mount_op(phase),
        result.outcome,
        target.scenario,
        target.device,
        detail=result.detail if phase == "write" else "; ".join(journal[-8:]) or result.detail,
        metrics={"kernel_messages": result.messages, "journal_messages": journal},
        provenance=observation_provenance(target.provenance, 1),
    )


#: Kept open until the kill: closing a file or unmapping runs release paths that could write back.
_HELD: list[Any] = []


def _write_all(targets: list[tuple[PreparedDevice, Target]], writer: Any, failures: int) -> int:
    """The synced ways on every filesystem, then the unsynced ones, then MARKER and the wait."""
    from pmemkit.guest.targets import step

    unsynced = []
    for way in CRASH_WAYS:
        for device, target in targets:
            try:
                observation = write_way(device, target, way)
            except OSError as exc:  # e.g. the file could not be made: the way is recorded, not lost
                detail = f"{way}: {type(exc).__name__}: {exc}"
                observation = target.observation(
                    NAME, WRITE_OP, "skipped:error", variant=way, repetitions=0, detail=detail
                )
            failures += observation.outcome != "ok"
            if way == "no-sync":
                unsynced.append(observation)  # recorded after every unsynced write is done
            else:
                writer.add(observation)
    for observation in unsynced:
        observation.metrics["recorded_at_uptime_s"] = round(_uptime(), 3)
        writer.add(observation)
    if not targets:
        return 1
    step(f"crash: {len(targets) * len(CRASH_WAYS)} way(s) written; waiting for the host's SIGKILL")
    print(f"{MARKER} uptime={_uptime():.3f}", flush=True)
    time.sleep(WAIT_FOR_KILL_S)  # the host kills qemu on MARKER; if it never does, its timeout will
    return 1 if failures else 0


def write_way(device: PreparedDevice, target: Target, way: str) -> Observation:
    """A new file extended with ftruncate and filled through a mapping of `way`; its record."""
    name = file_name(way)
    path = os.path.join(target.path, name)
    metrics: dict[str, Any] = {"way": way, "file": name, "pmem_index": device.index, "block_bytes": BLOCK}
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    _HELD.append(fd)
    try:
        os.ftruncate(fd, FILE_BYTES)  # i_size only: the blocks are allocated by the faults below
        flags = MAP_SHARED_VALIDATE | MAP_SYNC if way == "map-sync" else mmap.MAP_SHARED
        view = mmap.mmap(fd, FILE_BYTES, flags, mmap.PROT_READ | mmap.PROT_WRITE)
    except OSError as exc:
        outcome = errno_name(exc.errno or 0)
        return target.observation(
            NAME, WRITE_OP, outcome, variant=way, detail=f"{way}: {exc}", metrics=metrics
        )
    _HELD.append(view)
    data = os.urandom(FILE_BYTES)
    began = time.monotonic()
    view[:] = data  # every fault allocates (and, for MAP_SYNC, commits) blocks
    stored = time.monotonic()
    synced = None
    if way == "msync":
        try:
            view.flush()  # msync(MS_SYNC) over the whole mapping
        except OSError as exc:
            outcome = errno_name(exc.errno or 0)
            return target.observation(
                NAME, WRITE_OP, outcome, variant=way, detail=f"msync: {exc}", metrics=metrics
            )
        synced = time.monotonic() - stored
    dax = statx_dax(path)[0]
    metrics.update(
        size_bytes=FILE_BYTES,
        checksums=checksums(data),
        extents=_extents(fd),
        store_s=round(stored - began, 4),
        written_at_uptime_s=round(_uptime(), 3),
        mapping="dax" if dax else "pagecache",
    )
    if synced is not None:
        metrics["msync_s"] = round(synced, 4)
    how = {
        "map-sync": "stored through MAP_SHARED_VALIDATE|MAP_SYNC (no msync, no cache flush instruction)",
        "msync": "stored through MAP_SHARED, then msync(MS_SYNC)",
        "no-sync": "stored through MAP_SHARED, no msync, no fsync, nothing closed or unmapped",
    }[way]
    detail = f"new file {name}: ftruncate to {FILE_BYTES >> 20} MiB, {how}"
    return target.observation(NAME, WRITE_OP, "ok", variant=way, detail=detail, metrics=metrics)


def _verify_all(plan: Plan, targets: list[tuple[PreparedDevice, Target]], writer: Any, failures: int) -> int:
    assert plan.crash is not None
    written = {(r["pmem_index"], r["fs"], r["way"]): r for r in map(crash_record, plan.crash["written"])}
    for device, target in targets:
        for way in CRASH_WAYS:
            record = written.get((device.index, target.scenario.fs, way))
            if record is None:
                writer.add(
                    target.observation(
                        NAME,
                        VERIFY_OP,
                        "skipped:not-written",
                        variant=way,
                        repetitions=0,
                        detail="boot 1 recorded no write for this way (see its crash-write observation)",
                    )
                )
                continue
            observation = verify_way(target, record)
            writer.add(observation)
        try:
            unmount(target.path)
        except OSError as exc:
            failures += 1
            print(f"PMEMKIT-STEP crash: {exc}", flush=True)
    return 1 if failures else 0


def verify_way(target: Target, record: dict[str, Any]) -> Observation:
    """What is left of one way's file after the kill and journal recovery."""
    way, path = record["way"], os.path.join(target.path, record["file"])
    expected = record["checksums"]
    metrics: dict[str, Any] = {"way": way, "file": record["file"], "written_size_bytes": record["size"]}
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        counts = {"intact": 0, "zero": 0, "other": 0, "missing": len(expected)}
        metrics.update(file_present=False, size_bytes=0, survival="lost", **_prefixed(counts))
        detail = f"{record['file']} is not there after journal recovery: the file was lost"
        return target.observation(NAME, VERIFY_OP, "ENOENT", variant=way, detail=detail, metrics=metrics)
    except OSError as exc:
        outcome = errno_name(exc.errno or 0)
        return target.observation(NAME, VERIFY_OP, outcome, variant=way, detail=str(exc), metrics=metrics)
    try:
        size = os.fstat(fd).st_size
        found = _read(fd, min(size, record["size"]))
        extents = _extents(fd)
    finally:
        os.close(fd)
    counts = compare_blocks(found, expected, record["block"])
    outcome = judge(True, size, record["size"], counts)
    metrics.update(
        file_present=True,
        size_bytes=size,
        extents=extents,
        extent_bytes=sum(e["length"] for e in extents) if isinstance(extents, list) else None,
        survival=SURVIVAL[outcome],
        mapping="dax" if statx_dax(path)[0] else "pagecache",
        **_prefixed(counts),
    )
    detail = (
        f"{SURVIVAL[outcome]}: size {size} of {record['size']} bytes; {counts['intact']} of "
        f"{len(expected)} blocks intact, {counts['zero']} zero, {counts['other']} other, "
        f"{counts['missing']} beyond the end"
    )
    return target.observation(NAME, VERIFY_OP, outcome, variant=way, detail=detail, metrics=metrics)


def _prefixed(counts: dict[str, int]) -> dict[str, int]:
    return {f"blocks_{k}": v for k, v in counts.items()}


def _read(fd: int, size: int) -> bytes:
    """Up to `size` bytes from the start, through read(2) (DAX: straight from pmem)."""
    parts, offset = [], 0
    while offset < size:
        piece = os.pread(fd, min(1 << 20, size - offset), offset)
        if not piece:
            break
        parts.append(piece)
        offset += len(piece)
    return b"".join(parts)
