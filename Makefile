# The two commands of the README:
#   make demo   set everything up, build the model zoo, run the embedded default sweep, print the report path
#   make test   run the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: demo test venv zoo lint clean

$(BIN)/orchestrator: pyproject.toml
	bash scripts/system-deps.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[zoo,dev]'
	touch $@

venv: $(BIN)/orchestrator

zoo: venv
	$(BIN)/orchestrator zoo build --set study --out models

demo: zoo
	$(BIN)/orchestrator sweep experiments/local.yaml --inventory inventory/local.yml --report wait

# The analyzer's published-figure checks read the study zoo, so the tests build it (cached) first.
test: zoo
	$(BIN)/python -m pytest -q --durations=15

lint: venv
	$(BIN)/ansible-lint playbooks/

clean:
	rm -rf $(VENV) .state runs reports/*/ models/*.tflite models/manifest.json
