"""The experiment matrix: kernels × pmem configuration groups × filesystems × suites as cells.

Each cell is one complete `pmemkit run` (a run directory written by `pmemkit.pipeline`), run in a
process of its own, so cells share nothing but the read-only image cache. `cells` names them,
`jobs` decides how many guests fit this host, `executors` runs them (local processes or a
dask.distributed cluster), `runner` keeps the matrix directory, `merge` joins run directories made
anywhere, and `report` renders the merged report (pure).
"""
