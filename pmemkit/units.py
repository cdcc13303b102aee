"""The one reader of sizes, numbers, seconds, lists and `key=value` options typed by a user.

Why one module: every place that read a number on its own accepted something different (Unicode
digits through `str.isdigit`/`int`/`float`, 400-digit sizes that later overflowed, `nan` seconds
that never fire, empty lists, a key given twice). Here every reader is

- ASCII only: digits are `[0-9]` under `re.ASCII`, so `５１２M` or `٦١` is refused, not read;
- bounded: a maximum length of text and a maximum value, checked before any arithmetic;
- finite: seconds are a plain decimal in a range (no `nan`, `inf`, exponent, sign or zero);
- strict about structure: no empty list, no empty item, no repeated item or key, no empty value.

Every refusal is an `InputError` (a ValueError) whose message names the bad input (as `repr`, so
control characters stay visible on one line) and the accepted form. Stdlib only: the guest's
python3 imports this through `pmemkit.scenario`. Other rooms reuse these readers and turn
`InputError` into their own error class where they have one (`pmemkit.scenario.ScenarioError` is
a subclass; `except InputError as exc: raise ModelError(str(exc)) from None` elsewhere).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

#: Longest text any reader looks at; longer input is refused before a regex or int() sees it.
MAX_TEXT = 64
#: Largest size in bytes: 1 PiB, far above what a VM here could map, far below int64 overflow.
MAX_SIZE = 1 << 50
#: Most digits of a size: 2**50 has 16.
MAX_SIZE_DIGITS = 16
#: Longest run we accept for --timeout: a week.
MAX_SECONDS = 7 * 24 * 3600.0

UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50}
SIZE_FORM = "a number of bytes with an optional binary unit K, M, G, T (or KiB, MB, ...), e.g. 512M, 1G, 4096"
_SIZE_RE = re.compile(r"[ \t]*([0-9]+)[ \t]*(?:([KMGTP])(?:i?B)?|B)?[ \t]*", re.ASCII | re.IGNORECASE)
_INT_RE = re.compile(r"[0-9]+", re.ASCII)
_SECONDS_RE = re.compile(r"[0-9]{1,9}(?:\.[0-9]{1,9})?", re.ASCII)
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*", re.ASCII)


class InputError(ValueError):
    """A user's input that no reader accepts; the message names it and the accepted form."""


def shown(text: object, limit: int = 40) -> str:
    """`repr` of the input, cut to `limit` characters: a 5 000-digit input names itself briefly."""
    text = str(text)
    if len(text) > limit:
        return repr(text[:limit]) + f"… ({len(text)} characters)"
    return repr(text)


def _bounded_text(text: str, what: str, form: str) -> str:
    if not isinstance(text, str):
        raise InputError(f"{what} must be text, not {type(text).__name__}: write {form}")
    if len(text) > MAX_TEXT:
        raise InputError(f"{what} {shown(text)} is too long (over {MAX_TEXT} characters): write {form}")
    return text


def parse_size(text: str | int, what: str = "size", minimum: int = 0, maximum: int = MAX_SIZE) -> int:
    """Bytes from `512M`, `1G`, `16GiB`, `2MB`, `4096` or an int (binary units throughout).

    Refused: non-ASCII digits, signs, fractions, more than 16 digits, values outside
    [minimum, maximum] (default 0 .. 2**50 = 1P). `what` names the input in the message (`--memory`).
    """
    if isinstance(text, bool):
        raise InputError(f"{what} must be a size, not {text!r}: write {SIZE_FORM}")
    if isinstance(text, int):
        value = text
    else:
        text = _bounded_text(text, what, SIZE_FORM)
        m = _SIZE_RE.fullmatch(text)
        if not m:
            raise InputError(f"cannot read {what} {shown(text)}: write {SIZE_FORM}")
        digits = m.group(1).lstrip("0") or "0"
        if len(digits) > MAX_SIZE_DIGITS:
            raise InputError(f"{what} {shown(text)} is too large: at most {format_size(maximum)}")
        value = int(digits) * UNITS[(m.group(2) or "").upper()]
    if value < minimum:
        raise InputError(f"{what} {shown(text)} is below the minimum of {format_size(minimum)}")
    if value > maximum:
        raise InputError(f"{what} {shown(text)} is too large: at most {format_size(maximum)}")
    return value


