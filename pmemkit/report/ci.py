"""A run's verdict as KTAP (the kernel's test output format) and as JUnit XML, for CI dashboards.

Why: KernelCI, LKFT and kselftest read KTAP; GitLab and Jenkins read JUnit. One test case per
(target, operation): it passes when the kernel's outcome is the model's prediction, fails with both
outcomes and the kernel's words when not, and is skipped with its reason when the step did not
run (`skipped:*`) or the model makes no prediction for it. Pure: verdicts in, text out.
KTAP rules followed: Documentation/dev-tools/ktap.rst (version line, plan, `ok`/`not ok` lines,
`# SKIP` directive, diagnostic lines starting with `#`).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from pmemkit.report.verdict import Verdict

EMULATED = "emulated pmem is DRAM under QEMU: outcomes are the kernel's, timings are not media's"


def _xml_safe(text: str) -> str:
    """The text without characters XML 1.0 cannot carry (the guest's words may hold any byte)."""
    return "".join(c for c in str(text) if c in "\t\n\r" or ord(c) >= 0x20)


def _one_line(text: str) -> str:
    """A name or reason on one line without `#` (KTAP reads `#` as the start of a directive)."""
    return " ".join(_xml_safe(text).replace("#", "").split())


def case_names(found: list[Verdict]) -> list[str]:
    """`<target> <operation>`, unique: a repeated pair gets ` [2]`, ` [3]` …"""
    names, seen = [], {}
    for v in found:
        base = _one_line(f"{v.target} {v.observation.shown()}")
        seen[base] = seen.get(base, 0) + 1
        names.append(base if seen[base] == 1 else f"{base} [{seen[base]}]")
    return names


def ktap(found: list[Verdict], run_name: str, kernel: str) -> str:
    """KTAP version 1: a header comment, the plan `1..N`, one result line per case."""
    lines = ["KTAP version 1", f"# pmemkit run {_one_line(run_name)}, kernel {_one_line(kernel)}; {EMULATED}"]
    lines.append(f"1..{len(found)}")
    for number, (v, name) in enumerate(zip(found, case_names(found), strict=True), 1):
        if v.status == "pass":
            lines.append(f"ok {number} {name}")
        elif v.status == "skip":
            lines.append(f"ok {number} {name} # SKIP {_one_line(v.skip_reason)}")
        else:
            lines.append(f"not ok {number} {name}")
            lines.append(f"# {_one_line(v.message)}")
    counts = {s: sum(v.status == s for v in found) for s in ("pass", "fail", "skip")}
    lines.append(f"# totals: pass:{counts['pass']} fail:{counts['fail']} skip:{counts['skip']}")
    return "\n".join(lines) + "\n"


def junit(found: list[Verdict], run_name: str, kernel: str) -> str:
    """JUnit XML: one <testsuite> per run, a <testcase> per case (classname = target)."""
    failures = sum(v.status == "fail" for v in found)
    skipped = sum(v.status == "skip" for v in found)
    suites = ET.Element("testsuites", name="pmemkit", tests=str(len(found)), failures=str(failures))
    suite = ET.SubElement(
        suites,
        "testsuite",
        name=_one_line(f"pmemkit run {run_name}"),
        tests=str(len(found)),
        failures=str(failures),
        errors="0",
        skipped=str(skipped),
    )
    props = ET.SubElement(suite, "properties")
    ET.SubElement(props, "property", name="kernel", value=_xml_safe(kernel))
    ET.SubElement(props, "property", name="emulation", value=EMULATED)
    for v, name in zip(found, case_names(found), strict=True):
        target = _one_line(v.target)
        case = ET.SubElement(suite, "testcase", classname=target, name=name.removeprefix(target + " "))
        if v.status == "fail":
            failure = ET.SubElement(case, "failure", message=_xml_safe(v.message), type="model-mismatch")
            failure.text = _xml_safe(v.message)
        elif v.status == "skip":
            ET.SubElement(case, "skipped", message=_xml_safe(v.skip_reason))
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
