"""KTAP and JUnit output (`pmemkit report RUN --format ktap|junit`), read back by independent parsers:
tap.py for TAP/KTAP lines, the rules of the kernel's Documentation/dev-tools/ktap.rst written out
below, and junitparser for JUnit XML."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

from click.testing import CliRunner
from junitparser import Failure, JUnitXml, Skipped
from tap.parser import Parser

from pmemkit.cli import main
from pmemkit.report.ci import junit, ktap
from pmemkit.report.markdown import RunContents
from pmemkit.report.verdict import verdicts
from pmemkit.scenario import Observation, Prediction, Scenario

SC = Scenario(kernel="6.1.0-57-amd64", source="nvdimm", mode="fsdax", map="mem", fs="ext4")


def _obs(op: str, outcome: str, detail: str = "") -> Observation:
    return Observation("kapi", op, outcome, SC, "/dev/pmem0", detail=detail)


def _mixed():
    """One agreeing, one disagreeing, one skipped, one the model does not answer."""
    observations = [
        _obs("mremap", "ok"),
        _obs("vmsplice", "EFAULT", "vmsplice: Bad address \x07#1"),
        _obs("fork-cow", "skipped:no-tool", "fio is not installed"),
        _obs("toy-step", "ok"),
    ]
    run = RunContents("r1", {}, {}, {"kernel": "6.1.0-57-amd64"}, observations)

    def predictor(obs):
        if obs.operation == "toy-step":
            return None
        return Prediction(obs.scenario, obs.operation, "ok", True, "dram", "gup-rule", ["mm/gup.c"], ">=6.1")

    return verdicts(run, predictor)


def ktap_rules(text: str) -> dict[str, int]:
    """Check text against Documentation/dev-tools/ktap.rst (v6.1) and count results.

    Version line first; a plan `1..N`; result lines `ok|not ok <n> [<name>] [# <directive>]`
    numbered 1..N in order; a name holds no `#`; other lines are diagnostics starting with `#`.
    """
    lines = text.splitlines()
    assert lines[0] == "KTAP version 1"
    plans = [line for line in lines if re.fullmatch(r"1\.\.\d+", line)]
    assert len(plans) == 1
    expected = int(plans[0][3:])
    counts, number = {"pass": 0, "fail": 0, "skip": 0}, 0
    for line in lines[1:]:
        if line == plans[0]:
            continue
        m = re.fullmatch(r"(ok|not ok) (\d+)(?: ([^#]*?))?(?: # (SKIP|TODO|XFAIL)(?: (.*))?)?", line)
        if m is None:
            assert line.startswith("#"), f"neither a result nor a diagnostic: {line!r}"
            continue
        number += 1
        assert int(m.group(2)) == number and m.group(3), line
        if m.group(4) == "SKIP":
            assert m.group(1) == "ok" and m.group(5), line  # a skip says why
            counts["skip"] += 1
        else:
            counts["pass" if m.group(1) == "ok" else "fail"] += 1
    assert number == expected
    return counts


def test_ktap_of_a_mixed_run_by_the_rules_and_by_tap_py():
    found = _mixed()
    text = ktap(found, "r1", "6.1.0-57-amd64")
    assert ktap_rules(text) == {"pass": 1, "fail": 1, "skip": 2}
    parsed = list(Parser().parse_text(text))
    results = [line for line in parsed if line.category == "test"]
    assert [(r.ok, r.skip) for r in results] == [(True, False), (False, False), (True, True), (True, True)]
    assert [p for p in parsed if p.category == "plan"][0].expected_tests == 4
    failure = text.splitlines()[
        text.splitlines().index("not ok 2 nvdimm fsdax map=mem ext4 (/dev/pmem0) vmsplice") + 1
    ]
    assert failure == "# kernel EFAULT, model ok (rule gup-rule); kernel said: vmsplice: Bad address 1"
    assert "ok 3 nvdimm fsdax map=mem ext4 (/dev/pmem0) fork-cow # SKIP no-tool: fio is not installed" in text
    assert "# SKIP the model makes no prediction for this step (observed ok)" in text


def test_junit_of_a_mixed_run_reads_back():
    found = _mixed()
    xml = JUnitXml.fromstring(junit(found, "r1", "6.1.0-57-amd64").encode())
    suites = list(xml) if hasattr(xml, "__iter__") else [xml]
    (suite,) = suites
    cases = list(suite)
    assert (suite.tests, suite.failures, suite.skipped, suite.errors) == (4, 1, 2, 0)
    assert len(cases) == 4
    failed = [c for c in cases if any(isinstance(r, Failure) for r in c.result)]
    skipped = [c for c in cases if any(isinstance(r, Skipped) for r in c.result)]
    assert [c.name for c in failed] == ["vmsplice"] and len(skipped) == 2
    assert failed[0].classname == "nvdimm fsdax map=mem ext4 (/dev/pmem0)"
    assert "kernel EFAULT, model ok" in failed[0].result[0].message


def test_the_recorded_run_as_ktap_and_junit_through_the_cli(recorded_run):
    result = CliRunner().invoke(main, ["report", str(recorded_run), "--format", "ktap"])
    assert result.exit_code == 0, result.output
    assert ktap_rules(result.stdout) == {"pass": 351, "fail": 0, "skip": 0}
    results = [line for line in Parser().parse_text(result.stdout) if line.category == "test"]
    assert len(results) == 351 and all(r.ok for r in results)
    assert not (recorded_run / "report.html").exists()  # --format prints, writes nothing
    result = CliRunner().invoke(main, ["report", str(recorded_run), "--format", "junit"])
    assert result.exit_code == 0
    root = ET.fromstring(result.stdout)
    suite = root.find("testsuite")
    assert suite is not None and suite.get("tests") == "351" and suite.get("failures") == "0"
    assert len(suite.findall("testcase")) == 351


def test_a_disagreeing_run_still_exits_0_and_bad_options_are_one_line(recorded_run):
    lines = (recorded_run / "observations.jsonl").read_text().splitlines()
    first = json.loads(lines[0])  # memmap devmem odirect-read-into-pageless: EFAULT, predicted EFAULT
    first["outcome"] = "ok"
    (recorded_run / "observations.jsonl").write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n")
    result = CliRunner().invoke(main, ["report", str(recorded_run), "--format", "ktap"])
    assert result.exit_code == 0
    assert ktap_rules(result.stdout) == {"pass": 350, "fail": 1, "skip": 0}
    assert "# kernel ok, model EFAULT" in result.stdout
    result = CliRunner().invoke(main, ["report", str(recorded_run), "--format", "ktap", "--json"])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("pmemkit: error:")
