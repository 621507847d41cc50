# Wraps CMake so the README's commands are short. Everything real is in CMakeLists.txt.
BUILD      ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
VALGRIND_BUILD ?= build-valgrind
FUZZ_BUILD ?= build-fuzz
LINT_BUILD ?= build-lint
FUZZ_SECONDS ?= 60
JOBS       ?= 2
PREFIX     ?= /usr/local
DESTDIR    ?=
CMAKE_ARGS ?=

.PHONY: all deps build test test-asan test-tsan test-valgrind fuzz lint check-all demo bench install format check-format reference clean

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
# The build is unoptimised (Debug), so the Check tests' own timeouts, sized
# for optimised builds, get CK_TIMEOUT_MULTIPLIER=3 (test_attn's F16 cache
# case takes about 100 s of its 120 s there).
test-asan:
	@sh scripts/deps.sh
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug \
		-DBITNET_SANITIZE=address,undefined $(CMAKE_ARGS)
	cmake --build $(ASAN_BUILD) -j$(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:handle_segv=0 CK_TIMEOUT_MULTIPLIER=3 \
		ctest --output-on-failure -j$(JOBS) -L 'unit|fuzz|integration'

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

# The unit and integration tests under valgrind memcheck (gcc, RelWithDebInfo,
# as shipped, with line numbers in the reports; gcc because valgrind 3.19
# gives up on clang 14's DWARF 5 debug information): each
# Check program runs under VALGRIND (cmake -DBITNET_TEST_WRAPPER), and the
# integration tests start bitnetd under it (BITNETD_TEST_WRAPPER), so an
# invalid access or a definitely lost block exits 99 and fails the test.
# Each process's report goes to $(VALGRIND_BUILD)/valgrind-reports/vg.PID and
# the target fails when any report counts an error, so an error in a daemon
# whose test does not check its exit status (or kills it) still fails the run.
# cmake/valgrind.supp: third-party only. CK_TIMEOUT_MULTIPLIER gives the
# Check tests' own timeouts room for valgrind's slowdown.
# Left out: crossval and llama (the uninstrumented reference libllama, minutes
# per run under valgrind and not our code), heavy (test_attn: its first of
# five cases ran 9 minutes under valgrind before it was stopped; test_shim, test_target and integration_backends_runtime run
# libllama through our shim: test_shim alone took 6 minutes here;
# integration_slow_reader: thousands of tokens, past its 180 s limit), cross
# (qemu), fuzz (the replays run under ASan in test-asan), contract (scripts
# over our binaries' symbols and options, no memory to check).
VALGRIND ?= valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
	--show-leak-kinds=definite --suppressions=$(CURDIR)/cmake/valgrind.supp \
	--log-file=$(CURDIR)/$(VALGRIND_BUILD)/valgrind-reports/vg.%p
test-valgrind:
	@sh scripts/deps.sh
	@sh scripts/fetch-reference.sh
	cmake -S . -B $(VALGRIND_BUILD) -DCMAKE_C_COMPILER=gcc -DCMAKE_BUILD_TYPE=RelWithDebInfo \
		-DBITNET_TEST_WRAPPER="$(VALGRIND)" $(CMAKE_ARGS)
	cmake --build $(VALGRIND_BUILD) -j$(JOBS)
	rm -rf $(VALGRIND_BUILD)/valgrind-reports && mkdir -p $(VALGRIND_BUILD)/valgrind-reports
	cd $(VALGRIND_BUILD) && CK_TIMEOUT_MULTIPLIER=10 BITNETD_TEST_WRAPPER="$(VALGRIND)" \
		ctest --output-on-failure -j$(JOBS) -L 'unit|integration' -LE 'crossval|cross|llama|heavy'; \
		rc=$$?; bad=$$(grep -l 'ERROR SUMMARY: [1-9]' valgrind-reports/*); \
		if [ -n "$$bad" ]; then cat $$bad; echo "test-valgrind: memcheck errors above"; rc=1; fi; \
		exit $$rc

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

check-all: test test-asan test-tsan test-valgrind lint

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
	@git ls-files '*.c' '*.h' '*.cu' | xargs clang-format -i

check-format:
	@sh scripts/check-format.sh

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) $(VALGRIND_BUILD) $(FUZZ_BUILD) $(LINT_BUILD)
