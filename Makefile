# The two commands of the README:
#   make demo   runs the main job (sdeflow demo)
#   make test   runs the test suite
# and `make docs`, which builds the documentation site into site/ (mkdocs.yml).
# Each creates the local virtual environment .venv on first use (torch pinned by constraints.txt).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EXTRAS ?= dev
PYTEST_ARGS ?=

.PHONY: demo test venv bench clean readme benchmarks-md docs

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[$(EXTRAS)]"
	# k-diffusion: a test peer (tests/adapters) whose package requirements pull torchvision, which pins
	# another torch; its sampling.py needs only what the dev extra installs, so install it without deps.
	$(BIN)/python -m pip install --quiet --no-deps -c constraints.txt "k-diffusion>=0.1.1"
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/sdeflow demo $(DEMO_ARGS)

# The batch-invariance tests run once more with MKL's conditional numerical reproducibility on:
# bit-identity across batch sizes must hold with either setting (docs/foundation.md).
test: $(STAMP)
	$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)
	MKL_CBWR=COMPATIBLE $(BIN)/python -m pytest -n 2 -q tests/test_batch_invariance.py

# The documentation site, warnings as errors (mkdocs.yml has strict: true; --strict says it here too).
# The dev extra installs mkdocs, mkdocs-material and mkdocstrings; the build needs no network.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict

clean:
	rm -rf $(VENV) build site src/*.egg-info .pytest_cache

readme: $(STAMP)
	$(BIN)/python scripts/update_readme.py

benchmarks-md: $(STAMP)
	$(BIN)/python scripts/update_benchmarks.py
