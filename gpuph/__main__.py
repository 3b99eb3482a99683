"""``python -m gpuph``: runs the demo (see :mod:`gpuph.demo`)."""

from .demo import main

if __name__ == "__main__":
    raise SystemExit(main())
