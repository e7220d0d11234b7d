# Two commands matter: `make demo` and `make test`. Everything else is set-up they call.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast lint ui simulate bench wheel-demo clean

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

test-fast: $(STAMP)  ## unit tests only: no end-to-end runs (those are marked slow)
	$(BIN)/ruff check strava_pipeline strava_pipeline_tests benchmarks
	$(BIN)/python -m pytest -m "not slow"

bench: $(STAMP)  ## every benchmark script, each printing its figures and a RESULT line
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'  # the peers benchmarks/peers.py runs
	for script in benchmarks/[a-z]*.py; do \
		case $$script in benchmarks/pipeline_env.py|benchmarks/peer_*.py|benchmarks/profile_summary.py|benchmarks/rss_peaks.py) continue;; esac; \
		echo "== $$script"; $(BIN)/python $$script || exit 1; \
	done

wheel-demo:  ## build the wheel, install it in a fresh venv outside the checkout, run the demo there
	bash .ci/wheel-demo

lint: $(STAMP)
	$(BIN)/ruff check strava_pipeline strava_pipeline_tests benchmarks

ui: $(STAMP)
	$(BIN)/strava-pipeline ui

simulate: $(STAMP)
	$(BIN)/strava-pipeline simulate

clean:
	rm -rf $(VENV) data build dist
