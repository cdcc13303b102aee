"""fio as an independent cross-check of pmemkit's own measurements (issue 4, "Independent cross-check").

In the guest, fio (Debian bookworm's fio 3.33) runs the same workloads as pmemkit on the same file:

- `odirect_randread_job`: O_DIRECT 4 KiB random reads, one `pread` per I/O (`ioengine=psync`,
  `direct=1`), like pmemkit's `odirect` experiment;
- `mmap_seqread_job`: a sequential read through a mapping of the file (`ioengine=mmap`, `rw=read`;
  fio memcpy()s each block out of the mapping), like pmemkit's `mmap` bandwidth run.

`run` starts fio and `parse` (pure) turns its `--output-format=json` into a `FioResult`; `compare`
puts pmemkit's p50, p99 and bandwidth beside fio's with the ratio pmemkit / fio and a ±10 % flag
(`pmemkit.measure.bandwidth.ratio` / `within`).

Which fio latency is compared, and why: **`lat` (fio's total latency, `lat_ns`)**. pmemkit times
each whole system call from user space (clock before the `pread`, clock after it returns), so the
like-for-like fio figure is the one that spans submission and completion: `lat = slat + clat`. For
synchronous engines (psync, mmap) fio does not measure a separate submission latency (`slat_ns.N`
is 0) and `clat` starts at the same instant as `lat`, so the two differ only by fio's own
bookkeeping (tens of ns); `lat` is still the figure whose definition matches pmemkit's. Every job
built here passes `--lat_percentiles=1`, without which fio 3.33 prints percentiles for `clat` only.
When a result carries no `lat` percentiles (fio JSON from elsewhere), `parse` falls back to `clat`
and `FioResult.latency_kind` / `compare()["fio_latency"]` say so.

fio's percentiles are not exact order statistics: fio bins every sample into log-linear buckets
(64 per power of two) and reports a bucket's value, so a fio percentile can be off by up to about
1/64 (≈1.6 %) of the value; pmemkit's are nearest-rank observed samples (`measure.stats`). The
±10 % target is far wider than that.

JSON format: the host used for development and the guest both run fio 3.33 (Debian bookworm), so
the fixtures in tests/unit/fixtures are the guest's format. Known differences in other versions,
handled here: fio < 3.0 reported latencies in µs (`clat`/`lat`), not ns (`clat_ns`/`lat_ns`), and is
refused; `bw_bytes` is missing in old 3.x releases (falls back to `bw` in KiB/s); before fio 3.20
enabling `lat_percentiles` turned the `clat` percentiles off (the `lat` ones are what we use).
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from pmemkit.guest import GuestError
from pmemkit.measure.bandwidth import ratio, within
from pmemkit.measure.stats import PERCENTILES

#: Percentiles every job asks fio for (fio's `percentile_list`), matching `measure.stats.PERCENTILES`.
PERCENTILE_LIST = "50:90:99:99.9:99.99"
#: The issue's target for pmemkit vs fio.
TOLERANCE = 0.10
#: What to tell the user when fio is missing.
INSTALL_HINT = "install it (Debian/Ubuntu: apt-get install -y fio); the pmemkit guest image must include fio"


@dataclass(frozen=True)
class FioJob:
    """One fio job, as command-line options (`argv`). Sizes are in bytes.

    `io_size` bounds the total bytes read (may exceed `size`: fio wraps around the region);
    `number_ios` bounds the number of I/Os. `extra` holds further fio options, written as
    `--key=value` after the standard ones (a value of None writes a bare `--key`).
    """

    name: str
    filename: str
    rw: str
    bs: int
    ioengine: str
    direct: bool = False
    size: int | None = None
    io_size: int | None = None
    number_ios: int | None = None
    extra: Mapping[str, str | int | None] = field(default_factory=dict)

    def options(self) -> list[tuple[str, str | None]]:
        """The job's fio options in command-line order."""
        opts: list[tuple[str, str | None]] = [
            ("name", self.name),
            ("filename", self.filename),
            ("rw", self.rw),
            ("bs", str(self.bs)),
            ("ioengine", self.ioengine),
            ("direct", "1" if self.direct else "0"),
        ]
        for key, value in (("size", self.size), ("io_size", self.io_size), ("number_ios", self.number_ios)):
            if value is not None:
                opts.append((key, str(value)))
        # Always: no time limit (the I/O count bounds the run), and percentiles of the total
        # latency `lat`, the figure compared with pmemkit (see the module docstring).
        opts += [
            ("time_based", "0"),
            ("lat_percentiles", "1"),
            ("percentile_list", PERCENTILE_LIST),
        ]
        opts += [(key, None if value is None else str(value)) for key, value in self.extra.items()]
        return opts

    def argv(self, fio: str = "fio") -> list[str]:
        """The fio command line for this single job, JSON output on stdout."""
        args = [fio, "--output-format=json"]
        args += [f"--{key}" if value is None else f"--{key}={value}" for key, value in self.options()]
        return args


