"""gpuph's benchmark suite: gpuph (CPU and CUDA) against the CPU persistence layers, on the same inputs, in one run.

Run it with ``python -m gpuph.bench`` (``--help`` for the options; ``bench/README.md`` for what each library
computes). Modules: :mod:`~gpuph.bench.cases` (inputs), :mod:`~gpuph.bench.libraries` (one runner module per library),
:mod:`~gpuph.bench.timing`, :mod:`~gpuph.bench.agreement` (the correctness check), :mod:`~gpuph.bench.suite` (the
run), :mod:`~gpuph.bench.report` and :mod:`~gpuph.bench.plots` (the result files). Nothing in the core imports it.
"""

from .cases import Case, make_field, parse_case
from .suite import Config, Results, run_suite
from .timing import Budget

__all__ = ["Budget", "Case", "Config", "Results", "make_field", "parse_case", "run_suite"]
