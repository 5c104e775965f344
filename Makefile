# s2kd: two commands do everything on a fresh machine.
#   make app    set up .venv, prepare the embedded demo data if missing, warm the dashboard cache, run it
#   make test   set up .venv (and chromium for the browser tests), run the whole test suite
VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.s2kd-installed
PYTEST_ARGS ?=

.PHONY: app test setup data assets clean-venv

$(STAMP): pyproject.toml scripts/bootstrap.sh
	VENV=$(VENV) bash scripts/bootstrap.sh
	@touch $(STAMP)

setup: $(STAMP)

data: $(STAMP)
	$(PY) -m core data prepare

# The dashboard: prepare the demo data if missing and warm the dashboard's disk cache (quick when already
# warm), then serve app/main.py with the run sets preloading in the background (app/serve.py; the same
# as `streamlit run app/main.py`, with a head start).  tests/test_browser.py runs these same two commands.
app: $(STAMP)
	$(PY) -m core data prepare --warm-dashboard
	$(PY) -m app.serve

# Regenerate the shipped demo runs in assets/ (see core/assets.py; under an hour on 2 CPU cores).
assets: $(STAMP)
	$(PY) -m core assets build

test: $(STAMP)
	VENV=$(VENV) bash scripts/bootstrap.sh --browser >/dev/null
	$(PY) -m pytest $(PYTEST_ARGS)

clean-venv:
	rm -rf $(VENV)
