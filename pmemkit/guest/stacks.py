"""md and device-mapper stacks over two cleared pmem devices, always torn down again.

The seed mail's "hidden behind a RAID abstraction" world: md RAID0/RAID1 via mdadm, dm-linear and
dm-stripe via dmsetup. `Stack` is a context manager: whatever fails while building or using it,
the md array is stopped (and its superblocks wiped) or the dm table removed on exit, so no stacked
device outlives the step.
"""

from __future__ import annotations

import os
import subprocess
import time

from pmemkit.guest import GuestError
from pmemkit.guest.safety import clear_for_destruction

STACKS = ("md-raid0", "md-raid1", "dm-linear", "dm-stripe")
MD_DEVICE = "/dev/md0"
DM_NAME = "pmemkit-stack"
STRIPE_SECTORS = 4096  # 2 MiB chunks: DAX through dm-stripe needs page-multiple chunks; PMDs want 2 MiB


def _run(argv: list[str], env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        raise GuestError(f"{' '.join(argv)} failed: {lines[-1] if lines else proc.returncode}")
    return proc.stdout


def _sectors(device: str) -> int:
    return int(_run(["blockdev", "--getsz", device]).strip())


def _wait_for(path: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise GuestError(f"{path} did not appear within {timeout_s:.0f} s")
        time.sleep(0.05)


class Stack:
    """`with Stack("dm-stripe", a, b) as dev:` — `dev` is the stacked block device's path."""

    def __init__(self, kind: str, a: str, b: str) -> None:
        if kind not in STACKS:
            raise GuestError(f"unknown stack {kind!r}: use one of {', '.join(STACKS)}")
        self.kind, self.members = kind, (a, b)
        self.device: str | None = None

    def __enter__(self) -> str:
        # mdadm, dmsetup and blockdev take no `--`: give them only the checked, resolved node paths
        # (absolute, so never read as an option), not the names the caller passed.
        checked = tuple(clear_for_destruction(member).path for member in self.members)
        if not all(path.startswith("/") for path in checked):
            raise GuestError(f"stack members must resolve to absolute device paths, got {checked!r}")
        self.members = (checked[0], checked[1])
        try:
            self.device = self._build()
        except BaseException:
            self._teardown()
            raise
        return self.device

    def _build(self) -> str:
        a, b = self.members
        if self.kind.startswith("md-"):
            level = self.kind.removeprefix("md-raid")
            argv = [
                "mdadm",
                "--create",
                MD_DEVICE,
                "--run",
                "--force",
                "--metadata=1.2",
                f"--level={level}",
                "--raid-devices=2",
                "--homehost=pmemkit",
            ]
            if level == "1":
                argv.append("--assume-clean")  # no resync: the copy test writes every block it reads
            else:
                argv.append("--chunk=2048")  # KiB: 2 MiB chunks, as for dm-stripe
            _run(argv + [a, b], env={"MDADM_NO_UDEV": "1"})
            _wait_for(MD_DEVICE)
            return MD_DEVICE
        _run(["modprobe", "dm_mod"])
        size_a, size_b = _sectors(a), _sectors(b)
        if self.kind == "dm-linear":
            table = f"0 {size_a} linear {a} 0\n{size_a} {size_b} linear {b} 0\n"
        else:
            per = min(size_a, size_b) // STRIPE_SECTORS * STRIPE_SECTORS
            table = f"0 {2 * per} striped 2 {STRIPE_SECTORS} {a} 0 {b} 0\n"
        proc = subprocess.run(
            ["dmsetup", "create", DM_NAME], input=table, capture_output=True, text=True, timeout=60
        )
        if proc.returncode != 0:
            raise GuestError(f"dmsetup create {self.kind} failed: {proc.stderr.strip() or proc.returncode}")
        path = f"/dev/mapper/{DM_NAME}"
        if not os.path.exists(path):  # without udev, dmsetup may leave the node to us
            _run(["dmsetup", "mknodes", DM_NAME])
        _wait_for(path)
        return path

    def _teardown(self) -> None:
        if self.kind.startswith("md-"):
            subprocess.run(["mdadm", "--stop", MD_DEVICE], capture_output=True, timeout=60)
            subprocess.run(["mdadm", "--zero-superblock", *self.members], capture_output=True, timeout=60)
        else:
            subprocess.run(["dmsetup", "remove", "--retry", DM_NAME], capture_output=True, timeout=60)
            # without udev nobody removes the node dmsetup made; mknodes drops nodes of gone devices
            subprocess.run(["dmsetup", "mknodes"], capture_output=True, timeout=60)

    def __exit__(self, *exc: object) -> None:
        self._teardown()

    @staticmethod
    def leftovers() -> list[str]:
        """Active stacked devices still present (there must be none after a step).

        A stopped md array may linger in /sys/block with size 0 until the kernel reaps it; only a
        non-empty one counts. dm devices are asked of device-mapper itself.
        """
        found = []
        for name in os.listdir("/sys/block"):
            if name.startswith(("md", "dm-")):
                try:
                    with open(f"/sys/block/{name}/size") as f:
                        if int(f.read().strip() or 0) > 0:
                            found.append(f"/dev/{name}")
                except (OSError, ValueError):
                    continue
        return found


def queue_dax(device: str) -> bool | None:
    """The stacked device's `queue/dax`: does it advertise DAX to filesystems?

    Found through the node's device number: without udev, /dev/mapper/NAME is a plain node, not
    a symlink to dm-N.
    """
    try:
        rdev = os.stat(device).st_rdev
        with open(f"/sys/dev/block/{os.major(rdev)}:{os.minor(rdev)}/queue/dax") as f:
            return f.read().strip() == "1"
    except OSError:
        return None
