"""The compiled timing helper in the real guest (TCG): the image carries it, the fio check uses it.

One boot: the fio suite, quick profile, on the smallest DAX device (memmap:256M, ext4). The helper
must be the image's own (its sha256 the one the image build recorded in the manifest), it must
have timed every pread fio did, and its p50 must be in a sane range of fio's clat p50 on the same
file (1/3…3×: a sanity bound that catches a helper timing the wrong thing, not the ±10 % parity,
which `make bench` measures on a quiet host; on a loaded 2-core host both tools' p50s jump between
about 16 and 30 µs from one run to the next, so a single round can read 0.5× or 2×).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pmemkit.vm.image import find_image
from tests.vm import helpers

pytestmark = pytest.mark.vm


def test_the_fio_check_times_its_own_latency_with_the_image_helper(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    argv = helpers.pmemkit_argv(
        "run", runs, "--pmem", "memmap:256M", "--fs", "ext4", "--suite", "fio", "--profile", "quick"
    )
    done, run_dir = helpers.run_once(argv, runs, timeout=1800)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    observations = helpers.records(run_dir)
    rand = [
        o for o in observations if o["operation"] == "fio-odirect-randread" and o["device"] == "/dev/pmem0"
    ]
    assert len(rand) == 1 and rand[0]["outcome"] == "ok", rand
    obs = rand[0]
    timing = obs["provenance"]["timing"]
    image = find_image()
    assert image is not None
    recorded = image.manifest()["prtime"]
    assert timing["own_method"] == "helper" and timing["helper"]["origin"] == "image"
    assert (
        timing["helper"]["sha256"] == recorded["sha256"]
        and timing["helper"]["compiler"] == recorded["compiler"]
    )
    metrics = obs["metrics"]
    assert (
        metrics["pmemkit_own"]["count"] == metrics["fio_clat"]["count"] == metrics["pmemkit_caller"]["count"]
    )
    speed = metrics["parity"]["speed"]  # the machine's speed around both sides of every round, in the guest
    rounds = metrics["parity"]["rounds"]
    assert len(speed["per_round_ns"]) == rounds and all(
        len(r["fio"]) == 2 and len(r["own"]) == 2 and min(r["fio"] + r["own"]) > 0
        for r in speed["per_round_ns"]
    ), speed
    ratio = metrics["pmemkit_own"]["p50"] / metrics["fio_clat"]["p50"]
    assert 1 / 3 <= ratio <= 3.0, f"helper p50 / fio clat p50 = {ratio:.2f}: {obs['detail']}"
    print(f"own/fio p50 {ratio:.3f}; {obs['detail']}")
