# spuriverse — see README.md.
VENV        ?= .venv
PYTHON      ?= python3
TORCH_SPEC  ?= torch==2.13.0
BIN         := $(VENV)/bin
PY          := $(BIN)/python
MODEL       ?=
DATASET     ?= yanyiwei/SpuriVerse
OUT         ?= runs/$(subst /,_,$(subst :,_,$(MODEL)))
ARGS        ?=

.PHONY: install browser eval test bench clean help

help:
	@echo "make install   create $(VENV), install $(TORCH_SPEC) first, then spuriverse[dev]"
	@echo "make eval      the offline demo (no GPU, no hub): spuriverse-mini, baselines, tiny LLaVA, leaderboard"
	@echo "make eval MODEL=llava-1.5 [DATASET=...] [OUT=...] [ARGS='--limit 20']"
	@echo "make test      run the offline test suite"
	@echo "make bench     run the benchmarks in bench/"

$(PY):
	$(PYTHON) -m venv $(VENV)

install: $(PY)
	$(PY) -m pip install --upgrade pip >/dev/null
	# torch first and exactly: anything looser pulls CUDA wheels on a CPU machine.
	$(PY) -m pip install "$(TORCH_SPEC)"
	$(PY) -m pip install -e ".[dev]"
	@$(PY) -c "import torch, spuriverse; print('spuriverse', spuriverse.__version__, '| torch', torch.__version__)"
	$(MAKE) browser

# Debian's Chromium for the leaderboard browser test (Playwright drives it; never `playwright install`).
browser:
	@if [ -x /usr/bin/chromium ]; then echo "chromium: /usr/bin/chromium"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium \
		|| echo "warning: could not install chromium; the browser test will be skipped"; \
	else echo "note: /usr/bin/chromium is missing and cannot be installed here (needs root and apt-get):"; \
		echo "      run 'apt-get install chromium' as root; until then the browser test is skipped"; fi

# No MODEL: the offline demo (spuriverse-mini, random / frequent / tiny random-weight LLaVA, demo
# leaderboard). With MODEL: the real evaluation (DATASET defaults to the SpuriVerse release on the hub).
eval:
	@if [ -z "$(MODEL)" ]; then $(BIN)/spuriverse demo; \
	else $(BIN)/spuriverse eval --model "$(MODEL)" --dataset "$(DATASET)" --output-dir "$(OUT)" $(ARGS); fi

test:
	$(PY) -m pytest -q

bench:
	$(PY) bench/eval_throughput.py
	$(PY) bench/api_throughput.py
	$(PY) bench/leaderboard.py
	$(PY) bench/synth_throughput.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
