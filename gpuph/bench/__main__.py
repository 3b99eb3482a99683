"""``python -m gpuph.bench``: see :mod:`gpuph.bench.cli`."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
