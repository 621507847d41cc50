# Wraps CMake so the README's commands are short. Everything real is in CMakeLists.txt.
BUILD      ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
FUZZ_BUILD ?= build-fuzz
LINT_BUILD ?= build-lint
FUZZ_SECONDS ?= 60
JOBS       ?= 2
PREFIX     ?= /usr/local
DESTDIR    ?=
CMAKE_ARGS ?=

.PHONY: all deps build test test-asan test-tsan fuzz lint check-all demo bench install format check-format reference clean

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

# The unit, fuzz-replay and integration tests again under AddressSanitizer
# and UndefinedBehaviorSanitizer, built with clang so both compilers see
# every file with -Werror. The integration tests start the instrumented
# bitnetd, so a leak or an error in the daemon fails its test (it must exit
# 0); handle_segv=0 lets the fault test's backend runner die of its SIGSEGV.
test-asan:
	@sh scripts/deps.sh
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug \
		-DBITNET_SANITIZE=address,undefined $(CMAKE_ARGS)
	cmake --build $(ASAN_BUILD) -j$(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:handle_segv=0 ctest --output-on-failure \
		-j$(JOBS) -L 'unit|fuzz|integration'

# The test suite under ThreadSanitizer (clang): the engine and its compute
# pool, the daemon's scheduler threads and the integration tests that drive a
# real bitnetd. Left out: crossval and llama (the uninstrumented reference
# libllama runs its own threads) and cross (qemu). Reports go to files, so
# that a race in a daemon started by a test fails the run even when that
# test passed; see docs/reliability.md. cmake/tsan.supp: third-party only.
# handle_segv=0: the fault tests crash a backend runner on purpose and check
# that it died of SIGSEGV, which TSan would otherwise turn into exit 66.
test-tsan:
	@sh scripts/deps.sh
	cmake -S . -B $(TSAN_BUILD) -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
		-DBITNET_SANITIZE=thread $(CMAKE_ARGS)
	cmake --build $(TSAN_BUILD) -j$(JOBS)
	rm -rf $(TSAN_BUILD)/tsan-reports && mkdir -p $(TSAN_BUILD)/tsan-reports
	cd $(TSAN_BUILD) && TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 handle_segv=0 \
		suppressions=$(CURDIR)/cmake/tsan.supp log_path=$(CURDIR)/$(TSAN_BUILD)/tsan-reports/tsan" \
		ctest --output-on-failure -j$(JOBS) -LE 'crossval|cross|llama'
	@if ls $(TSAN_BUILD)/tsan-reports | grep -q .; then \
		cat $(TSAN_BUILD)/tsan-reports/*; echo "test-tsan: ThreadSanitizer reports above"; exit 1; fi

# libFuzzer targets (clang, ASan+UBSan), each run FUZZ_SECONDS (tests/fuzz/run.sh).
fuzz:
	@sh scripts/deps.sh
	@sh scripts/fetch-reference.sh
	JOBS=$(JOBS) sh tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

# Static analysis: cppcheck and clang-tidy (checks in .clang-tidy) over the
# compile commands of a clang configuration; any finding fails.
lint:
	@sh scripts/deps.sh
	cmake -S . -B $(LINT_BUILD) -DCMAKE_C_COMPILER=clang $(CMAKE_ARGS) > /dev/null
	cppcheck --project=$(LINT_BUILD)/compile_commands.json --quiet --error-exitcode=1 \
		--enable=warning,portability --inline-suppr -j$(JOBS) -D__x86_64__ -D__linux__ \
		--library=cmake/cppcheck-jansson.cfg --suppressions-list=cmake/cppcheck.supp \
		-i$(CURDIR)/.cache -i$(CURDIR)/$(LINT_BUILD)
	run-clang-tidy -quiet -j$(JOBS) -p $(LINT_BUILD) '^$(CURDIR)/(common|kernels|engine|backends|protocol|daemon|client|tools|bench|tests|docs)/'

check-all: test test-asan test-tsan lint

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
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) $(FUZZ_BUILD) $(LINT_BUILD)
