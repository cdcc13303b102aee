"""The merged report of a matrix: pure, (identity, run contents) pairs in → Markdown out.

One table per question (experiment), kernel by kernel: for each (configuration, target,
operation) the outcome on each kernel beside the model's prediction for that kernel; rows where
the kernels differ come first, and a disagreement with the model is marked **≠** (the join and
the cell text are `report.markdown`'s, used read-only). Then the headline latency and bandwidth
of each cell side by side. Nothing here names a path or a directory, so the report of a matrix and
that of `pmemkit merge` over the same run directories are the same text.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pmemkit.report.markdown import EMULATION_WARNING, Joined, RunContents, join
from pmemkit.report.tables import table

if TYPE_CHECKING:
    from pmemkit.matrix.merge import RunIdentity

ABSENT = "—"


@dataclass
class _Row:
    configuration: str
    target: str
    operation: str
    by_kernel: dict[str, list[tuple[str, Joined | None]]] = field(default_factory=lambda: defaultdict(list))

    def cell(self, kernel: str) -> str:
        found = self.by_kernel.get(kernel)
        if not found:
            return ABSENT
        texts = []
        for outcome, joined in found:
            text = joined.cell() if joined is not None else f"`{outcome}`"
            if text not in texts:
                texts.append(text)
        return " / ".join(texts)

    def outcomes(self, kernel: str) -> frozenset[str]:
        return frozenset(o for o, _ in self.by_kernel.get(kernel, []))

    def disagrees(self) -> bool:
        return any(
            j is not None and j.prediction is not None and not j.agree
            for v in self.by_kernel.values()
            for _, j in v
        )

    def rank(self, kernels: list[str]) -> int:
        """0: the kernels answered differently; 1: only some kernels were asked; 2: all the same."""
        present = [self.outcomes(k) for k in kernels if self.by_kernel.get(k)]
        if len(set(present)) > 1:
            return 0
        return 1 if len(present) < len(kernels) else 2


def _kernels(cells: list[tuple[RunIdentity, RunContents]]) -> list[str]:
    from pmemkit.matrix.merge import version_key

    return sorted({i.kernel_release for i, _ in cells}, key=version_key)


def _predictor(warnings: list[str]):  # type: ignore[no-untyped-def]
    from pmemkit.report.rundir import default_predictor

    return default_predictor(warnings)


def _joined(contents: RunContents, predictor: Any) -> dict[int, Joined]:
    return {id(j.observation): j for j in join(contents, predictor)}


def configuration_names(cells: list[tuple[RunIdentity, RunContents]]) -> dict[str, str]:
    """`c1`, `c2`, … for the configurations in sorted order: short names the tables use."""
    return {c: f"c{n}" for n, c in enumerate(sorted({i.configuration() for i, _ in cells}), 1)}


def cells_section(
    cells: list[tuple[RunIdentity, RunContents]], joins: list[dict[int, Joined]], names: dict[str, str]
) -> list[str]:
    lines = [
        "## Configurations",
        "",
        *table(["name", "pmem · fs · suites · profile"], [[n, c] for c, n in names.items()]),
        "",
    ]
    rows = []
    for (identity, contents), joined in zip(cells, joins, strict=True):
        env = contents.environment
        kernel = env.get("kernel") if isinstance(env.get("kernel"), dict) else {}
        compared = [j for j in joined.values() if j.prediction is not None]
        boot = env.get("boot") if isinstance(env.get("boot"), dict) else {}
        rows.append(
            [
                f"{identity.kernel_release} ({kernel.get('kernel_version', identity.kernel_choice)})",
                names[identity.configuration()],
                env.get("accel", "?"),
                "completed" if not contents.failure else f"**FAILED**: {contents.failure}",
                len(contents.observations),
                f"{sum(j.agree for j in compared)}/{len(compared)}",
                boot.get("elapsed_s", "?"),
            ]
        )
    return lines + [
        "## Cells",
        "",
        *table(
            ["kernel", "configuration", "accel", "status", "observations", "model agrees", "guest s"], rows
        ),
        "",
    ]


def question_sections(
    cells: list[tuple[RunIdentity, RunContents]],
    joins: list[dict[int, Joined]],
    kernels: list[str],
    names: dict[str, str],
) -> list[str]:
    questions: dict[str, dict[tuple[str, str, str], _Row]] = defaultdict(dict)
    for (identity, contents), joined in zip(cells, joins, strict=True):
        for obs in contents.observations:
            target = f"{obs.scenario.label()} ({obs.device})"
            key = (names[identity.configuration()], target, obs.shown())
            row = questions[str(obs.experiment)].setdefault(key, _Row(*key))
            row.by_kernel[identity.kernel_release].append((obs.outcome, joined.get(id(obs))))
    lines: list[str] = []
    for question in sorted(questions):
        rows = sorted(
            questions[question].values(),
            key=lambda r: (r.rank(kernels), not r.disagrees(), r.configuration, r.target, r.operation),
        )
        differ = sum(r.rank(kernels) == 0 for r in rows)
        some = sum(r.rank(kernels) == 1 for r in rows)
        marked = sum(r.disagrees() for r in rows)
        lines += [
            f"## {question}",
            "",
            f"{len(rows)} (configuration, target, operation) rows: {differ} differ between kernels, {some} "
            f"were observed on only some kernels, {marked} disagree with the model on some kernel (**≠**). "
            "Each cell: the observed outcome, then the model's prediction for that kernel.",
            "",
            *table(
                ["configuration", "target", "operation", *kernels],
                [[r.configuration, r.target, r.operation, *(r.cell(k) for k in kernels)] for r in rows],
            ),
            "",
        ]
    return lines


def _headlines(contents: RunContents) -> list[tuple[str, str, str]]:
    """(target, measure, value) of a cell: each latency's p50 with its sample count, and each
    bandwidth pattern's best rate over the block sizes tried."""
    from pmemkit.report.latency import format_bytes_per_s, format_duration_ns

    found = []
    for obs in contents.observations:
        metrics = obs.metrics if isinstance(obs.metrics, dict) else {}
        if obs.outcome != "ok" or not metrics:
            continue
        target = f"{obs.scenario.label()} ({obs.device})"
        latency = metrics.get("latency")
        if isinstance(latency, dict) and isinstance(latency.get("p50"), int | float):
            value = f"{format_duration_ns(latency['p50'])} (n={latency.get('count', '?')})"
            found.append((target, f"{obs.shown()} p50", value))
        rows = metrics.get("rows")
        if isinstance(rows, list):
            best: dict[str, float] = {}
            for r in rows:
                if isinstance(r, dict) and isinstance(r.get("bytes_per_s"), int | float) and "pattern" in r:
                    pattern = str(r["pattern"])
                    best[pattern] = max(best.get(pattern, 0.0), float(r["bytes_per_s"]))
            for pattern, rate in best.items():
                found.append((target, f"{obs.shown()} {pattern} best", format_bytes_per_s(rate)))
    return found


