# The two commands of the README:
#   make quickstart   set up, build the data bundle, fetch the embedded model, run the econ suite
#   make test         set up, run the test suite
VENV ?= .venv
BIN := $(VENV)/bin
export OMP_NUM_THREADS ?= $(shell nproc)
export TOKENIZERS_PARALLELISM = false
export HF_HUB_OFFLINE = 1
export HF_DATASETS_OFFLINE = 1
export GRADIO_ANALYTICS_ENABLED = False

.PHONY: setup quickstart test test-fast data model demo serve-judge clean-venv

$(BIN)/.econ-eval-installed: pyproject.toml constraints.txt scripts/setup.sh
	VENV=$(VENV) bash scripts/setup.sh
	touch $@

setup: $(BIN)/.econ-eval-installed

data: setup
	$(BIN)/econ-eval data build

model: setup
	$(BIN)/econ-eval models fetch smollm2-135m

quickstart: setup
	$(BIN)/econ-eval models fetch smollm2-135m
	$(BIN)/econ-eval quickstart

test: setup
	bash scripts/setup-test-system.sh
	$(BIN)/python -m pytest -q -rs tests

test-fast: setup
	$(BIN)/python -m pytest -q -rs -m "not slow" tests

demo: setup
	$(BIN)/python demo/app.py --port 7860

serve-judge: setup
	$(BIN)/econ-eval serve-judge

clean-venv:
	rm -rf $(VENV)