def odirect_randread_job(path: str, size: int, ios: int, *, bs: int = 4096) -> FioJob:
    """O_DIRECT random reads of `bs` (4 KiB) bytes, `ios` of them, within the first `size` bytes of `path`.

    Mirrors pmemkit's odirect random-read: one synchronous `pread` per I/O (`psync`, queue depth 1),
    uniform random offsets aligned to `bs` (`norandommap=1`: drawn independently, repeats
    allowed; `randrepeat=1`: the same sequence every run). The total is `io_size = ios * bs`, so
    more I/Os than blocks in `size` is fine. `allow_file_create=0`: the file must already exist,
    fio must not lay out a fresh one — the cross-check reads *the same file* as pmemkit.
    """
    return _randread_job(
        "pmemkit-odirect-randread", path, size, ios, bs, ioengine="psync", direct=True, allow_file_create="0"
    )


def mmap_seqread_like_pmemkit(path: str, size: int, bs: int, loops: int) -> FioJob:
    """`mmap_seqread_job` with `invalidate=0`: fio must not drop the file's cached pages before each
    loop (pmemkit does not either; on DAX there are none), so both read the same memory."""
    job = mmap_seqread_job(path, size, bs, loops=loops)
    return dataclasses.replace(job, extra={**job.extra, "invalidate": "0"})


def null_randread_job(path: str, size: int, ios: int, *, bs: int = 4096) -> FioJob:
    """The same job shape with fio's `null` engine: no I/O at all, only fio's own cost per I/O.

    Under TCG every instruction is emulated, so fio's per-I/O bookkeeping (clock reads, latency
    histograms) is no longer negligible; this measures it, beside pmemkit's Python loop overhead.
    """
    return _randread_job("pmemkit-null-randread", path, size, ios, bs, ioengine="null")


def _randread_job(
    name: str, path: str, size: int, ios: int, bs: int, *, ioengine: str, direct: bool = False, **extra: str
) -> FioJob:
    """`ios` uniform random reads of `bs` bytes within `size`, the same sequence every run, by `ioengine`."""
    _check_positive(size=size, ios=ios, bs=bs)
    return FioJob(
        name=name,
        filename=path,
        rw="randread",
        bs=bs,
        ioengine=ioengine,
        direct=direct,
        size=size,
        io_size=ios * bs,
        extra={"norandommap": "1", "randrepeat": "1", **extra},
    )


def mmap_seqread_job(path: str, size: int, bs: int = 1 << 20, *, loops: int = 1) -> FioJob:
    """A sequential read of the first `size` bytes of `path` through a mapping, `bs` bytes per I/O.

    fio's mmap engine maps the file and memcpy()s each block out of it, so the first pass also
    pays the page faults; `loops > 1` repeats the pass over the same mapping region (fio reports
    all loops together). `allow_file_create=0` as in `odirect_randread_job`.
    """
    _check_positive(size=size, bs=bs, loops=loops)
    extra: dict[str, str | int | None] = {"allow_file_create": "0"}
    if loops != 1:
        extra["loops"] = str(loops)
    return FioJob(
        name="pmemkit-mmap-seqread",
        filename=path,
        rw="read",
        bs=bs,
        ioengine="mmap",
        direct=False,
        size=size,
        extra=extra,
    )


