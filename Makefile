# berth: build, test and demo. `make help` lists the targets.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := build

GO ?= go
GIT_VERSION := $(shell git describe --always --dirty 2>/dev/null || echo dev)
# Static binaries: the images are FROM scratch and must run without a libc.
GO_BUILD := CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w -X main.version=$(GIT_VERSION)"

# The legacy builder builds FROM scratch images without contacting a registry.
export DOCKER_BUILDKIT := 0

# The demo is the top-level docker-compose.yml: what `docker compose up -d` at the
# root starts too (.env names the project berth-demo).
DEMO := scripts/compose.sh -f docker-compose.yml -p berth-demo
ADMIN_URL := http://127.0.0.1:9900
DEMO_WAIT_SECONDS := 60

.PHONY: help build test fuzz image run stop demo-fleet stop-fleet bench bench-gossip clean

help:
	@echo "make build   static binaries bin/berth and bin/example-app"
	@echo "make test    go vet and every test, with the race detector, a Docker daemon, h2load and h2spec"
	@echo "make fuzz    every go test -fuzz target for FUZZTIME (3m) each (scripts/fuzz.sh)"
	@echo "make image   images berth:dev and berth-example-app:v1/:v2 (FROM scratch)"
	@echo "make run     the demo: one agent and three web replicas on 127.0.0.1:8000"
	@echo "make stop    remove the demo"
	@echo "make demo-fleet  a fleet on this machine: three simulated hosts (network namespaces, each with a dockerd and an agent); needs root"
	@echo "make stop-fleet  remove the fleet: namespaces, dockerds, agents, veths, directories (also after a crash)"
	@echo "make bench   benchmarks beside HAProxy and nginx (scripts/bench.sh)"
	@echo "make bench-gossip  fleet propagation benchmarks (scripts/bench-gossip.sh)"
	@echo "make clean   remove bin/ and the images"

build:
	$(GO_BUILD) -o bin/berth ./cmd/berth
	$(GO_BUILD) -o bin/example-app ./examples/app

# -p 2: the machines that run this have two cores, and the integration tests
# share one Docker daemon.
test:
	$(GO) mod download
	scripts/ensure-docker.sh
	scripts/ensure-tools.sh
	scripts/ensure-compose.sh
	$(GO) vet ./...
	CGO_ENABLED=1 $(GO) test -race -count=1 -p 2 -timeout 12m ./...

# The fuzz targets' seeds run in `make test`; this explores beyond them.
fuzz:
	scripts/fuzz.sh

# Both images are built from bin/ alone, which holds only the static binaries.
# v1 and v2 of the example app are the same binary: the demo passes VERSION in
# the environment, and two tags let a rollout from v1 to v2 be shown.
# The label lets the prune remove the images these tags pointed to before, and
# nothing else.
IMAGE_LABEL := org.berth-lb.make-image

image: build
	scripts/ensure-docker.sh
	docker build --quiet --label $(IMAGE_LABEL)=berth --label org.opencontainers.image.version=$(GIT_VERSION) \
		-f deploy/Dockerfile -t berth:dev bin
	docker build --quiet --label $(IMAGE_LABEL)=example-app \
		-f examples/app/Dockerfile -t berth-example-app:v1 -t berth-example-app:v2 bin
	docker image prune --force --filter label=$(IMAGE_LABEL) >/dev/null

AGENT_CONTAINER_FILTER := -f label=com.docker.compose.project=berth-demo -f label=com.docker.compose.service=berth

run: image
	$(DEMO) up -d --scale web=3
	@echo "waiting until the agent ($(ADMIN_URL)) routes to the three replicas"
	@for _ in $$(seq $$(( $(DEMO_WAIT_SECONDS) * 5 ))); do \
		if [ "$$(curl -fs --max-time 1 $(ADMIN_URL)/api/v1/targets 2>/dev/null | grep -c '"state": "healthy"')" -ge 3 ]; then \
			echo; \
			echo "berth is up with three web replicas."; \
			echo "try:    curl http://127.0.0.1:8000/   (repeat to see the replicas take turns)"; \
			echo "status: bin/berth status   (or inside the agent's container:"; \
			echo "        docker exec \$$(docker ps -q $(AGENT_CONTAINER_FILTER)) /berth status)"; \
			echo "stop:   make stop"; \
			exit 0; \
		fi; \
		if [ -z "$$(docker ps -q $(AGENT_CONTAINER_FILTER))" ]; then \
			echo "the agent's container is not running; its log:" >&2; \
			$(DEMO) logs --no-color --tail 30 berth >&2; \
			exit 1; \
		fi; \
		sleep 0.2; \
	done; \
	echo "the agent did not route to three healthy replicas within $(DEMO_WAIT_SECONDS)s (see bin/berth targets); its log:" >&2; \
	$(DEMO) logs --no-color --tail 30 berth >&2; \
	exit 1

stop:
	$(DEMO) down -v --remove-orphans

# The fleet is internal/fleettest's, the fleet test's harness, driven by
# internal/demofleet; its state is in /run/berth-demo-fleet.
DEMO_FLEET := bin/demo-fleet

demo-fleet:
	$(GO_BUILD) -o $(DEMO_FLEET) ./internal/demofleet
	$(DEMO_FLEET) start

stop-fleet:
	$(GO_BUILD) -o $(DEMO_FLEET) ./internal/demofleet
	$(DEMO_FLEET) stop

bench:
	scripts/bench.sh

bench-gossip:
	scripts/bench-gossip.sh

clean:
	rm -rf bin
	@images="$$(docker image ls --format '{{.Repository}}:{{.Tag}}' | grep -E '^(berth:dev|berth-example-app:.*)$$' || true)"; \
	if [ -n "$$images" ]; then docker image rm $$images; fi
