# Front door: `make demo` and `make test` work from a fresh clone.
BUILD ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

PREFIX ?= /usr/local
DESTDIR ?=

.PHONY: all deps build demo test test-asan bench soak clean fuzz valgrind install package

all: build

deps:
	@scripts/install-deps.sh

# A build directory configured before .deps/ last changed has the old
# libraries' paths in its cache: configure it afresh.
DEPS_STAMPS := $(wildcard .deps/.stamp-*)

$(BUILD)/CMakeCache.txt: $(DEPS_STAMPS)
	rm -f $@
	cmake -S . -B $(BUILD) -DLURK_WERROR=ON $(CMAKE_FLAGS)

$(ASAN_BUILD)/CMakeCache.txt $(FUZZ_BUILD)/CMakeCache.txt: $(DEPS_STAMPS)
	rm -f $@

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

# Installs under $(PREFIX) (default /usr/local), staged under $(DESTDIR) if
# set. The tree is configured for that prefix (libraries in lib/<multiarch>
# under /usr, where Debian looks), and nothing installed refers to it.
install: build
	cmake -S . -B $(BUILD) -DCMAKE_INSTALL_PREFIX=$(PREFIX) >/dev/null
	cmake --build $(BUILD) -j $(JOBS)
	DESTDIR=$(DESTDIR) cmake --install $(BUILD)

# A Debian package, $(BUILD)/lurk_<version>_<arch>.deb, built in $(BUILD)/deb
# for /usr (scripts/package-deb.sh).
package: deps
	JOBS=$(JOBS) scripts/package-deb.sh $(BUILD)

demo: build
	$(BUILD)/lurk examples/demo.lua

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-asan: deps $(ASAN_BUILD)/CMakeCache.txt
	cmake -S . -B $(ASAN_BUILD) -DLURK_WERROR=ON -DLURK_SANITIZE=address,undefined -DCMAKE_BUILD_TYPE=Debug -DLURK_UML_TESTS=OFF $(CMAKE_FLAGS)
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure -j $(JOBS)

bench: build
	cmake --build $(BUILD) --target bench

# 100,000 HTTPS requests and 10,000 WebSocket cycles on loopback; fails if
# RSS, heap in use or open descriptors grow (bench/soak.lua). Minutes, so
# not part of `make test`.
soak: build
	LURK=$(BUILD)/lurk bench/soak.sh

# libFuzzer targets (tests/fuzz), FUZZ_SECONDS each, in build-fuzz/ (clang).
FUZZ_SECONDS ?= 60
fuzz: deps $(FUZZ_BUILD)/CMakeCache.txt
	FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_BUILD=$(abspath $(FUZZ_BUILD)) scripts/fuzz.sh

# The Lua integration tests under valgrind memcheck (slow; optional).
valgrind: build
	scripts/valgrind.sh $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
