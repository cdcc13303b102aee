import pytest

from pmemkit.measure.stats import summarize, summarize_latency
from pmemkit.report.latency import (
    choose_unit,
    format_bytes_per_s,
    format_duration_ns,
    format_ratio,
    histogram_lines,
    render_histograms,
    render_latency,
    render_percentile_table,
)


@pytest.mark.parametrize(
    "ns, text",
    [
        (0, "0 ns"),
        (1, "1 ns"),
        (850, "850 ns"),
        (12.5, "12.5 ns"),
        (999, "999 ns"),
        (999.6, "1.00 µs"),
        (1234, "1.23 µs"),
        (12_345, "12.3 µs"),
        (123_456, "123 µs"),
        (999_999, "1.00 ms"),
        (45_600_000, "45.6 ms"),
        (2_000_000_000, "2.00 s"),
        (3_600_000_000_000, "3600 s"),
        (None, "—"),
        (float("nan"), "—"),
    ],
)
def test_format_duration_ns(ns, text):
    assert format_duration_ns(ns) == text


@pytest.mark.parametrize(
    "rate, binary, text",
    [
        (0, True, "0 B/s"),
        (512, True, "512 B/s"),
        (1536, True, "1.50 KiB/s"),
        (3.2 * (1 << 30), True, "3.20 GiB/s"),
        (1e9, True, "954 MiB/s"),
        (1e9, False, "1.00 GB/s"),
        (2.5e6, False, "2.50 MB/s"),
        (None, True, "—"),
    ],
)
def test_format_bytes_per_s(rate, binary, text):
    assert format_bytes_per_s(rate, binary=binary) == text


def test_format_ratio():
    assert format_ratio(0.9712) == "0.97×"
    assert format_ratio(None) == "—"


def test_choose_unit():
    assert choose_unit([850, 2000]) == ("ns", 1)
    assert choose_unit([2500, 40_000]) == ("µs", 1000)
    assert choose_unit([3_000_000]) == ("ms", 1_000_000)
    assert choose_unit([None, 0]) == ("ns", 1)


def _two():
    fast = summarize([1000, 2000, 3000, 4000, 100_000], overhead_ns=150)
    slow = summarize_latency([5000, 6000, 7000], overhead_ns=150, subtract=True)
    return {"pmemkit | 4K": fast, "fio 4K": slow}


def test_percentile_table_units_caption_and_rows():
    text = render_percentile_table(_two(), caption="kernel 6.1.0-56-amd64,\n tcg, nvdimm fsdax map=mem")
    lines = text.splitlines()
    header = lines[0]
    assert "| p50 (µs) |" in header and "| p99.99 (µs) |" in header and "nearest-rank" in header
    assert "| p50 95% CI (µs) |" in header and "| p99 95% CI (µs) |" in header
    assert "min (µs)" in header and "max (µs)" in header and "mean (µs)" in header
    assert lines[1] == "|" + "---|" * 13
    # fast: n=5, p50 = x[3] = 3000 ns = 3.00 µs; 5 samples cannot give a 95 % order-statistic CI
    # (0.5**5 > 2.5 %); p90 and above need 10+ samples: withheld with the count. Pipe escaped.
    assert lines[2].startswith("| pmemkit \\| 4K | 5 | 1.00 | 3.00 | — (n=5) | — (n=5) | — (n=5) |")
    assert "150 ns, not subtracted" in lines[2]
    # slow: overhead subtracted -> 4850, 5850, 6850; n=3 cannot reach a two-sided 95 % p50 CI
    assert lines[3].startswith("| fio 4K | 3 | 4.85 | 5.85 | — (n=3) | — (n=3) |")
    assert "150 ns, subtracted" in lines[3]
    assert lines[-2] == ""
    assert lines[-1].startswith(
        "Table: kernel 6.1.0-56-amd64, tcg, nvdimm fsdax map=mem. CI: 95% order-statistic"
    )


