# owl: the two commands a new user needs are `make run` and `make test`.
# Each sets up missing dependencies (Debian packages), builds, and runs.

BUILD        ?= build
MODEL        ?= models/stories260K.gguf
PORT         ?= 8080
FUZZ_SECONDS ?= 60
CMAKE_FLAGS  ?=

.PHONY: all setup build run test asan fuzz bench clean

all: build

setup:
	@scripts/setup.sh

build: setup
	@cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD)

# The server on the embedded model: the chat page and the OpenAI-compatible API at the URL it prints.
run: build
	@echo "owl serve: open http://127.0.0.1:$(PORT)/ (Ctrl-C stops)"
	@$(BUILD)/apps/cli/owl serve -m $(MODEL) --port $(PORT)

test: build
	@ctest --test-dir $(BUILD) --output-on-failure -j2

# The tests again under AddressSanitizer + UndefinedBehaviorSanitizer.
asan: setup
	@cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS=-g1 -DOWL_SANITIZE=ON \
	  -DOWL_BUILD_BENCH=OFF >/dev/null
	@cmake --build build-asan
	@ctest --test-dir build-asan --output-on-failure -j2

# Each libFuzzer target for FUZZ_SECONDS, seeded with the checked-in corpora.
fuzz: setup
	@CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS=-g1 \
	  -DOWL_FUZZ=ON -DOWL_BUILD_TESTS=OFF -DOWL_BUILD_BENCH=OFF >/dev/null
	@scripts/fuzz.sh build-fuzz $(FUZZ_SECONDS)

bench: build
	@for b in $(BUILD)/bench/owl_bench_*; do echo "== $$b"; $$b; done

clean:
	rm -rf $(BUILD) build-asan build-fuzz
