"""Thin entry point: ``python bench/run.py [options]`` is ``python -m gpuph.bench [options]`` on this checkout's gpuph
(see bench/README.md)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's gpuph, installed or not

from gpuph.bench.cli import main  # noqa: E402 - after the path setup

if __name__ == "__main__":
    sys.exit(main())