def test_table_without_caption_and_forced_unit():
    text = render_percentile_table({"a": summarize([1500, 2500])}, unit="ns")
    assert "p50 (ns)" in text and "| 1500 |" in text
    assert "Table: CI: 95% order-statistic" in text and "p99 >= 100" in text
    with pytest.raises(ValueError):
        render_percentile_table({"a": summarize([1])}, unit="fortnights")


def test_table_accepts_pairs_and_older_dicts():
    old = {"count": 2, "min": 10, "max": 20, "mean": 15.0, "p50": 10, "p90": 20, "p99": 20, "p99.9": 20}
    text = render_percentile_table([("old run", old)], caption="run 2025")
    row = text.splitlines()[2]
    # an old summary has no CI; with 2 samples only p50 is shown, the rest say the count
    assert row.startswith(
        "| old run | 2 | 10 | 10 | — | — (n=2) | — (n=2) | — | — (n=2) | — (n=2) | 20 | 15 |"
    )


def test_empty_table_still_carries_caption():
    text = render_percentile_table({}, caption="nothing ran")
    assert "No latency distributions" in text and "Table: nothing ran" in text


def test_histogram_bars():
    summary = summarize([1, 3, 3, 3, 3, 100])
    lines = histogram_lines(summary, width=8)
    assert len(lines) == 7  # [1,2) [2,4) [4,8) [8,16) [16,32) [32,64) [64,128)
    assert lines[0] == "[ 1 ns,   2 ns)  ##        1   16.7%"  # 1/4 of the fullest bucket's 8 chars
    assert "########" in lines[1] and lines[1].rstrip().endswith("4   66.7%")
    assert "#" not in lines[2]  # empty interior bucket: no bar
    assert lines[-1].startswith("[64 ns, 128 ns)  ##")
    assert len({len(line) for line in lines}) == 1  # aligned


def test_tiny_bucket_gets_one_character():
    lines = histogram_lines(summarize([5] * 1000 + [5000]), width=10, bar="*")
    assert lines[-1].split(")")[1].strip().startswith("* ")


def test_render_histograms_and_latency_carry_caption():
    text = render_histograms(_two(), caption="prov")
    assert text.count("```text") == 2 and text.count("Histogram: prov") == 2
    assert "**fio 4K** — 3 samples; timer overhead 150 ns subtracted" in text
    full = render_latency(_two(), caption="prov")
    assert full.startswith("| latency") and "Table: prov" in full and full.count("Histogram: prov") == 2


def test_a_16_sample_summary_prints_no_tail_percentile():
    """Issue 15: p99, p99.9 and p99.99 of 16 samples are all the maximum; the table must not show them."""
    samples = [1000 + 10 * i for i in range(15)] + [987_654]
    text = render_latency({"odirect 4 KiB": summarize(samples, overhead_ns=100)}, caption="prov")
    row = text.splitlines()[2]
    cells = [c.strip() for c in row.strip("|").split("|")]
    header = [c.strip() for c in text.splitlines()[0].strip("|").split("|")]
    for name in ("p99", "p99.9", "p99.99"):
        assert cells[header.index(f"{name} (µs)")] == "— (n=16)"
    assert "988" not in cells[header.index("p99.9 (µs)")]
    # the maximum still appears, as the maximum
    assert cells[header.index("max (µs)")] == "988"


def test_p50_and_p99_carry_their_ci_when_the_count_allows():
    import numpy as np

    summary = summarize(np.arange(1000, 3000))  # 2000 samples
    text = render_percentile_table({"x": summary}, unit="ns")
    cells = [c.strip() for c in text.splitlines()[2].strip("|").split("|")]
    header = [c.strip() for c in text.splitlines()[0].strip("|").split("|")]
    lo, hi = summary["ci"]["p50"]["lo"], summary["ci"]["p50"]["hi"]
    assert lo < summary["p50"] < hi
    assert cells[header.index("p50 95% CI (ns)")].startswith(f"{lo}–{hi} (±")
    assert cells[header.index("p99.9 (ns)")] == str(summary["p99.9"])
    assert cells[header.index("p99.99 (ns)")] == "— (n=2000)"


