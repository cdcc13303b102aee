"""`pmemkit exec` and `pmemkit shell`, guest side: prepare and mount every planned device, then run the
user's command or an interactive shell with the mounts in environment variables.

Why framed lines for `exec`: the serial console is the only stream back that is there from the first
instant and needs nothing loaded, but it carries one byte stream. The command's stdout and stderr
are read here from two pipes and written to the console as `PMEMKIT-OUT1 <base64>` and
`PMEMKIT-OUT2 <base64>` lines, and its status as `PMEMKIT-EXIT <n>`, so the host can split them
again and tell them from anything else on the console. The kernel's console log level is lowered
first: a kernel message printed in the middle of a frame would tear it (dmesg keeps them all).

The shell runs on the serial line itself (/dev/ttyS0, made its controlling terminal so Ctrl-C and
job control work), between `PMEMKIT-SHELL-BEGIN` and `PMEMKIT-SHELL-END` lines; the host passes
the bytes in between straight through to the user's terminal. When the shell exits, the session
unmounts everything and the guest init powers off.
"""

from __future__ import annotations

import base64
import fcntl
import os
import re
import selectors
import shutil
import struct
import subprocess
import sys
import termios
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pmemkit.guest.prepare import PreparedDevice, load_legacy_pmem, match_devices, mkfs, mount_dax, unmount
from pmemkit.guest.safety import legacy_pmem_ranges
from pmemkit.guest.targets import EXPECTED, step
from pmemkit.plan import Plan

OUT_PREFIX = {1: "PMEMKIT-OUT1 ", 2: "PMEMKIT-OUT2 "}
EXIT_PREFIX = "PMEMKIT-EXIT "
SHELL_BEGIN = "PMEMKIT-SHELL-BEGIN"
SHELL_END = "PMEMKIT-SHELL-END"
FATAL_PREFIX = "PMEMKIT-FATAL "
CONSOLE_TTY = "/dev/ttyS0"
COPY_IN_SHARE = "copy-in"  # under the results share: what the host staged there
COPY_IN_DIR = "/tmp/pmemkit-in"  # tmpfs: the command's working directory, first on PATH
OUT_SHARE = "out"  # under the results share: kept on the host in RUN/guest/out/
BIN_DIR = "/tmp/pmemkit-bin"  # a `pmemkit` command for the guest (runs the source the guest copied)
SOURCE_DIR = "/tmp/src"  # where vm/guest-init.sh copied the pmemkit package
CHUNK = 3072  # bytes per frame: 4 KiB of base64
SAFE_TERM = re.compile(r"[A-Za-z0-9._+-]{1,64}")


@dataclass
class Mounted:
    """One planned device after preparation: where it is mounted (if it is) and the kernel's answer."""

    index: int
    device: PreparedDevice
    path: str
    fs: str | None
    mountpoint: str | None
    dax: str  # ok | fallback | an errno name | n/a (device-dax) | not mounted (--no-mount)


def run_session(plan: Plan, out_dir: Path) -> int:
    """Prepare, run the command or the shell, unmount; 0 when the session ran (whatever the command
    returned), 1 when the devices could not be prepared (a `PMEMKIT-FATAL` line says why)."""
    session = plan.session or {}
    _quiet_kernel_console()
    step(f"preparing {len(plan.pmem)} pmem device(s)")
    try:
        load_legacy_pmem(len(legacy_pmem_ranges()))
        devices = match_devices(plan.pmem, plan.placements)
        fs = plan.filesystems[0] if plan.filesystems else None
        targets = _prepare(devices, fs, mount=not session.get("no_mount"))
    except EXPECTED as exc:
        _console(f"{FATAL_PREFIX}preparing the pmem devices failed: {type(exc).__name__}: {exc}")
        return 1
    try:
        env = session_env(targets, session)
        _copy_in(out_dir, session.get("copy_in") or [])
        os.makedirs(out_dir / OUT_SHARE, exist_ok=True)
        if session.get("mode") == "shell":
            _shell(env, targets, session)
        else:
            status = run_command(list(session.get("argv") or []), env)
            _console(f"{EXIT_PREFIX}{status}")
    finally:
        for target in targets:
            if target.mountpoint:
                try:
                    unmount(target.mountpoint)
                except EXPECTED as exc:
                    step(f"could not unmount {target.mountpoint}: {exc}")
    return 0


