"""The gpuph demo, as a script: ``python examples/demo.py [--out DIR] [--steps N] ...``.

Same as ``python -m gpuph`` (fine-tunes the embedded MNIST generator with the topology loss; ``--diagrams`` for the
persistence-diagram demo); the code lives in ``gpuph/demo.py``.
"""

from gpuph.demo import main

if __name__ == "__main__":
    raise SystemExit(main())
