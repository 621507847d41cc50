# Wraps CMake so the README's commands are short. Everything real is in CMakeLists.txt.
BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= 2
PREFIX     ?= /usr/local
DESTDIR    ?=
CMAKE_ARGS ?=

.PHONY: all deps build test test-asan demo bench install format check-format reference clean

all: build

deps:
	@sh scripts/deps.sh

$(BUILD)/CMakeCache.txt:
	@sh scripts/deps.sh
	@sh scripts/fetch-reference.sh
	cmake -S . -B $(BUILD) -DCMAKE_INSTALL_PREFIX=$(PREFIX) $(CMAKE_ARGS)

build: $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j$(JOBS)

test: build
	@sh scripts/fetch-reference.sh
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

# The unit tests again under AddressSanitizer and UndefinedBehaviorSanitizer,
# built with clang so both compilers see every file with -Werror.
test-asan:
	@sh scripts/deps.sh
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug \
		-DBITNET_SANITIZE=address,undefined $(CMAKE_ARGS)
	cmake --build $(ASAN_BUILD) -j$(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j$(JOBS) -L unit

demo: build
	@sh scripts/demo.sh $(BUILD)

# Benchmarks (figures, never pass/fail): kernels, tokenizer, end to end.
# Writes bench/REPORT.md; takes several minutes and wants a quiet machine.
bench: build
	@sh scripts/bench.sh $(BUILD)

install: build
	DESTDIR=$(DESTDIR) cmake --install $(BUILD) --prefix $(PREFIX)

reference:
	@sh scripts/fetch-reference.sh

format:
	@git ls-files '*.c' '*.h' | xargs clang-format -i

check-format:
	@sh scripts/check-format.sh

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
