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
CURATE_DEMO  ?= runs/curate-demo
BASE        ?=
INFLUENCE_WORLD ?= runs/influence-world
ATTR_WORLD   ?= runs/attribution-world

WORLD_MODELS ?= runs/world-models

.PHONY: install browser eval curate-demo build-demo world-models world-models-check attribution-world study-world test bench influence-world clean help

help:
	@echo "make install   create $(VENV), install $(TORCH_SPEC) first, then spuriverse[dev]"
	@echo "make eval      the offline demo (no GPU, no hub): spuriverse-mini, baselines, tiny LLaVA, leaderboard"
	@echo "make eval MODEL=llava-1.5 [DATASET=...] [OUT=...] [ARGS='--limit 20']"
	@echo "make curate-demo  the whole curation chain offline: mine -> judge -> review -> synth -> verify -> publish -> eval"
	@echo "make world-models  train the two world models from random init (~15 min on 2 cores) into $(WORLD_MODELS)"
	@echo "make world-models-check  rebuild them and compare with the shipped weights (sha256)"
	@echo "make attribution-world [SHORTCUT=DIR BALANCED=DIR WORLD_BENCH=DIR]  attribution acceptance experiment on the world"
	@echo "make study-world  the held-out fine-tuning study on spuriverse-world (shortcut base model from make world-models)"
	@echo "make test      run the offline test suite and the type check (mypy)"
	@echo "make bench     run the benchmarks in bench/"
	@echo "make influence-world BASE=MODEL_DIR  the influence acceptance experiment on spuriverse-world"
	@echo "               (no BASE: trains a quick base first, into runs/world-base)"

$(PY):
	$(PYTHON) -m venv $(VENV)

install: $(PY)
	$(PY) -m pip install --upgrade pip >/dev/null
	# torch first and exactly: anything looser pulls CUDA wheels on a CPU machine.
	$(PY) -m pip install "$(TORCH_SPEC)"
	$(PY) -m pip install -e ".[dev]"
	# kronfluence (influence functions) declares torchvision but never imports it; a PyPI torchvision
	# fails to import beside this torch (and pulls CUDA wheels): install it without its declared deps
	# (its real ones are in pyproject) and make sure no torchvision was left behind.
	$(PY) -m pip install --no-deps "kronfluence==1.0.1"
	@! $(PY) -m pip show torchvision >/dev/null 2>&1 || { echo "error: torchvision got installed; remove it: $(PY) -m pip uninstall -y torchvision"; exit 1; }
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

# the whole curation chain, offline, with tiny RANDOM-weight models and a scripted judge server (loopback,
# started here and stopped on exit): every stage is the real command a user runs; the outputs mean
# nothing. Re-running resumes every stage. Outputs under $(CURATE_DEMO)/ (curation/, dataset/, eval/).
curate-demo:
	@set -e; D="$(CURATE_DEMO)"; S="$(BIN)/spuriverse"; \
	export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false TRANSFORMERS_VERBOSITY=error; \
	$(PY) -m spuriverse.demo.assets --out "$$D"; \
	rm -f "$$D/judge.url"; \
	$(PY) -m spuriverse.demo.judge_server --port 0 --url-file "$$D/judge.url" & JUDGE=$$!; \
	trap 'kill $$JUDGE 2>/dev/null || true' EXIT; \
	for i in $$(seq 200); do [ -s "$$D/judge.url" ] && break; sleep 0.05; done; \
	echo "== 1. mine (tiny random-weight LLaVA over the demo source)"; \
	$$S curate mine --source "$$D/source/questions.jsonl" --name demo --model "$$D/models/tiny-llava" \
		--out "$$D/curation" --no-progress; \
	echo "== 2. judge (scripted judge server at $$(cat $$D/judge.url))"; \
	OPENAI_API_KEY=demo-key $$S curate judge "$$D/curation" --judge demo-judge --base-url "$$(cat $$D/judge.url)" \
		--no-progress; \
	echo "== 3. review (--auto-accept)"; \
	$$S curate review "$$D/curation" --auto-accept; \
	echo "== 4. synthesize (tiny random-weight Stable Diffusion)"; \
	$$S synth "$$D/curation" --backend text2img --model "$$D/models/tiny-sd" --n 2 --width 64 --height 64 \
		--steps 2 --no-progress; \
	echo "== 5. verify (tiny LLaVA and the random baseline)"; \
	$$S curate verify "$$D/curation" --models "$$D/models/tiny-llava,random" --threshold 0 --policy any --no-progress; \
	echo "== 6. publish"; \
	$$S curate publish "$$D/curation" --out "$$D/dataset" --name spuriverse-demo --controls 4 --wide --overwrite; \
	echo "== eval on the published benchmark"; \
	$$S eval --model "$$D/models/tiny-llava" --dataset "$$D/dataset" --output-dir "$$D/eval" --no-progress; \
	echo "curate-demo done: curation folder $$D/curation, dataset $$D/dataset, evaluation $$D/eval"

