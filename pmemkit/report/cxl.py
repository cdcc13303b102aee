"""The report's provenance rows for CXL devices: memdev, region, decoder, ways, set-up time, read-back.

Why its own module: the guest records each CXL device's set-up in the observations' provenance
(`cxl`, from guest/cxl.py); the report names the devices exactly, once per device, from there.
"""

from __future__ import annotations

from typing import Any

from pmemkit.scenario import Observation


def cxl_rows(observations: list[Observation]) -> list[list[Any]]:
    """One `CXL device` row per device seen in the observations (first record of each serial)."""
    seen: dict[Any, dict[str, Any]] = {}
    for obs in observations:
        record = obs.provenance.get("cxl") if isinstance(obs.provenance, dict) else None
        if isinstance(record, dict) and record.get("serial") not in seen:
            seen[record.get("serial")] = {**record, "_spec": obs.provenance.get("pmem_spec", "?")}
    rows = []
    for record in seen.values():
        readback = record.get("readback") or {}
        if readback.get("ok") is True:
            checked = f"O_DIRECT read-back of {readback.get('bytes', 0) >> 10} KiB: the pattern"
        elif readback.get("skipped"):
            checked = f"O_DIRECT read-back skipped: {readback['skipped']}"
        else:
            checked = f"O_DIRECT read-back: {readback.get('found', 'not recorded')}"
        serial = record.get("serial")
        shown = f"{serial:#x}" if isinstance(serial, int) else "?"
        chain = (
            f"{record.get('memdev')} (serial {shown}) → {record.get('cxl_region')} on "
            f"{record.get('root_decoder')}, {record.get('interleave_ways')}-way → "
            f"nd {record.get('nd_region')}"
        )
        setup = f"region set-up {record.get('region_setup_s')} s"
        rows.append(["CXL device", f"{record['_spec']}: {chain}; {setup}; {checked}"])
    return rows
