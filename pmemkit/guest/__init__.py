"""Everything that touches a real kernel: probe, prepare, safety, and the experiments."""


class GuestError(Exception):
    """An expected failure on the guest side (no device, a tool missing, a refused step)."""
