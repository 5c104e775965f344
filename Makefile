# s2kd: two commands do everything on a fresh machine.
#   make app    set up .venv, prepare the embedded demo data if missing, run the dashboard
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

app: data
	$(VENV)/bin/streamlit run app/main.py

# Regenerate the shipped demo runs in assets/ (see core/assets.py; under an hour on 2 CPU cores).
assets: $(STAMP)
	$(PY) -m core assets build

test: $(STAMP)
	VENV=$(VENV) bash scripts/bootstrap.sh --browser >/dev/null
	$(PY) -m pytest $(PYTEST_ARGS)

clean-venv:
	rm -rf $(VENV)