def with_lat_log(job: FioJob, prefix: str) -> FioJob:
    """`job` also writing every I/O's latency (ns) and offset to `{prefix}_clat.1.log` / `_lat.1.log`.

    `log_avg_msec=0` logs each I/O (no averaging); `log_offset=1` adds the offset column, so the
    exact offset sequence fio used can be replayed by pmemkit (issue 15: same offsets, same count).
    """
    extra = dict(job.extra)
    extra.update({"write_lat_log": prefix, "log_avg_msec": "0", "log_offset": "1"})
    return dataclasses.replace(job, extra=extra)


def pinned(job: FioJob, cpu: int) -> FioJob:
    """`job` run on CPU `cpu` only (`cpus_allowed`): the fio check pins fio and pmemkit's helper to the
    same CPU, so neither gains from a scheduler migration the other did not get."""
    return dataclasses.replace(job, extra={**job.extra, "cpus_allowed": str(cpu)})


def lat_log_path(prefix: str, kind: str = "clat") -> str:
    """The file fio 3.x writes for `write_lat_log=prefix` and one job: `{prefix}_{kind}.1.log`."""
    return f"{prefix}_{kind}.1.log"


def parse_lat_log(text: str) -> tuple[list[int], list[int]]:
    """fio's per-I/O latency log: (latencies in ns, offsets in bytes), in completion order.

    Each line is `time_ms, value, ddir, bs, offset[, prio]`; fio >= 3.0 logs latencies in ns.
    Raises GuestError on a line that is not of that form, or when offsets were not logged.
    """
    values: list[int] = []
    offsets: list[int] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) < 5:
            raise GuestError(f"fio latency log line {number} has no offset column (log_offset=1): {line!r}")
        try:
            values.append(int(fields[1]))
            offsets.append(int(fields[4]))
        except ValueError as exc:
            raise GuestError(f"fio latency log line {number} is not numeric: {line!r}") from exc
    return values, offsets


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise GuestError(f"fio job {name} must be a positive integer, not {value!r}")


@dataclass(frozen=True)
class LatencyStats:
    """One fio latency record (`lat_ns` or `clat_ns`) in ns; percentile keys as in stats.PERCENTILES."""

    count: int
    min_ns: float
    max_ns: float
    mean_ns: float
    percentiles: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "min": self.min_ns,
            "max": self.max_ns,
            "mean": self.mean_ns,
            **self.percentiles,
        }


@dataclass(frozen=True)
class FioResult:
    """The read side of one fio job's JSON result. Latencies in ns, bandwidth in bytes/s."""

    fio_version: str
    job_name: str
    job_options: dict[str, str]
    iops: float
    bw_bytes: float
    io_bytes: int
    total_ios: int
    runtime_ms: int
    latency_kind: str  # "lat" or "clat": which record `latency` is (see the module docstring)
    latency: LatencyStats
    lat: LatencyStats | None
    clat: LatencyStats | None

    def percentile(self, name: str) -> float | None:
        """The compared latency's percentile `name` (e.g. "p99") in ns, None if fio did not report it."""
        return self.latency.percentiles.get(name)

    @property
    def mean_ns(self) -> float:
        return self.latency.mean_ns

    def to_dict(self) -> dict[str, Any]:
        return {
            "fio_version": self.fio_version,
            "job_name": self.job_name,
            "job_options": dict(self.job_options),
            "iops": self.iops,
            "bw_bytes": self.bw_bytes,
            "io_bytes": self.io_bytes,
            "total_ios": self.total_ios,
            "runtime_ms": self.runtime_ms,
            "latency_kind": self.latency_kind,
            "latency": self.latency.to_dict(),
            "lat": None if self.lat is None else self.lat.to_dict(),
            "clat": None if self.clat is None else self.clat.to_dict(),
        }


