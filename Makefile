# Two commands matter: `make demo` and `make test`. Everything else is set-up they call.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast lint ui simulate bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/strava-pipeline demo

test: $(STAMP)
	$(BIN)/ruff check strava_pipeline strava_pipeline_tests benchmarks
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check strava_pipeline strava_pipeline_tests benchmarks

ui: $(STAMP)
	$(BIN)/strava-pipeline ui

simulate: $(STAMP)
	$(BIN)/strava-pipeline simulate

clean:
	rm -rf $(VENV) data
