"""The gpuph demo, as a script: ``python examples/demo.py [--out DIR] [--digits N] ...``.

Same as ``python -m gpuph``; the code lives in ``gpuph/demo.py``.
"""

from gpuph.demo import main

if __name__ == "__main__":
    raise SystemExit(main())
