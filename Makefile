# Two commands on a fresh clone (see README):
#   make run   -> set up .venv, execute the notebook series headless, write the report
#   make test  -> set up .venv, run the whole test suite (pytest + nbval over notebooks/)
PY      ?= python3.11
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
RUN_DIR ?= runs/latest
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export PYTHONHASHSEED := 0

.PHONY: setup run test lint bench clean

$(STAMP): pyproject.toml
	@command -v $(PY) >/dev/null 2>&1 || { echo "need $(PY) (Python 3.11) on PATH, or make PY=/path/to/python3.11"; exit 1; }
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(BIN)/readpvla run-notebooks --out $(RUN_DIR)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest tests notebooks --nbval -p no:cacheprovider -q

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_peft_step.py

clean:
	rm -rf $(VENV) runs .pytest_cache