def format_size(n: int) -> str:
    """Shortest exact binary-unit spelling: 536870912 -> '512M' (parse_size reads it back)."""
    for unit in ("P", "T", "G", "M", "K"):
        if n and n % UNITS[unit] == 0:
            return f"{n // UNITS[unit]}{unit}"
    return str(n)


def parse_int(text: str, what: str, minimum: int = 0, maximum: int = 1 << 31) -> int:
    """A plain decimal integer in [minimum, maximum]: ASCII digits only, no sign, no separators.

    For version components and counts (the model's kernel reader can use it for `6`, `1`, `150`).
    """
    form = f"a whole number from {minimum} to {maximum}"
    text = _bounded_text(text, what, form)
    if not _INT_RE.fullmatch(text):
        raise InputError(f"cannot read {what} {shown(text)}: write {form}")
    digits = text.lstrip("0") or "0"
    if len(digits) > len(str(maximum)) or not minimum <= int(digits) <= maximum:
        raise InputError(f"{what} {shown(text)} is out of range: write {form}")
    return int(digits)


def parse_seconds(text: str | float, what: str = "--timeout", maximum: float = MAX_SECONDS) -> float:
    """Positive, finite seconds as a plain decimal (`90`, `2.5`), at most `maximum` (a week).

    Refused: `nan`, `inf`, exponents, signs, zero, Unicode digits: a timeout that can never fire or
    fires at once is a mistake, not a request.
    """
    form = f"a positive number of seconds up to {maximum:g}, e.g. 600 or 2.5"
    if isinstance(text, bool):
        raise InputError(f"{what} {text!r} is not a number of seconds: write {form}")
    if isinstance(text, int | float):
        value = float(text)
        if not 0 < value <= maximum:  # also False for nan
            raise InputError(f"{what} {text!r} is not in range: write {form}")
        return value
    text = _bounded_text(text, what, form)
    if not _SECONDS_RE.fullmatch(text.strip(" \t")):
        raise InputError(f"cannot read {what} {shown(text)}: write {form}")
    value = float(text)
    if not 0 < value <= maximum:
        raise InputError(f"{what} {shown(text)} is not in range: write {form}")
    return value


def parse_list(text: str, what: str, choices: Iterable[str] | None = None) -> list[str]:
    """A comma-separated list of names: no empty list, no empty item, no repeats, names from `choices`.

    Items are stripped of spaces; each must be an ASCII name (`[A-Za-z0-9][A-Za-z0-9_.+-]*`).
    """
    allowed = list(choices) if choices is not None else None
    form = "comma-separated names" + (f" from {', '.join(allowed)}" if allowed else "")
    if not isinstance(text, str) or len(text) > 16 * MAX_TEXT:
        raise InputError(f"{what} {shown(text)} is too long: write {form}")
    items = [item.strip(" \t") for item in text.split(",")]
    if not any(items):
        raise InputError(f"{what} {shown(text)} is empty: write {form}")
    seen: list[str] = []
    for item in items:
        if not item:
            raise InputError(f"{what} {shown(text)} has an empty entry: write {form} with no stray comma")
        if not _NAME_RE.fullmatch(item) or (allowed is not None and item not in allowed):
            raise InputError(f"unknown {what} entry {shown(item)}: write {form}")
        if item in seen:
            raise InputError(f"{what} {shown(text)} names {item!r} twice: name each once")
        seen.append(item)
    return seen


def parse_options(parts: Iterable[str], allowed: Iterable[str], what: str) -> dict[str, str]:
    """`key=value` items (already split on commas): known keys only, each once, values non-empty."""
    keys = list(allowed)
    form = ", ".join(f"{k}=VALUE" for k in keys)
    options: dict[str, str] = {}
    for part in parts:
        key, eq, value = part.partition("=")
        if not eq or key not in keys:
            raise InputError(f"cannot read option {shown(part)} in {what}: use {form}")
        if not value:
            raise InputError(f"option {key}= in {what} has no value: use {form}")
        if key in options:
            raise InputError(f"option {key}= is given twice in {what}: give each once")
        options[key] = value
    return options
