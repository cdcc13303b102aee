"""Invariants of the model, checked by hypothesis over kernels, scenarios and sizes."""

from __future__ import annotations

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from pmemkit.model import ModelError, memmap_size, parse_kernel, predict, rule_by_name
from pmemkit.model.rules import SEED
from pmemkit.scenario import FILESYSTEMS, OPERATIONS, SOURCES, Scenario, is_outcome

#: Operations that hand the user mapping to get_user_pages(): the seed mail's MMU-visible case.
GUP_OPERATIONS = (
    "odirect-read-into-dax",
    "odirect-write-from-dax",
    "futex-shared",
    "vmsplice",
    "longterm-pin",
    "iouring-fixed-buffer",
    "fork-cow",
    "splice",
    "sendfile",
    "copy-file-range",
)
NAMED = [
    "4.0",
    "4.2",
    "4.15",
    "4.16",
    "5.17",
    "6.1",
    "6.1.5",
    "6.1.150",
    "6.1.0-50-amd64",
    "6.11-rc2",
    "6.12",
    "6.15",
    "6.17",
]

kernels = st.one_of(
    st.sampled_from(NAMED),
    st.builds(lambda a, b, c: f"{a}.{b}.{c}", st.integers(4, 6), st.integers(0, 20), st.integers(0, 300)),
)
ALIGNS = [None, 4096, 64 << 10, 2 << 20, 1 << 30]


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    mode = draw(st.sampled_from(["raw", "fsdax", "devdax", "sector"]))
    return Scenario(
        kernel=draw(kernels),
        source=draw(st.sampled_from(SOURCES)),
        mode=mode,
        map=draw(st.sampled_from(["mem", "dev"])) if mode in ("fsdax", "devdax") else None,
        force_raw=draw(st.booleans()) if mode == "raw" else False,
        fs=draw(st.sampled_from([None, *FILESYSTEMS])),
        align=draw(st.sampled_from(ALIGNS)),
    )


@settings(max_examples=300, deadline=None)
@given(scenarios(), st.sampled_from(OPERATIONS))
def test_prediction_is_well_formed(scenario: Scenario, op: str) -> None:
    p = predict(scenario, op)
    assert is_outcome(p.outcome)
    assert p.struct_page == (p.memmap_location != "none")
    assert p.memmap_location in ("dram", "pmem", "none")
    rule = rule_by_name(p.rule)
    assert parse_kernel(scenario.kernel) in rule.range
    assert op in rule.asks or rule.asks == ("available",)
    assert p.sources and SEED in p.explanation


@settings(max_examples=400, deadline=None)
@given(scenarios(), st.sampled_from(GUP_OPERATIONS))
def test_no_struct_page_no_gup_success_since_4_16(scenario: Scenario, op: str) -> None:
    assume(parse_kernel(scenario.kernel) >= parse_kernel("4.16"))
    p = predict(scenario, op)
    if not p.struct_page:
        # Since 4.16 ('dax: require struct page by default for filesystem dax') a device without
        # struct page never gets a DAX mapping: the operation meets page-cache pages (XFS turns DAX
        # off; ext4 4.16-4.20 too, 24f3478d664b, issue 10 item 2), which GUP pins like any RAM, or
        # it cannot be attempted at all (mount refused, mode unavailable: n/a).
        assert p.kind == "page cache" or p.outcome == "n/a", (p.kind, p.outcome, p.rule)
        if p.kind == "page cache" and p.outcome != "n/a" and op in ("odirect-read-into-dax", "vmsplice"):
            assert p.outcome == "ok"


@settings(max_examples=200, deadline=None)
@given(scenarios())
def test_devdax_and_pfn_devices_always_have_pages_when_they_exist(scenario: Scenario) -> None:
    p = predict(scenario, "dax-mount")
    if scenario.mode in ("fsdax", "devdax") and p.rule not in {
        "pfn-device-4.3",
        "map-dev-needs-altmap",
        "devdax-4.7",
        "virtio-pmem-5.3",
        "nfit-needs-libnvdimm",
        "no-pmem-driver",
        "memmap-needs-2m-alignment",
        "cxl-pmem-region-6.0",
    }:
        assert p.struct_page


size_kernels = st.sampled_from(["4.5", "5.16", "5.17", "6.1", "6.1.5", "6.1.150", "6.12"])
modes_maps = st.sampled_from(
    [
        ("fsdax", "mem"),
        ("fsdax", "dev"),
        ("devdax", "mem"),
        ("devdax", "dev"),
        ("raw", None),
        ("sector", None),
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    size_kernels,
    modes_maps,
    st.sampled_from(SOURCES[:2]),
    st.sampled_from([2 << 20, 1 << 30]),
    st.integers(2, 4096),
    st.integers(1, 4096),
)
def test_sizes_monotone_and_offset_plus_usable_is_size(
    kernel: str, mode_map: tuple[str, str | None], source: str, align: int, n1: int, dn: int
) -> None:
    mode, map_ = mode_map
    small, large = n1 * align, (n1 + dn) * align
    try:
        a = memmap_size(kernel, mode, small, map_, align, source)
    except ModelError:
        assume(False)
    b = memmap_size(kernel, mode, large, map_, align, source)
    for r in (a, b):
        assert r.usable_bytes + r.data_offset_bytes == r.size_bytes
        assert r.usable_bytes > 0
        assert 0 <= r.dram_bytes <= r.memmap_bytes
    for field in ("memmap_bytes", "data_offset_bytes", "usable_bytes", "dram_bytes"):
        assert getattr(a, field) <= getattr(b, field), field
    if (mode, map_) == ("fsdax", "mem"):
        assert b.dram_bytes * 64 == b.size_bytes  # 64 B per 4 KiB = 1.5625 %
