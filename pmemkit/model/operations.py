"""Observed operation names -> the model's operation, so every observation can be asked.

The experiments name some operations after the mapping they use (`odirect-read-into-anon`,
`buffered-read-into-pageless`, `odirect-latency-pagecache-mmap`), give a variant in the
observation's own `variant` field (`read-only`, `unfaulted`, `after-fork`), and put the
filesystem in d2d names (`d2d-ext4-dax-splice`). The model keys its rules on one name per
operation (a variant is part of the model's name: `odirect-read-into-dax:read-only`) and takes
the mapping from the scenario, so this module folds those spellings onto it. A name whose mapping
suffix contradicts the scenario is an error, never a silent answer. `model_name` is the one place
an observed (operation, variant) pair becomes the model's spelling.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from pmemkit.model.errors import ModelError
from pmemkit.model.rules import MAPPING_FAMILIES, MODEL_OPERATIONS

#: mapping suffix in an observed name -> the fs-dax answers (mapping kinds) it may name.
SUFFIX_KINDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("-pagecache-mmap", ("none",)),
    ("-pageless", ("devmem", "pageless")),
    ("-anon", ("anonymous",)),
    ("-dax", ()),  # the plain name: "into the scenario's mapping", whatever it is
)
_D2D_FS = re.compile(r"^d2d-(ext4|xfs)-dax-(.+)$")
MAX_NAME = 200


@dataclass(frozen=True)
class Canonical:
    """The model's operation for an observed name, the filesystem it names, the kinds it allows."""

    operation: str
    fs: str | None = None
    kinds: tuple[str, ...] = ()  # empty: any mapping kind


def model_name(operation: str, variant: str | None = None) -> str:
    """The model's spelling of an observed (operation, variant): the name `predict` is asked."""
    return f"{operation}:{variant}" if variant else operation


def mapping_family(operation: str) -> tuple[str, str] | None:
    """(family, mapping suffix) of a mapping-named operation (`odirect-read-into`, `-pageless`), else None.

    Why: tables that set one mapping beside another (pageless vs DAX) pair operations by family.
    """
    for family in MAPPING_FAMILIES:
        for suffix, _ in SUFFIX_KINDS:
            if operation == family + suffix:
                return family, suffix
    return None


def canonical(name: str) -> Canonical:
    """Fold an observed operation name onto a MODEL_OPERATIONS name (ModelError if unknown)."""
    if not isinstance(name, str) or len(name) > MAX_NAME:
        raise ModelError(f"unknown operation {str(name)[:40]!r}: use one of {', '.join(MODEL_OPERATIONS)}")
    return _canonical(name)


@lru_cache(maxsize=1024)
def _canonical(name: str) -> Canonical:
    """canonical() for a string, cached: a report or a table asks the same names many times."""
    base, _, variant = name.partition(":")
    kinds: tuple[str, ...] = ()
    if variant == "pagecache-mmap":
        variant, kinds = "", ("none",)
    fs = None
    m = _D2D_FS.match(base)
    if m:
        fs, base = m.group(1), f"d2d-fs-dax-{m.group(2)}"
    for family in MAPPING_FAMILIES:
        for suffix, allowed in SUFFIX_KINDS:
            if base == family + suffix:
                base, kinds = family + "-dax", kinds or allowed
    op = f"{base}:{variant}" if variant else base
    if op not in MODEL_OPERATIONS:
        raise ModelError(f"unknown operation {name!r}: use one of {', '.join(MODEL_OPERATIONS)}")
    return Canonical(op, fs, kinds)
