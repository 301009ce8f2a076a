# Every task of the project is a target here; `make` alone lists them.
# Services come from scripts/stack.sh (native Kafka and PostgreSQL under .stack/), and
# targets that need them run `up` first, which is a no-op when both already answer.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

GO ?= go
STACK := scripts/stack.sh
BIN := $(CURDIR)/bin
# Which packages test/race/lint look at: make test PKGS=./processor/...
PKGS ?= ./...
# Extra `go test` flags: make test TESTFLAGS='-run TestX -v' (GOTESTFLAGS works too).
GOTESTFLAGS ?=
TESTFLAGS ?= $(GOTESTFLAGS)
GOLANGCI_LINT_VERSION := v2.15.0
GOLANGCI_LINT := $(BIN)/golangci-lint

# Puts the stack's KAFKA_BROKERS, DATABASE_URL and ORDERFLOW_HTTP_ADDR into a recipe's
# environment (an external DATABASE_URL passes through untouched).
WITH_ENV := eval "$$($(STACK) env)" &&

.PHONY: help
help: ## List the targets (the default)
	@grep -hE '^[a-zA-Z0-9_/-]+:.*## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN { FS = ":.*## " } { printf "  %-12s %s\n", $$1, $$2 }'

.PHONY: up
up: ## Start Kafka and PostgreSQL (no-op when running; first run fetches the Kafka jars)
	@$(STACK) up

.PHONY: down
down: ## Stop Kafka and PostgreSQL (keeps their data)
	@$(STACK) down

.PHONY: status
status: ## Show whether Kafka and PostgreSQL run
	@$(STACK) status

.PHONY: env
env: ## Print export lines for the services: eval "$(make -s env)"
	@$(STACK) env

.PHONY: logs
logs: ## Show the last lines of the Kafka and PostgreSQL logs
	@$(STACK) logs

.PHONY: reset
reset: ## Stop the stack and delete its data (keeps the downloaded Kafka jars)
	@$(STACK) reset

.PHONY: db/reset
db/reset: up ## Drop and recreate the local orderflow database
	@$(STACK) db-reset

.PHONY: build
build: ## Build bin/orderflow
	$(GO) build -o bin/orderflow ./cmd/orderflow

.PHONY: run
run: up build ## Run bin/orderflow serve against the stack (Ctrl-C stops it, not the stack)
	$(WITH_ENV) exec bin/orderflow serve

.PHONY: test
test: up ## Run all tests against the real Kafka and PostgreSQL, then a short fuzz pass
	$(WITH_ENV) $(GO) test -count=1 $(TESTFLAGS) $(PKGS)
	@$(MAKE) -s fuzz FUZZTIME=$(FUZZTIME)

# Every fuzz target as package:Target; `go test -fuzz` takes one target at a time.
FUZZ_TARGETS := ./topics:FuzzDecodeCommand ./topics:FuzzScanCommand ./topics:FuzzEventRoundTrip ./topics:FuzzEventHead ./topics:FuzzEncodeEvent ./topics:FuzzIdentify \
	./query:FuzzDecodeCommandBody ./query:FuzzDecodeCursor ./query:FuzzParams
# How much each target runs: short in `make test`, longer by hand (make fuzz FUZZTIME=5m or
# FUZZTIME=1000000x). The default is a count of executions, not a duration: with a duration,
# Go 1.26's fuzz coordinator can fail a target with a bare "context deadline exceeded" as
# the time runs out on a busy machine (golang/go#75804, fixed in Go 1.27). A count has no
# deadline to race; 20,000 executions take a few seconds per target here.
FUZZTIME ?= 20000x

.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZTIME each (default 20000x: executions)
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		if ! grep -q "^func $$name(" $$pkg/*_test.go; then echo "fuzz: $$name not found in $$pkg"; exit 1; fi; \
		echo "fuzz $$pkg $$name ($(FUZZTIME))"; \
		out=$$($(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg 2>&1) || { echo "$$out" | tail -n 40; exit 1; }; \
		echo "$$out" | tail -n 1; \
	done

.PHONY: test/race
test/race: up ## Run all tests with the race detector
	$(WITH_ENV) $(GO) test -count=1 -race $(TESTFLAGS) $(PKGS)

.PHONY: lint
lint: tools ## Run golangci-lint, gofmt and go vet
	@unformatted=$$(gofmt -l $$(git ls-files --cached --others --exclude-standard '*.go')); \
		if [[ -n $$unformatted ]]; then echo "gofmt needed (make fmt):"; echo "$$unformatted"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GOLANGCI_LINT) run $(PKGS)

# The pinned linter lives in ./bin, so every machine lints with the same version; a
# changed pin reinstalls it.
.PHONY: tools
tools: ## Install the pinned golangci-lint into ./bin
	@if ! $(GOLANGCI_LINT) version 2>/dev/null | grep -qF ' $(GOLANGCI_LINT_VERSION:v%=%) '; then \
		echo "installing golangci-lint $(GOLANGCI_LINT_VERSION) into bin/"; \
		GOBIN=$(BIN) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION); \
	fi

.PHONY: fmt
fmt: ## Format the Go code
	gofmt -w $$(git ls-files --cached --others --exclude-standard '*.go')

.PHONY: bench
bench: ## Run the benchmark driver (scripts/bench.sh) against the stack
	@if [[ -f scripts/bench.sh ]]; then $(STACK) up && $(WITH_ENV) bash scripts/bench.sh; \
		else echo "scripts/bench.sh is not there yet"; fi

.PHONY: chaos
# Not on the shared stack: chaos crashes Kafka and PostgreSQL, so scripts/chaos.sh runs
# a private one (.stack-chaos/, ports 29092 and 25432). CHAOSFLAGS go to the driver.
CHAOSFLAGS ?=
chaos: ## Run the chaos test (scripts/chaos.sh) on a private stack: kills, crashes, verify
	bash scripts/chaos.sh $(CHAOSFLAGS)

.PHONY: clean
clean: ## Remove build and test outputs (not the linter in bin/, nor the stack: see reset)
	rm -f bin/orderflow
	find . \( -path ./.stack -o -path ./.git \) -prune -o -type f \( -name '*.test' -o -name '*.out' -o -name '*.prof' \) -print -exec rm -f {} +
