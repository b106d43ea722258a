# The two commands of the README: `make train` (the CPU demo) and `make test`. Each installs what
# it needs into .venv first (from setup.cfg); nothing else on the machine is assumed.
PYTHON ?= python3
VENV ?= .venv
EXTRAS ?= test,notebook,beam,tfds
comma := ,
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))

.PHONY: install browser train test bench notebooks notebook-files clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[$(EXTRAS)]'
	touch $@

# The first-run demo: the tiny config on the built-in beach scenes, ~10 minutes on a 2-core CPU.
# Samples land in runs/tiny_beach/samples/*.gif; rerun to resume, Ctrl-C to stop with a checkpoint.
train: install
	$(PY) -m experiments.train --config=tiny --scene=beach --workdir=runs/tiny_beach

# The human study's browser test drives Debian's Chromium; as root (CI) it is installed here,
# otherwise that one test says how and skips.
browser:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      chromium chromium-driver >/dev/null) || echo "Installing Chromium failed." >&2; \
	  else echo "No Chromium: its test will skip (apt-get install chromium chromium-driver)." >&2; \
	  fi; \
	fi

# pytest exits 5 when it collected no tests: that is a failure here, not a pass.
test: install browser
	$(PY) -m pytest -n 2 -q tests; status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests: failing." >&2; exit 1; fi; \
	exit $$status

# Jupyter Lab on the notebooks, on 127.0.0.1 only; jupytext saves each .ipynb and its .py twin.
notebooks:
	$(MAKE) install EXTRAS=test,notebook,lab
	$(VENV)/bin/jupyter lab --ip=127.0.0.1 --notebook-dir=notebooks $(if $(filter 0,$(shell id -u)),--allow-root)

# Each notebook written again from its text twin (NAME.py -> NAME.ipynb, without outputs).
notebook-files: install
	cd notebooks && ../$(VENV)/bin/jupytext --to ipynb *.py

bench: install
	$(PY) -m experiments.benchmark

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