# The two world models (spuriverse/demo/world_models.py): the world, a random-init tiny LLaVA, then
# `spuriverse train` stage by stage (printed as they run; re-running resumes). The two models' own
# stages run in two processes. ARGS='--install' copies the result into the package.
world-models:
	$(PY) -m spuriverse.demo.world_models build --out "$(WORLD_MODELS)" $(ARGS)

world-models-check: world-models
	$(PY) -m spuriverse.demo.world_models check --out "$(WORLD_MODELS)"

# Old name of curate-demo, kept as an alias.
build-demo: curate-demo

# The attribution acceptance experiment (bench/attribution_world.py): IG and occlusion on the world's
# cue-conflicting items, shortcut vs balanced world model; cue / core mass with bootstrap intervals.
# Models default to the shipped world models; the benchmark to this checkout's world generator.
attribution-world:
	$(PY) bench/attribution_world.py --out "$(ATTR_WORLD)" $(if $(SHORTCUT),--shortcut "$(SHORTCUT)") \
		$(if $(BALANCED),--balanced "$(BALANCED)") $(if $(WORLD_BENCH),--dataset "$(WORLD_BENCH)") $(ARGS)
# The fine-tuning study on the planted-cue world, with the shortcut-trained tiny base model (make
# world-models): 5 seeds x (base + 4 data types + 5 group-ablation points) = 50 cells; resumes when re-run.
# Its own copy of the world's benchmark has 480 controls (the group ablation needs 10 x 28 replacements
# beside the 80 held-out controls); the correlations are the world's (same seed).
STUDY_WORLD  ?= runs/study-world
# the shipped shortcut model (spuriverse.data.world.models), else the one `make world-models` built
STUDY_MODEL  ?= $(firstword $(wildcard spuriverse/data/world/models/shortcut) runs/world-models/shortcut)
WORLD_SEED   ?= 0
study-world:
	@set -e; export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false TRANSFORMERS_VERBOSITY=error; \
	test -d "$(STUDY_MODEL)" || { echo "error: no base model at $(STUDY_MODEL): run make world-models, or pass STUDY_MODEL=DIR"; exit 2; }; \
	test -e "$(STUDY_WORLD)/world/benchmark/README.md" || $(PY) -m spuriverse.data.world --out "$(STUDY_WORLD)/world" \
		--seed $(WORLD_SEED) --n-train 1 --n-val 1 --n-controls 480; \
	$(BIN)/spuriverse study finetune --model "$(STUDY_MODEL)" --dataset "$(STUDY_WORLD)/world/benchmark" \
		--out "$(STUDY_WORLD)/study" --seeds 42,123,7890,54321,9876 --ablation 0,25%,50%,75%,100% --epochs 5 --lr 2e-3 \
		--batch-size 8 --threads 1 $(ARGS)

# The type check (mypy over spuriverse/, config in pyproject.toml) runs beside the tests: it is one
# process reading mostly torch/transformers; the target fails when either fails.
# The tests run in TEST_WORKERS pytest-xdist processes, a test file per worker at a time (--dist loadfile):
# most tests use one core (tiny models, one torch thread, or waiting on subprocesses), so 2 workers on 2
# cores take ~9.5 minutes instead of ~12. TEST_WORKERS=0 runs them in this process.
TEST_WORKERS ?= 2
test:
	@log=$$(mktemp); $(PY) -m mypy > "$$log" 2>&1 & mypy=$$!; \
	$(PY) -m pytest -q $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile) --durations=15; tests=$$?; \
	wait $$mypy; types=$$?; echo "== mypy (type check of spuriverse/)"; cat "$$log"; rm -f "$$log"; \
	exit $$(( tests || types ))

bench:
	$(PY) bench/eval_throughput.py
	$(PY) bench/api_throughput.py
	$(PY) bench/leaderboard.py
	$(PY) bench/synth_throughput.py
	$(PY) bench/mine_memory.py
	$(PY) bench/influence.py
	$(PY) bench/influence_lds.py
	$(PY) bench/attribution.py

# Which training examples taught a LoRA fine-tune its shortcut (see README, "Which training examples
# taught it?"): fine-tune BASE (a tiny LLaVA that knows the world's shapes) with a poisoned cue, diagnose
# with `spuriverse diagnose influence`, then remove the top supporters vs random examples and retrain.
influence-world:
	$(PY) bench/influence_world.py $(if $(BASE),--base "$(BASE)",--make-base runs/world-base) \
		--out "$(INFLUENCE_WORLD)" $(ARGS)

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
