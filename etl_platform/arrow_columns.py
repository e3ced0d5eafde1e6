"""Arrow columns the platform makes itself, with Arrow's own kernels (numpy is not a dependency of the core
install: docs/install.md)."""

import pyarrow as pa
import pyarrow.compute as pc


def row_numbers(first: int, count: int) -> pa.Int64Array:
    """``first, first + 1, …`` (``count`` of them) as an int64 array: numpy's ``arange``, in one Arrow kernel."""
    if count <= 0:
        return pa.array([], pa.int64())
    return pc.add(pc.cumulative_sum(pa.repeat(pa.scalar(1, pa.int64()), count)), first - 1)
