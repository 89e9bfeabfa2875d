# Switchyard — build, test, run.
#
#   make run    build, install ONNX Runtime, generate the synthetic workload,
#               train, export to ONNX and serve on 127.0.0.1:8080
#   make test   go vet + go test -race ./... (installs ONNX Runtime first)
#   make bench  benchmarks: the hot path, the server process under load
#               (pinned apart from its load generator), training, eval;
#               then make bench-scale
#   make bench-scale  join, train, ope and experiment analyze on SCALE
#               synthetic logged decisions (10 million unless set), timed
#   make quality  the routing-quality table on ../shared/data
#   make lint   gofmt, go vet, a go mod tidy check and staticcheck
#   make fuzz   every fuzz target, FUZZTIME each (30s unless set)
#   make onnx-proto  regenerate classifier/onnxpb from its onnx.proto3

GO        ?= go
BIN       := bin/switchyard
ORT_VER   := 1.30.0
ORT_DIR   := $(CURDIR)/.ort
ORT_LIB   := $(ORT_DIR)/libonnxruntime.so.1
# sha256 of package/bin/napi-v6/linux/x64/libonnxruntime.so.1 in onnxruntime-node@1.30.0
ORT_SHA   := ffb75a925ba05e47b235bb66e3e3911714a80b328a9c9425539feb204aa32a23
RUN_DIR   := $(CURDIR)/.run
ADDR      ?= 127.0.0.1:8080
SEED      ?= 1
PROMPTS   ?= 6000
BENCH     ?= .
DATA      ?= $(CURDIR)/../shared/data/mmlu-pro
TOOLS     := $(CURDIR)/bin/tools
STATICCHECK_VER := v0.8.2

export SWITCHYARD_ORT_LIB := $(ORT_LIB)

.PHONY: all build ort redis test bench bench-scale run clean fuzz quality lint onnx-proto

all: build

build:
	$(GO) build -o $(BIN) ./cmd/switchyard

# ONNX Runtime comes from the npm registry's onnxruntime-node package, which
# ships the CPU shared library; the checksum pins the exact file.
ort: $(ORT_LIB)

$(ORT_LIB):
	@command -v npm >/dev/null || { echo "npm is needed to fetch ONNX Runtime (onnxruntime-node@$(ORT_VER))" >&2; exit 1; }
	@rm -rf $(ORT_DIR)/tmp && mkdir -p $(ORT_DIR)/tmp
	cd $(ORT_DIR)/tmp && npm pack --silent onnxruntime-node@$(ORT_VER) >/dev/null
	tar -xzf $(ORT_DIR)/tmp/onnxruntime-node-$(ORT_VER).tgz -C $(ORT_DIR)/tmp package/bin/napi-v6/linux/x64/libonnxruntime.so.1
	echo "$(ORT_SHA)  $(ORT_DIR)/tmp/package/bin/napi-v6/linux/x64/libonnxruntime.so.1" | sha256sum -c --quiet - \
		|| { echo "checksum mismatch for libonnxruntime.so.1 from onnxruntime-node@$(ORT_VER)" >&2; exit 1; }
	mv $(ORT_DIR)/tmp/package/bin/napi-v6/linux/x64/libonnxruntime.so.1 $(ORT_LIB)
	rm -rf $(ORT_DIR)/tmp

# The fleet tests run a real redis-server (Debian's package), installed
# with apt-get when the machine lacks it (as root, or through sudo).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
redis:
	@command -v redis-server >/dev/null || { \
		export DEBIAN_FRONTEND=noninteractive; \
		$(SUDO) apt-get install -y -q redis-server >/dev/null || { $(SUDO) apt-get update -q >/dev/null && $(SUDO) apt-get install -y -q redis-server >/dev/null; }; \
		command -v redis-server >/dev/null || { echo "redis-server is needed by the fleet tests: install Debian's redis-server package" >&2; exit 1; }; }

test: ort redis
	$(GO) vet ./...
	$(GO) test -race -count=1 ./...
	$(MAKE) --no-print-directory fuzz FUZZTIME=20000x

# Short, bounded fuzzing of everything that parses outside input. make test
# bounds it by a number of inputs, not by time: Go 1.26's fuzzing
# coordinator can report "context deadline exceeded" when a time budget ends
# while a worker is mid-input (golang/go#75804, fixed in Go 1.27).
FUZZTIME ?= 30s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzExtract$$' -fuzztime $(FUZZTIME) ./features
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeRoute$$' -fuzztime $(FUZZTIME) ./serving
	$(GO) test -run '^$$' -fuzz '^FuzzParsePromptLine$$' -fuzztime $(FUZZTIME) ./datasets
	$(GO) test -run '^$$' -fuzz '^FuzzImportLongCSV$$' -fuzztime $(FUZZTIME) ./datasets
	$(GO) test -run '^$$' -fuzz '^FuzzImportLongJSONL$$' -fuzztime $(FUZZTIME) ./datasets
	$(GO) test -run '^$$' -fuzz '^FuzzReadParquet$$' -fuzztime $(FUZZTIME) ./datasets
	$(GO) test -run '^$$' -fuzz '^FuzzValue$$' -fuzztime $(FUZZTIME) ./experiments/ope

# gofmt, go vet, a check that go.mod and go.sum are tidy (go mod tidy -diff
# prints what it would change and leaves the files as they are), and
# staticcheck, built by go run at a pinned version so only Go is needed.
lint:
	@files=$$(gofmt -l .); if [ -n "$$files" ]; then echo "gofmt -l: not formatted (run gofmt -w):" >&2; echo "$$files" >&2; exit 1; fi
	$(GO) vet ./...
	$(GO) mod tidy -diff
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VER) ./...