def headline_section(
    cells: list[tuple[RunIdentity, RunContents]], kernels: list[str], names: dict[str, str]
) -> list[str]:
    table_rows: dict[tuple[str, str, str], dict[str, str]] = defaultdict(dict)
    accels, profiles = set(), set()
    for identity, contents in cells:
        accels.add(str(contents.environment.get("accel", "?")))
        profiles.add(identity.profile)
        for target, measure, value in _headlines(contents):
            table_rows[(names[identity.configuration()], target, measure)][identity.kernel_release] = value
    if not table_rows:
        return ["## Headline latency and bandwidth", "", "No cell measured latency or bandwidth.", ""]
    rows = [[*key, *(values.get(k, ABSENT) for k in kernels)] for key, values in sorted(table_rows.items())]
    return [
        "## Headline latency and bandwidth",
        "",
        f"Per cell, side by side: each latency's p50 (n = samples, one per operation; timer overhead not "
        f"subtracted) and each bandwidth pattern's best rate over its block sizes. Accelerator "
        f"{', '.join(sorted(accels))}, profile {', '.join(sorted(profiles))}; emulated pmem is DRAM, and "
        "under TCG the timings are those of an emulator: compare them within this table, not with hardware.",
        "",
        *table(["configuration", "target", "measure", *kernels], rows),
        "",
    ]


def render_matrix(cells: list[tuple[RunIdentity, RunContents]], missing: list[str] | None = None) -> str:
    """The whole merged report; `cells` in any order (it sorts them itself). `missing` names the
    matrix's cells that have no completed run (failed, interrupted): said at the top, never hidden."""
    from pmemkit.matrix.merge import version_key

    cells = sorted(cells, key=lambda c: (version_key(c[0].kernel_release), c[0].configuration()))
    kernels = _kernels(cells)
    warnings: list[str] = []
    predictor = _predictor(warnings)
    joins = [_joined(contents, predictor) for _, contents in cells]
    names = configuration_names(cells)
    failed = sum(bool(c.failure) for _, c in cells)
    lines = [
        f"# pmemkit matrix: {len(cells)} cells, {len(kernels)} kernel(s), {len(names)} configuration(s)",
        "",
        EMULATION_WARNING,
        "",
        f"**Status: {'completed' if not failed else f'{failed} cell(s) FAILED'}.** Kernels: "
        + ", ".join(f"`{k}`" for k in kernels)
        + ".",
        "",
    ]
    if missing:
        lines += [
            f"**{len(missing)} cell(s) of the matrix are not in this report** (no completed run; "
            "`pmemkit matrix --resume` runs them): " + "; ".join(missing) + ".",
            "",
        ]
    lines += [f"- warning: {w}" for w in warnings]
    for identity, contents in cells:
        lines += [f"- warning ({identity.shown()}): {w}" for w in contents.warnings]
    lines += cells_section(cells, joins, names)
    lines += question_sections(cells, joins, kernels, names)
    lines += headline_section(cells, kernels, names)
    return "\n".join(lines) + "\n"