def test_fio_parity_table_shows_both_latencies_the_ratio_ci_and_the_verdict():
    from pmemkit.report.latency import FIO_PARITY_HEADERS, render_fio_parity

    own = summarize([10_000 + i for i in range(2048)])
    caller = summarize([13_000 + i for i in range(2048)])
    fio = summarize([10_200 + i for i in range(2048)])
    metrics = {
        "pmemkit_own": own,
        "pmemkit_caller": caller,
        "fio_clat": fio,
        "parity": {
            "rounds": 5,
            "ios_per_round": 4096,
            "p50": {"ratio": 0.98, "lo": 0.95, "hi": 1.02, "agrees": True},
            "caller_overhead_p50_ns": 3000.0,
        },
    }
    two = dict(
        metrics,
        parity=dict(metrics["parity"], rounds=2, p50={"ratio": 1.3, "lo": 1.2, "hi": 1.4, "agrees": None}),
    )
    text = render_fio_parity([("memmap raw ext4", metrics), ("pagecache", two), ("old", {"comparison": {}})])
    lines = text.splitlines()
    assert len(lines) == 2 + 2 + 2  # header, rule, two rows (the old observation has no parity), caption
    cells = [c.strip() for c in lines[2].strip("|").split("|")]
    assert cells[FIO_PARITY_HEADERS.index("pmemkit / fio [95% CI]")] == "0.98× [0.95, 1.02]"
    assert cells[FIO_PARITY_HEADERS.index("±10 %")] == "agrees"
    assert cells[FIO_PARITY_HEADERS.index("caller overhead p50 (µs)")] == "3.00"
    assert cells[FIO_PARITY_HEADERS.index("pmemkit own p50 (µs) [95% CI]")].startswith("11.0 ")
    assert "no verdict (2 round(s); needs 3)" in lines[3]
    assert render_fio_parity([]) == ""


def test_fio_parity_table_counts_the_rounds_taken_at_the_same_machine_speed():
    from pmemkit.report.latency import FIO_PARITY_HEADERS, render_fio_parity

    speed = {"own_over_fio_per_round": [1.02, 2.4, 0.97, None], "matched_rounds_p50_ratios": [0.912, 0.934]}
    parity = {"rounds": 4, "ios_per_round": 512, "p50": {"ratio": 1.0, "lo": 0.5, "hi": 1.6, "agrees": False}}
    column = FIO_PARITY_HEADERS.index("rounds at the same machine speed (their ratios)")
    text = render_fio_parity([("t", {"parity": {**parity, "speed": speed}}), ("older", {"parity": parity})])
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines()[2:4]]
    assert rows[0][column] == "2 of 3 (0.912, 0.934)"  # the round without a reference is not counted
    assert rows[1][column] == "—"  # a run from before the references
    assert "same machine speed" in text and "stay in the verdict" in text


def test_fio_parity_table_says_how_the_own_latency_was_measured():
    from pmemkit.report.latency import FIO_PARITY_HEADERS, render_fio_parity

    own = summarize([10_000 + i for i in range(512)])
    ci = {"ratio": 1.0, "lo": 0.95, "hi": 1.05, "agrees": True}
    parity = {"rounds": 3, "ios_per_round": 512, "p50": ci}
    rows = [
        ("helper", {"pmemkit_own": own, "parity": {**parity, "own_method": "helper"}}),
        ("traced", {"pmemkit_own": own, "parity": {**parity, "own_method": "tracepoints"}}),
        ("older run", {"pmemkit_own": own, "parity": parity}),  # before the helper: always traced
        ("none", {"pmemkit_own": None, "parity": {**parity, "own_method": None}}),
    ]
    lines = render_fio_parity(rows).splitlines()
    column = FIO_PARITY_HEADERS.index("own measured by")
    said = [[c.strip() for c in line.strip("|").split("|")][column] for line in lines[2:6]]
    assert said == ["C helper (prtime)", "raw_syscalls tracepoints", "raw_syscalls tracepoints", "—"]
    assert "prtime" in lines[-1] and "not subtracted" in lines[-1]
