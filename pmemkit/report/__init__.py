"""Pure rendering: a run directory becomes report.md."""
