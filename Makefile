# SPDX-License-Identifier: MIT
# Thin wrapper over CMake. The README's two commands:
#   make demo   daemon + West/East, traffic between them, latency printed
#   make test   every test (unit, stress, integration, vm, sanitizer builds),
#               after the fast tier of make check
#   make check  the fast tier (minutes): gcc and clang builds with warnings
#               as errors, the unit tests, clang-format, shellcheck, cppcheck
# All install the Debian packages they need (scripts/ivl-deps, as root).

BUILD ?= build
JOBS ?= 2
CMAKE_FLAGS ?= -DIVL_WERROR=ON

.PHONY: all deps build check test demo bench install clean format

all: build

deps:
	@scripts/ivl-deps build

build: deps
	@cmake -S . -B $(BUILD) $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)

check:
	@scripts/ivl-deps build check
	@scripts/check -j$(JOBS)

test:
	@scripts/ivl-deps build check sanitize vm apps libvirt plot bench docs systemd package
	@scripts/run-tests

demo:
	@scripts/ivl-deps build vm
	@$(MAKE) --no-print-directory build
	@scripts/demo

bench:
	@scripts/ivl-deps bench
	@$(MAKE) --no-print-directory build
	@$(BUILD)/bench/ivlink-ring-bench --instructions

install: build
	@cmake --install $(BUILD)

format:
	@clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) build-asan build-tsan build-fuzz build-check-gcc build-check-clang
