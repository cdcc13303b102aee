"""Expected failures of the host-side VM harness, each with a distinct exit code for cli.py."""

from __future__ import annotations


class VmError(Exception):
    """A failure a user can act on: the message names the cause and the fix."""

    exit_code = 3


class VmConfigError(VmError):
    """Bad input: a pmem layout that cannot fit, a bad timeout, an unknown suite."""

    exit_code = 2


class HostToolMissing(VmError):
    """qemu, debootstrap or another host tool is not installed."""

    exit_code = 4


class ImageBuildError(VmError):
    """The guest image recipe could not be built."""

    exit_code = 5


class GuestFailure(VmError):
    """The guest timed out, panicked, was killed or its run failed; partial results are kept."""

    exit_code = 6


class RunInterrupted(GuestFailure):
    """SIGINT, SIGTERM or SIGHUP stopped the run; qemu was ended and what could be kept was kept.

    The exit code is the shell's for a death by that signal (130, 143, 129), so a caller that sent
    it sees it was honoured; the message names what was stopped and where the partial results are.
    """

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + int(signum)
