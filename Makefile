# Every target installs what it needs first; `make run` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NODE_STAMP := infra/local/node_modules/.installed
PROTO_SRC := proto/tracking/v1/tracking.proto proto/kinesis/v1/aggregation.proto
PROTO_OUT := tracker/schema

.PHONY: install proto proto-check lint typecheck openapi-check test check run show clean docker-lint cfn-lint checkov compose-test lock lock-check bench browser

install: $(STAMP) $(NODE_STAMP)

# Every Python package comes from a lock in requirements/ (exact versions, hash-checked, wheels
# only: an sdist's build would fetch its build tools unpinned); the project itself is installed
# without touching the index (no deps, no build isolation).
LOCKS := requirements
PIP_LOCKED := pip install --quiet --require-hashes --only-binary=:all:

$(STAMP): pyproject.toml $(LOCKS)/bootstrap.lock $(LOCKS)/dev.lock
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/$(PIP_LOCKED) -r $(LOCKS)/bootstrap.lock
	$(BIN)/$(PIP_LOCKED) -r $(LOCKS)/dev.lock
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

$(NODE_STAMP): infra/local/package.json infra/local/package-lock.json
	@command -v npm >/dev/null || { echo "npm is missing: install Node.js 18+ (apt-get install nodejs npm)"; exit 3; }
	cd infra/local && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Generated protobuf code (and .pyi stubs for mypy) comes only from here.
proto: $(STAMP)
	$(BIN)/python -m grpc_tools.protoc -I proto --python_out=$(PROTO_OUT) --pyi_out=$(PROTO_OUT) $(PROTO_SRC)

# Fails when the committed generated code differs from what proto/ generates.
proto-check: proto
	git diff --exit-code -- $(PROTO_OUT) || { echo "generated code is stale: run make proto and commit"; exit 1; }

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# The HTTP API's description (docs/openapi.yaml) is a valid OpenAPI 3.1 document.
openapi-check: $(STAMP)
	$(BIN)/openapi-spec-validator docs/openapi.yaml

test: install
	$(BIN)/pytest

# No Docker engine needed: hadolint reads the Dockerfiles, docker-compose (Debian's package)
# resolves the compose file, every profile included.
docker-lint: $(STAMP)
	$(BIN)/hadolint Dockerfile infra/local/Dockerfile.kinesalite
	@command -v docker-compose >/dev/null || { echo "docker-compose is missing: apt-get install docker-compose"; exit 3; }
	docker-compose --profile load config --quiet

# The compose stack on a real Docker engine (running; .ci/run starts one): builds the images and
# the Lambda target, brings the stack up under a project name of its own, sends pixels and clicks
# from the host, finds exactly their items in DynamoDB and their rows in the lake (Glue + S3 on
# the moto server), runs `lake maintain`, stops it (every container exits 0) and removes it
# (down -v), also on failure. Bounded: ~85 s with the images built, ~3 min from scratch.
compose-test: $(STAMP)
	$(BIN)/python infra/local/compose_check.py

cfn-lint: $(STAMP)
	$(BIN)/cfn-lint infra/cloudformation/*.yaml

# checkov in a virtualenv of its own: it pins boto3/botocore versions that clash with
# aiobotocore's in .venv. Any failed check fails; accepted findings are skipped inline in the
# templates (Metadata: checkov: skip:, each with its reason; docs/deploy.md lists them).
CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed
CHECKOV_FLAGS := --framework cloudformation --compact --quiet --skip-download

# The venv's own pip installs it (bootstrap's wheel needs a newer packaging than checkov allows).
$(CHECKOV_STAMP): $(LOCKS)/checkov.lock
	rm -rf $(CHECKOV_VENV) && $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/$(PIP_LOCKED) -r $(LOCKS)/checkov.lock
	touch $@

# checkov resolves conditions with the parameters' defaults and skips the resources they leave
# out, so the Lambda consumers and the admin token secret are checked on a copy of services.yaml
# whose defaults switch them on (ConsumerRuntime lambda, EnableAdminToken true).
checkov: $(CHECKOV_STAMP)
	$(CHECKOV_VENV)/bin/checkov --directory infra/cloudformation $(CHECKOV_FLAGS)
	@dir=$$(mktemp -d) && trap 'rm -rf "$$dir"' EXIT && \
	  sed -e '/^  ConsumerRuntime:/,/Default:/ s/Default: ecs$$/Default: lambda/' \
	      -e '/^  EnableAdminToken:/,/Default:/ s/Default: "false"$$/Default: "true"/' \
	      infra/cloudformation/services.yaml > "$$dir/services.yaml" && \
	  test "$$(diff infra/cloudformation/services.yaml "$$dir/services.yaml" | grep -c '^>')" = 2 \
	    || { echo "checkov: could not switch the defaults in the copy of services.yaml"; exit 1; } && \
	  echo "services.yaml with ConsumerRuntime=lambda, EnableAdminToken=true:" && \
	  $(CHECKOV_VENV)/bin/checkov --directory "$$dir" $(CHECKOV_FLAGS)

# Re-resolve every lock in requirements/ to the newest versions pyproject and the *.in files
# allow (uv, pinned in the dev lock), with hashes. `make install` then installs exactly them.
lock: $(STAMP)
	UV=$(BIN)/uv $(BIN)/python $(LOCKS)/locks.py write --upgrade

# The locks were written from today's pyproject and *.in files (also a test).
lock-check:
	$(PYTHON) $(LOCKS)/locks.py check

check: lock-check proto-check lint typecheck openapi-check docker-lint cfn-lint checkov test

run: install
	@command -v redis-server >/dev/null || { echo "redis-server is missing: apt-get install redis-server (Debian/Ubuntu) or brew install redis (macOS)"; exit 3; }
	$(BIN)/python -m tracker.devstack

# The load test: hey against the tracker and a bare aiohttp server, interleaved; end to end into
# DynamoDB; memory with 100,000 programs; durability (the pixel per DURABILITY mode, a 1 GiB on-disk
# log drained). 15-30 minutes by machine; writes bench/results/latest.*.
bench: install
	@command -v hey >/dev/null || { echo "installing hey (Debian package)"; \
	  apt-get install -y -qq hey >/dev/null || { echo "could not install hey: apt-get install hey"; exit 3; }; }
	@command -v wrk >/dev/null || { echo "installing wrk (Debian package; hey cannot set a User-Agent)"; \
	  apt-get install -y -qq wrk >/dev/null || { echo "could not install wrk: apt-get install wrk"; exit 3; }; }
	$(BIN)/python -m bench.run

# Headless Chromium and its driver for tests/test_browser.py (Debian packages; as root, like
# `bench`'s hey). .ci/run calls it; elsewhere that test skips without them (fails when CI is set).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  echo "installing chromium and chromium-driver (Debian packages)"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      chromium chromium-driver >/dev/null; } \
	  || { echo "could not install them: apt-get install chromium chromium-driver"; exit 3; }; }

# A program's newest events in the DynamoDB of a running `make run` stack.
PROGRAM ?= demo-shoes
show: $(STAMP)
	@test -f .stack/env || { echo "no local stack: start it with make run"; exit 1; }
	@set -a && . ./.stack/env && set +a && LOG_LEVEL=WARNING $(BIN)/consumers show $(PROGRAM)

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) infra/local/node_modules .mypy_cache .ruff_cache .pytest_cache
