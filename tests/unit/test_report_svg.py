import xml.etree.ElementTree as ET

from pmemkit.measure.stats import summarize
from pmemkit.report.svg import bars_svg, histograms_svg

NS = "{http://www.w3.org/2000/svg}"


def test_histograms_are_valid_svg_with_provenance_and_one_bar_per_filled_bucket():
    fast = summarize([3000] * 90 + [40000] * 10)
    slow = summarize([50000] * 100)
    svg = histograms_svg([("memmap raw ext4", fast), ("page cache", slow)], "Faults", "kernel 6.1, tcg, DRAM")
    root = ET.fromstring(svg)
    texts = " ".join(t.text or "" for t in root.iter(f"{NS}text"))
    assert "kernel 6.1, tcg, DRAM" in texts and "memmap raw ext4" in texts and "page cache" in texts
    bars = [r for r in root.iter(f"{NS}rect") if r.get("fill") != "white"]
    filled = sum(1 for b in fast["histogram"] if b["count"]) + sum(1 for b in slow["histogram"] if b["count"])
    assert len(bars) == filled


def test_bars_with_reference_line():
    svg = bars_svg([("dax", 2.0), ("anon", 1.0)], 1.0, "Bandwidth", "kernel 6.1", "GiB/s")
    root = ET.fromstring(svg)
    assert any(line.get("stroke-dasharray") for line in root.iter(f"{NS}line"))
    widths = [float(r.get("width")) for r in root.iter(f"{NS}rect") if r.get("fill") != "white"]
    assert widths[0] == 2 * widths[1]  # bars are proportional to the values


def test_nothing_to_plot_gives_no_file():
    assert histograms_svg([], "t", "s") == "" and bars_svg([], None, "t", "s", "u") == ""