def _percentile_name(fio_key: str) -> str | None:
    """fio's "99.900000" -> "p99.9"; None for a key that is not a number."""
    try:
        value = Decimal(fio_key)
    except InvalidOperation:
        return None
    if not value.is_finite():
        return None
    return "p" + format(value.normalize(), "f")


def _latency(record: Any, what: str) -> LatencyStats | None:
    """A fio latency record, or None when fio measured nothing there (N == 0, as slat for psync)."""
    if not isinstance(record, dict) or not record.get("N"):
        return None
    try:
        raw = record.get("percentile") or {}
        by_name = {_percentile_name(k): float(v) for k, v in raw.items()}
        return LatencyStats(
            count=int(record["N"]),
            min_ns=float(record["min"]),
            max_ns=float(record["max"]),
            mean_ns=float(record["mean"]),
            percentiles={name: by_name[name] for name in PERCENTILES if name in by_name},
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise GuestError(f"fio JSON: malformed {what} record: {exc!r}") from exc


def _json_document(text: str) -> Any:
    """The JSON object in fio's stdout; fio may print notes on lines before it."""
    start = text.find("{")
    while start > 0 and text[start - 1] != "\n":  # the document starts at the beginning of a line
        start = text.find("{", start + 1)
    if start < 0:
        first = text.strip().splitlines()[0] if text.strip() else "(empty output)"
        raise GuestError(f"fio output is not JSON: {first[:200]}")
    try:
        return json.loads(text[start:])
    except json.JSONDecodeError as exc:
        raise GuestError(f"fio output is not valid JSON: {exc}") from exc


def parse(json_text: str) -> FioResult:
    """Parse fio's `--output-format=json` for a single job; the read side only. Pure.

    Raises GuestError for output that is not fio JSON, holds no or several jobs, reports a job
    error, did no reads, or comes from fio < 3.0 (latencies in µs, not ns).
    """
    doc = _json_document(json_text)
    if not isinstance(doc, dict) or not isinstance(doc.get("jobs"), list):
        raise GuestError("fio JSON has no 'jobs' list: is this fio --output-format=json output?")
    jobs = doc["jobs"]
    if len(jobs) != 1:
        raise GuestError(f"fio JSON holds {len(jobs)} jobs; pmemkit runs exactly one per fio call")
    job = jobs[0]
    name = str(job.get("jobname", "?"))
    if job.get("error"):
        raise GuestError(f"fio job {name} failed with error {job['error']}")
    read = job.get("read")
    if not isinstance(read, dict):
        raise GuestError(f"fio job {name}: no 'read' section in the JSON")
    if "lat_ns" not in read and "clat_ns" not in read:
        raise GuestError(f"fio job {name}: no lat_ns/clat_ns in the JSON (fio >= 3.0 is needed)")
    lat = _latency(read.get("lat_ns"), "lat_ns")
    clat = _latency(read.get("clat_ns"), "clat_ns")
    if lat is not None and lat.percentiles:
        kind, chosen = "lat", lat
    elif clat is not None:
        kind, chosen = "clat", clat
    elif lat is not None:
        kind, chosen = "lat", lat
    else:
        raise GuestError(f"fio job {name} did no reads (no latency samples): check rw, size and the file")
    try:
        io_bytes = int(read["io_bytes"])
        runtime_ms = int(read["runtime"])
        bw_bytes = float(read["bw_bytes"]) if "bw_bytes" in read else float(read["bw"]) * 1024
        result = FioResult(
            fio_version=str(doc.get("fio version", "unknown")),
            job_name=name,
            job_options={str(k): str(v) for k, v in (job.get("job options") or {}).items()},
            iops=float(read["iops"]),
            bw_bytes=bw_bytes,
            io_bytes=io_bytes,
            total_ios=int(read["total_ios"]),
            runtime_ms=runtime_ms,
            latency_kind=kind,
            latency=chosen,
            lat=lat,
            clat=clat,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise GuestError(f"fio job {name}: malformed read section: {exc!r}") from exc
    if not (math.isfinite(result.bw_bytes) and math.isfinite(result.iops)):
        raise GuestError(f"fio job {name}: non-finite bandwidth or IOPS in the JSON")
    return result


def _last_error_line(stderr: str, returncode: int) -> str:
    """fio's last "fio: ..." line on stderr, else its last non-empty line, else the exit status."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("fio:"):
            return line
    return lines[-1] if lines else f"exit status {returncode}"


def run(job: FioJob, timeout_s: float, *, fio: str = "fio") -> FioResult:
    """Run `job` with the fio binary `fio` (a name on PATH or a path) and parse its JSON result.

    Raises GuestError when fio is missing (with how to install it), times out, exits non-zero
    (with fio's last error line on stderr) or prints output `parse` refuses.
    """
    exe = shutil.which(fio)
    if exe is None:
        raise GuestError(f"fio not found ({fio!r} is not on PATH): {INSTALL_HINT}")
    argv = job.argv(exe)
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
    except FileNotFoundError as exc:
        raise GuestError(f"fio not found ({exe}): {INSTALL_HINT}") from exc
    except subprocess.TimeoutExpired as exc:
        raise GuestError(
            f"fio job {job.name} did not finish within {timeout_s:g} s: reduce size/ios or raise the timeout"
        ) from exc
    except OSError as exc:
        raise GuestError(f"cannot run fio ({exe}): {exc.strerror or exc}") from exc
    if proc.returncode != 0:
        raise GuestError(f"fio job {job.name} failed: {_last_error_line(proc.stderr, proc.returncode)}")
    return parse(proc.stdout)


def _side(pmemkit: Any, fio: Any) -> dict[str, Any]:
    return {
        "pmemkit": pmemkit,
        "fio": fio,
        "ratio": ratio(pmemkit, fio),
        "within_10pct": within(pmemkit, fio, TOLERANCE),
    }


def compare(
    pmemkit_summary: dict[str, Any], pmemkit_bw_bytes: float | None, fio: FioResult
) -> dict[str, Any]:
    """pmemkit beside fio: p50, p99 (ns) and bandwidth (bytes/s), each with ratio pmemkit / fio.

    `pmemkit_summary` is a `measure.stats.summarize` dict (keys `p50`, `p99`, ns); missing keys or
    a missing bandwidth give None figures, ratios and flags (the report prints "—"). fio's side is
    its total latency `lat` (or `clat` when the JSON has no `lat` percentiles; `fio_latency` says
    which) — see the module docstring. `within_10pct` is `measure.bandwidth.within(pmemkit, fio,
    0.10)`. If pmemkit subtracted its timer overhead, fio's figure still includes fio's own: the
    dict carries `pmemkit_overhead_subtracted` so the report can say so.
    """
    summary = pmemkit_summary or {}
    unit = summary.get("unit", "ns")
    if unit != "ns":
        raise GuestError(f"pmemkit latency summary is in {unit!r}; compare() needs ns")
    return {
        "job": fio.job_name,
        "fio_version": fio.fio_version,
        "fio_latency": fio.latency_kind,
        "tolerance": TOLERANCE,
        "units": {"p50": "ns", "p99": "ns", "bw_bytes": "bytes/s"},
        "pmemkit_overhead_subtracted": bool(summary.get("overhead_subtracted", False)),
        "p50": _side(summary.get("p50"), fio.percentile("p50")),
        "p99": _side(summary.get("p99"), fio.percentile("p99")),
        "bw_bytes": _side(pmemkit_bw_bytes, fio.bw_bytes),
    }
