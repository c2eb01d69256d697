# The two commands a newcomer needs: `make demo` and `make test`. Each builds .venv by itself.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --disable-pip-version-check -q -c constraints.txt
# Keep JAX on the CPU and quiet unless the user says otherwise.
export JAX_PLATFORMS ?= cpu
export TF_CPP_MIN_LOG_LEVEL ?= 2
export PYTHONUNBUFFERED = 1

.PHONY: demo test bench bench-gpu constraints clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q --upgrade pip

# One stamp per set of extras, remade when the package definition or the pins change.
$(VENV)/.installed-%: setup.py constraints.txt | $(PY)
	$(PIP) -e ".[$(subst +,$(comma),$*)]"
	touch $@

comma := ,

demo: $(VENV)/.installed-train+onboard+ros+replay+sim2sim
	$(PY) -m marlstack demo --out out/demo

test: $(VENV)/.installed-all
	$(PY) -m pytest -q -n 2 --dist loadfile --durations=15 tests

bench: $(VENV)/.installed-all
	for b in sim barrier train policy ros cable; do $(PY) -m marlstack bench $$b || exit 1; done

# On a machine with an NVIDIA GPU: the scaling table, memory per environment and the cable team's
# time-to-goal (bench/gpu.py; docs/scale.md has the numbers of the last run).
bench-gpu: $(VENV)/.installed-train+cuda
	JAX_PLATFORMS=cuda,cpu $(PY) -m marlstack.bench.gpu --out out/bench-gpu

# Re-resolve every pin from scratch (needs network access to the package index).
constraints:
	rm -rf /tmp/marlstack-pins && $(PYTHON) -m venv /tmp/marlstack-pins
	/tmp/marlstack-pins/bin/pip install -q ".[all]"
	( echo "# Pinned versions resolved on Python 3.11 (the CI machine). Regenerate with: make constraints"; \
	  /tmp/marlstack-pins/bin/pip list --format=freeze --exclude-editable | grep -v -iE '^(pip|setuptools|wheel|marlstack)==' | sort -f ) > constraints.txt

clean:
	rm -rf $(VENV) out build *.egg-info