# classifier/onnxpb holds Go types for ONNX's protobuf messages, generated
# from onnx/onnx.proto3 of onnx/onnx v1.22.0 (commit
# 2bb50465112feca9003e1ed654d77f01ff1415ca), which is committed beside them.
# To move to another ONNX release, replace classifier/onnxpb/onnx.proto3 and
# run make onnx-proto, which runs
#   protoc -I classifier/onnxpb --plugin=protoc-gen-go=bin/tools/protoc-gen-go \
#     --go_out=classifier/onnxpb --go_opt=paths=source_relative \
#     --go_opt=Monnx.proto3=switchyard/classifier/onnxpb onnx.proto3
# with protoc-gen-go built at the google.golang.org/protobuf version in go.mod.
# protoc is Debian's protobuf-compiler (apt-get install -y protobuf-compiler).
# Builds and tests use the committed code and need neither.
onnx-proto:
	@command -v protoc >/dev/null || { echo "protoc is needed: apt-get install -y protobuf-compiler" >&2; exit 1; }
	$(GO) build -o $(TOOLS)/protoc-gen-go google.golang.org/protobuf/cmd/protoc-gen-go
	protoc -I classifier/onnxpb --plugin=protoc-gen-go=$(TOOLS)/protoc-gen-go \
		--go_out=classifier/onnxpb --go_opt=paths=source_relative \
		--go_opt=Monnx.proto3=switchyard/classifier/onnxpb onnx.proto3

bench: ort redis
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchmem ./...
	$(MAKE) bench-scale

# Training at log scale (docs/results/log-scale.md): a fleet's synthetic
# logs of SCALE decisions (1 KB prompts, 4 replicas' files, an experiment),
# then join, one epoch of train, ope and experiment analyze, each with its
# wall time and peak RSS (GNU time; Debian's package is installed when
# missing). SCALE_DIR needs about 300 bytes a decision.
SCALE     ?= 10000000
SCALE_DIR ?= $(CURDIR)/.scale
TIME      := /usr/bin/time -f '%C: %e s, peak RSS %M KB'
bench-scale: build ort
	@test -x /usr/bin/time || { \
		echo "installing GNU time (Debian package time)" >&2; \
		$(SUDO) apt-get install -y -q time >/dev/null || { $(SUDO) apt-get update -q >/dev/null && $(SUDO) apt-get install -y -q time >/dev/null; }; }
	rm -rf $(SCALE_DIR) && mkdir -p $(SCALE_DIR)
	$(BIN) generate --seed 1 --prompts 6000 --out $(SCALE_DIR)/data
	$(BIN) train --data $(SCALE_DIR)/data --seed 1 --out $(SCALE_DIR)/serving
	$(TIME) $(BIN) generate --logs $(SCALE_DIR)/logs --decisions $(SCALE) --prompts 200000 --experiment x
	printf '%s\n' '{"catalogue": "$(SCALE_DIR)/data/catalogue.csv", "default_policy": "a",' \
		' "policies": [{"name": "a", "version": "1", "predictor": "$(SCALE_DIR)/serving/predictor.onnx", "quality_bar": 0.8},' \
		'  {"name": "b", "version": "1", "predictor": "$(SCALE_DIR)/serving/predictor.onnx", "quality_bar": 0.6}],' \
		' "experiments": [{"name": "x", "unit": "user", "salt": "x",' \
		'  "arms": [{"name": "a", "policy": "a", "weight": 0.5}, {"name": "b", "policy": "b", "weight": 0.5}]}]}' > $(SCALE_DIR)/config.json
	$(TIME) $(BIN) join --logs $(SCALE_DIR)/logs --out $(SCALE_DIR)/table.parquet
	$(TIME) $(BIN) train --table $(SCALE_DIR)/table.parquet --catalogue $(SCALE_DIR)/data/catalogue.csv --epochs 1 --out $(SCALE_DIR)/model
	$(TIME) $(BIN) ope --logs $(SCALE_DIR)/logs --model $(SCALE_DIR)/serving/predictor.onnx --catalogue $(SCALE_DIR)/data/catalogue.csv --scorer go
	$(TIME) $(BIN) experiment analyze --logs $(SCALE_DIR)/logs --config $(SCALE_DIR)/config.json --out $(SCALE_DIR)/experiment

# The routing-quality table: 5-fold eval of the learned router against every
# baseline on the shared benchmarks, with task labels used, train-only and
# ignored.
quality: build
	$(BIN) quality --data-root $(CURDIR)/../shared/data

run: build ort
	@mkdir -p $(RUN_DIR)
	$(BIN) generate --seed $(SEED) --prompts $(PROMPTS) --out $(RUN_DIR)/data
	$(BIN) train --data $(RUN_DIR)/data --seed $(SEED) --out $(RUN_DIR)/model
	@echo
	@echo "Try:  curl -s -X POST http://$(ADDR)/v1/route -d '{\"prompt\":\"Classify this ticket as billing, bug or other: I was charged twice.\"}'"
	@echo
	$(BIN) serve --model $(RUN_DIR)/model/predictor.onnx --catalogue $(RUN_DIR)/data/catalogue.csv --logs $(RUN_DIR)/logs --addr $(ADDR)

clean:
	rm -rf bin $(RUN_DIR)