def _console(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _quiet_kernel_console() -> None:
    """Only emergencies (a panic) reach the console from now on; dmesg still has every message."""
    try:
        with open("/proc/sys/kernel/printk", "w") as f:
            f.write("1")
    except OSError as exc:
        step(f"could not lower the console log level: {exc.strerror}")


def _prepare(devices: list[PreparedDevice], fs: str | None, mount: bool) -> list[Mounted]:
    """mkfs and mount -o dax=always each block device (one filesystem each); device-dax as it is."""
    found = []
    for device in devices:
        path = device.namespace.path or "?"
        if device.namespace.blockdev is None or not mount or fs is None:
            dax = "n/a" if device.namespace.blockdev is None else "not mounted"
            found.append(Mounted(device.index, device, path, None, None, dax))
            step(f"{device.config.spec()}: {path} ({device.namespace.mode}), {dax}")
            continue
        step(f"{device.config.spec()}: mkfs.{fs} {path}, mount -o dax=always")
        mkfs(path, fs)
        result = mount_dax(path, fs)
        found.append(Mounted(device.index, device, path, fs, result.mountpoint, result.outcome))
        where = result.mountpoint or "not mounted"
        step(f"{device.config.spec()}: {path} {fs} at {where}: DAX {result.outcome} ({result.detail})")
    return found


def session_env(targets: list[Mounted], session: dict[str, Any]) -> dict[str, str]:
    """The command's environment: PATH, the mounts and, per planned device i, PMEMKIT_PMEM<i>_*."""
    env = {
        "PATH": f"{COPY_IN_DIR}:{BIN_DIR}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "TERM": _term(session.get("term")),
        "PMEMKIT_COPY_IN": COPY_IN_DIR,
        "PMEMKIT_OUT": f"/mnt/pmemkit-out/{OUT_SHARE}",
        "PMEMKIT_DAX_MOUNTS": " ".join(t.mountpoint for t in targets if t.mountpoint and t.dax == "ok"),
        "PMEMKIT_DAX_DEVICES": " ".join(t.path for t in targets if t.device.namespace.blockdev is None),
        "PMEMKIT_PMEM_COUNT": str(len(targets)),
    }
    for t in targets:
        prefix = f"PMEMKIT_PMEM{t.index}_"
        ns = t.device.namespace
        env.update(
            {
                prefix + "SPEC": t.device.config.spec(),
                prefix + "DEV": t.path,
                prefix + "MODE": ns.mode,
                prefix + "MAP": (ns.map or "") if ns.mode in ("fsdax", "devdax") else "",
                prefix + "FS": t.fs or "",
                prefix + "MOUNT": t.mountpoint or "",
                prefix + "DAX": t.dax,
            }
        )
    return env


def _term(value: Any) -> str:
    """The host terminal's TERM when it is a plain name, else vt100 (every terminal speaks it)."""
    return value if isinstance(value, str) and SAFE_TERM.fullmatch(value) else "vt100"


def _copy_in(out_dir: Path, items: list[dict[str, Any]]) -> None:
    """Copy the host's staged files from the share to tmpfs (9p is slow, and maps no exec bit)."""
    os.makedirs(COPY_IN_DIR, exist_ok=True)
    os.makedirs(BIN_DIR, exist_ok=True)
    wrapper = Path(BIN_DIR) / "pmemkit"
    wrapper.write_text(f'#!/bin/sh\nPYTHONPATH={SOURCE_DIR} exec python3 -m pmemkit "$@"\n')
    wrapper.chmod(0o755)
    for item in items:
        name = os.path.basename(str(item.get("name", "")))
        if not name or name.startswith("."):
            step(f"copy-in: refused the name {name!r}")
            continue
        target = os.path.join(COPY_IN_DIR, name)
        shutil.copyfile(out_dir / COPY_IN_SHARE / name, target, follow_symlinks=False)
        os.chmod(target, int(item.get("mode", 0o644)) & 0o777)
        step(f"copied in {target}")


def run_command(argv: list[str], env: dict[str, str]) -> int:
    """Run argv with stdin from /dev/null, its stdout and stderr framed onto the console as they come;
    returns its status the way a shell reports it (127 not found, 126 not runnable, 128+N killed)."""
    if not argv:
        _frame(2, b"pmemkit exec: no command\n")
        return 127
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=COPY_IN_DIR,
            start_new_session=True,
        )
    except FileNotFoundError:
        _frame(2, f"pmemkit exec: {argv[0]}: command not found\n".encode())
        return 127
    except OSError as exc:
        _frame(2, f"pmemkit exec: {argv[0]}: {exc.strerror}\n".encode())
        return 126
    assert proc.stdout is not None and proc.stderr is not None
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ, 1)
    selector.register(proc.stderr, selectors.EVENT_READ, 2)
    while selector.get_map():
        for key, _ in selector.select():
            data = os.read(key.fileobj.fileno(), CHUNK)  # type: ignore[union-attr]
            if data:
                _frame(key.data, data)
            else:
                selector.unregister(key.fileobj)
    status = proc.wait()
    return 128 - status if status < 0 else status


def _frame(stream: int, data: bytes) -> None:
    _console(OUT_PREFIX[stream] + base64.b64encode(data).decode("ascii"))


def banner(targets: list[Mounted]) -> str:
    """What the shell user reads first: where each device is, and how to leave."""
    lines = ["pmemkit shell: the guest's pmem devices"]
    for t in targets:
        where = f"{t.fs} at {t.mountpoint}" if t.mountpoint else "not mounted"
        mode = t.device.namespace.mode
        lines.append(f"  {t.device.config.spec()}: {t.path} ({mode}), {where}, DAX {t.dax}")
    lines.append("  $PMEMKIT_DAX_MOUNTS and $PMEMKIT_PMEM<i>_DEV/_MOUNT/_DAX name them")
    lines.append("  `exit` powers the guest off")
    return "\n".join(lines) + "\n"  # the terminal adds the carriage returns (onlcr)


def _shell(env: dict[str, str], targets: list[Mounted], session: dict[str, Any]) -> None:
    """bash on the serial line, its controlling terminal, sized like the host's; returns when it exits."""
    fd = os.open(CONSOLE_TTY, os.O_RDWR | os.O_NOCTTY)
    try:
        rows, cols = int(session.get("rows") or 0), int(session.get("cols") or 0)
        if rows > 0 and cols > 0:
            fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", min(rows, 999), min(cols, 999), 0, 0))
        env = {**env, "PS1": r"pmemkit-guest:\w# "}
        _console(SHELL_BEGIN)
        os.write(fd, banner(targets).encode())
        proc = subprocess.Popen(
            ["/bin/bash", "--noprofile", "--norc", "-i"],
            stdin=fd,
            stdout=fd,
            stderr=fd,
            env=env,
            cwd=COPY_IN_DIR,
            start_new_session=True,
            preexec_fn=_take_terminal,
        )
        status = proc.wait()
    finally:
        os.close(fd)
    _console(f"\r\n{SHELL_END} {status}")


def _take_terminal() -> None:
    """In the shell's child, after setsid: make the serial line its controlling terminal."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
