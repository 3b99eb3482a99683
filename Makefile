# gpuph: every target sets up what it needs in .venv (created with --system-site-packages, so an installed CUDA
# torch is reused), once: stamp files in .venv record each step, and the C++ extension is rebuilt when setup.py,
# gpuph/csrc/ or kernels/ change.
#
#   make demo    fine-tune the embedded MNIST generator with the topology loss -> out/ (grid, interpolations, metrics)
#   make test    the test suite (pytest, in parallel)
#   make lint    ruff
#   make bench   CPU benchmark (bench/run_cpu.py)
#   make clean   build outputs and stamps (keeps .venv);  make distclean  also removes .venv

PYTHON ?= python3
VENV ?= .venv
TORCH_VERSION ?= 2.13.0
PYTEST_WORKERS ?= auto
PYTEST_ARGS ?=
OUT ?= out

PY := $(VENV)/bin/python
PIP := $(PY) -m pip
DEMO_DEPS := numpy matplotlib tqdm
TEST_DEPS := pytest pytest-xdist hypothesis gudhi cripser scipy pot
LINT_DEPS := "ruff>=0.5"
LINT_PATHS = $(wildcard gpuph tests bench examples setup.py)
EXT_SOURCES := setup.py gpuph/csrc kernels \
	$(wildcard gpuph/csrc/*.cpp gpuph/csrc/*.h gpuph/csrc/*.cu kernels/*.cu kernels/*.cuh kernels/*.h)

.PHONY: demo test lint bench install clean distclean

demo: $(VENV)/.gpuph
	$(PY) -m gpuph --out $(OUT)

test: $(VENV)/.gpuph $(VENV)/.test-deps
	$(PY) -m pytest -n $(PYTEST_WORKERS) tests $(PYTEST_ARGS)

lint: $(VENV)/.lint-deps
	$(PY) -m ruff check $(LINT_PATHS)

bench: $(VENV)/.gpuph $(VENV)/.test-deps
	$(PY) bench/run_cpu.py

install: $(VENV)/.gpuph

# --- setup steps (each runs once; delete .venv or run `make distclean` to start over)
$(VENV)/.created:
	@$(PYTHON) -m venv --system-site-packages $(VENV) || { \
	  echo "could not create $(VENV): on Debian/Ubuntu, install python3-venv (apt-get install python3-venv)"; exit 1; }
	$(PIP) install -q --upgrade pip setuptools wheel ninja
	@touch $@

# torch is installed only if the venv cannot import one (e.g. a system-wide CUDA build is kept as it is).
$(VENV)/.torch: $(VENV)/.created
	@if $(PY) -c "import torch" 2>/dev/null; then \
	  $(PY) -c "import torch; print('using torch', torch.__version__, 'from', torch.__file__)"; \
	else \
	  echo "installing torch==$(TORCH_VERSION)"; $(PIP) install "torch==$(TORCH_VERSION)"; \
	fi
	@touch $@

$(VENV)/.demo-deps: $(VENV)/.torch
	$(PIP) install -q $(DEMO_DEPS)
	@touch $@

$(VENV)/.test-deps: $(VENV)/.demo-deps
	$(PIP) install -q $(TEST_DEPS)
	@touch $@

$(VENV)/.lint-deps: $(VENV)/.created
	$(PIP) install -q $(LINT_DEPS)
	@touch $@

# The first build registers the editable install; later changes to the C++/CUDA sources are rebuilt in place,
# incrementally (ninja, objects kept in build/); a change to setup.py installs again.
$(VENV)/.gpuph: $(VENV)/.demo-deps $(EXT_SOURCES)
	@if [ $(VENV)/.gpuph-editable -nt setup.py ]; then \
	  echo "rebuilding the extension in place"; $(PY) setup.py -q build_ext --inplace; \
	else \
	  $(PIP) install --no-build-isolation --no-deps -e . && touch $(VENV)/.gpuph-editable; \
	fi
	@touch $@

clean:
	rm -rf build *.egg-info gpuph/_C*.so $(OUT) .pytest_cache .ruff_cache .hypothesis
	rm -f $(VENV)/.gpuph
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
