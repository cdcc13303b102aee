"""The page-backing model: which pmem pages get `struct page`, what it costs, what works.

Pure: no I/O, imports only the stdlib and pmemkit.scenario. The rules live in `rules.py` as data
(one record per cited decision); `predict()` walks them, `memmap_size()` sizes the memmap per
nd_pfn_init(), `build_table()` regenerates the reference's decision table for any kernel. Both
`predict()` and `build_table()` take a `stack` (md-raid0, md-raid1, dm-linear, dm-stripe over two
devices of the scenario's kind; default none). `diff.diff()` lists every prediction that changes
between two kernels with the rule behind it. A kernel newer than `kernel.NEWEST` is answered by
the rules in force there and flagged `extrapolated`.
"""

from pmemkit.model.errors import ModelError
from pmemkit.model.kernel import Kernel, KernelRange, parse_kernel
from pmemkit.model.predict import StackPrediction, backing, explain, normalize, predict
from pmemkit.model.rules import MODEL_OPERATIONS, RULES, SEED, STACKS, Rule, rule_by_name, rules_for
from pmemkit.model.sizing import SizeReport, memmap_size
from pmemkit.model.table import Table, build_table, render_json, render_markdown, render_text

__all__ = [
    "MODEL_OPERATIONS",
    "RULES",
    "SEED",
    "STACKS",
    "Kernel",
    "KernelRange",
    "ModelError",
    "Rule",
    "SizeReport",
    "StackPrediction",
    "Table",
    "backing",
    "build_table",
    "explain",
    "memmap_size",
    "normalize",
    "parse_kernel",
    "predict",
    "render_json",
    "render_markdown",
    "render_text",
    "rule_by_name",
    "rules_for",
]
