"""The gpuph demo, as a script: ``python examples/demo.py [--out DIR] [--steps N] ...``.

Same as ``python -m gpuph`` (fine-tunes the embedded MNIST generator with the topology loss; ``--diagrams`` for the
persistence-diagram demo); the code lives in ``gpuph/demo.py``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's gpuph, installed or not

from gpuph.demo import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
