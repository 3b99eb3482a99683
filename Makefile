# gpuph: every target sets up what it needs in .venv (created with --system-site-packages, so an installed CUDA
# torch is reused), once: stamp files in .venv record each step, and the C++ extension is rebuilt when setup.py,
# gpuph/csrc/ or kernels/ change.
#
#   make demo    fine-tune the embedded MNIST generator with the topology loss -> out/ (grid, interpolations, metrics)
#   make test    the test suite (pytest, in parallel)
#   make lint    ruff
#   make bench   benchmark suite against the CPU layers (python -m gpuph.bench; BENCH_ARGS=--quick for a short run)
#   make clean   build outputs and stamps (keeps .venv);  make distclean  also removes .venv
#   make check-cuda-build   the extension built with CUDA torch + nvcc (own venv), tests against it (no GPU needed)

PYTHON ?= python3
VENV ?= .venv
TORCH_VERSION ?= 2.13.0
PYTEST_WORKERS ?= auto
PYTEST_ARGS ?=
# Per test (pytest-timeout; an ini option, so a venv without the plugin only warns): a test that hangs, e.g. a
# reduction that never finishes, fails by name instead of stalling the run. The thread method also stops C++ loops.
PYTEST_TIMEOUT ?= 900
OUT ?= out

PY := $(VENV)/bin/python
PIP := $(PY) -m pip
DEMO_DEPS := numpy matplotlib tqdm scipy
TEST_DEPS := pytest pytest-xdist pytest-timeout hypothesis gudhi cripser scipy pot ripser
# the other layers the benchmark compares with (TopologyLayer is left out: it fails to build on recent torch; the
# benchmark runs it where it imports)
BENCH_DEPS := giotto-ph torch-topological
BENCH_ARGS ?=
LINT_DEPS := "ruff>=0.5"
LINT_PATHS = $(wildcard gpuph tests bench examples setup.py)
EXT_SOURCES := setup.py gpuph/csrc kernels \
	$(wildcard gpuph/csrc/*.cpp gpuph/csrc/*.h gpuph/csrc/*.cu kernels/*.cu kernels/*.cuh kernels/*.h)

.PHONY: demo test lint bench install clean distclean check-cuda-binding check-cuda-build

demo: $(VENV)/.gpuph
	$(PY) -m gpuph --out $(OUT)

test: $(VENV)/.gpuph $(VENV)/.test-deps
	$(PY) -m pytest -n $(PYTEST_WORKERS) -o timeout=$(PYTEST_TIMEOUT) -o timeout_method=thread tests $(PYTEST_ARGS)

# Compile check of the CUDA binding (gpuph/csrc/cubical_cuda.cpp needs no CUDA headers, only torch's): on machines
# whose torch has no CUDA the extension skips that file, so CI checks it here, with the kernel files compiled for the
# host as a CUDA build compiles them (GPUPH_WITH_CUDA: both namespaces of launchers declared).
CUDA_BUILD_SOURCES := gpuph/csrc/cubical_cuda.cpp gpuph/csrc/merge_tree_kernels_on_host.cpp \
	gpuph/csrc/middle_kernels_on_host.cpp
check-cuda-binding: $(VENV)/.gpuph
	for f in $(CUDA_BUILD_SOURCES); do \
	  $(CXX) -fsyntax-only -std=c++20 -DGPUPH_WITH_CUDA -Ikernels \
		$$($(PY) -c "from torch.utils.cpp_extension import include_paths; print(' '.join('-I' + p for p in include_paths()))") \
		$$f || exit 1; \
	done

# The extension built with CUDA (torch's CUDA wheel of the lent GPUs' version, nvcc) in a copy of the tree, and the
# test suite run against that build; no GPU needed. See .ci/check-cuda-build.
check-cuda-build:
	PYTHON=$(PYTHON) .ci/check-cuda-build

lint: $(VENV)/.lint-deps
	$(PY) -m ruff check $(LINT_PATHS)

bench: $(VENV)/.gpuph $(VENV)/.test-deps $(VENV)/.bench-deps
	$(PY) -m gpuph.bench $(BENCH_ARGS)

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

$(VENV)/.bench-deps: $(VENV)/.test-deps
	$(PIP) install -q $(BENCH_DEPS)
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
