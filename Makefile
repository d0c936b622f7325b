# sluice — one Makefile for the whole tree (STYLE.md 19).
#
#   make            build build/sluice (daemon + CLI) and build/libsluice_handler.a
#   make test       unit, end-to-end, crash and short fuzz runs; ends with "N passed, M failed"
#   make run        build, start the daemon with the hello example
#   make bench      benchmarks in tests/bench/ (print their figures)
#   make asan       ASan+UBSan build (build-asan/) running the same tests
#   make fuzz       libFuzzer targets (clang) in build/fuzz/
#   make deps       install missing Debian packages (apt-get); all/test/run depend on it
#
# BUILD=dir puts every output under another directory (parallel work, sanitizer builds).

BUILD    ?= build
CC       ?= cc
PREFIX   ?= /usr/local
PYTHON   ?= /usr/bin/python3
SAN      ?=
OPT      ?= -O2

PKGS     := libuv libnghttp2 libcjson libcbor lua5.4 libseccomp libcurl libcrypto sqlite3 libzip
WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
            -Wwrite-strings -Wundef
CFLAGS   := -std=c11 -D_GNU_SOURCE $(OPT) -g $(WARN) $(SAN) -I. \
            $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDFLAGS  := $(SAN)
# libcurl is not linked: runtime/curl_dyn.c loads it on first use (see there why).
LDLIBS   := $(shell pkg-config --libs $(filter-out libcurl,$(PKGS)) 2>/dev/null) -lhttp_parser \
            -lpthread -lm -ldl
TESTLIBS := $(shell pkg-config --libs cmocka libcurl 2>/dev/null)

# Debian packages: build, then test-only (real clients, load, fuzzing).
DEB_BUILD := pkg-config libuv1-dev libhttp-parser-dev libcjson-dev libcbor-dev liblua5.4-dev \
             libseccomp-dev libcurl4-openssl-dev libnghttp2-dev libzip-dev libssl-dev \
             libsqlite3-dev libcmocka-dev
DEB_TEST  := awscli python3-boto3 python3-cbor2 wrk clang libclang-rt-14-dev nghttp2-client curl

BROKER_SRC    := $(wildcard broker/*.c)
SANDBOX_SRC   := $(filter-out sandbox/%_main.c,$(wildcard sandbox/*.c))
FUNCTIONS_SRC := $(filter-out functions/handler_%.c,$(wildcard functions/*.c))
RUNTIME_SRC   := $(filter-out runtime/main.c,$(wildcard runtime/*.c))
HANDLER_SRC   := $(wildcard functions/handler_*.c functions/wire.c)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

LIBBROKER    := $(BUILD)/libbroker.a
LIBSANDBOX   := $(BUILD)/libsandbox.a
LIBFUNCTIONS := $(BUILD)/libfunctions.a
LIBRUNTIME   := $(BUILD)/libruntime.a
LIBHANDLER   := $(BUILD)/libsluice_handler.a
SLUICE       := $(BUILD)/sluice

UNIT_SRC   := $(wildcard tests/unit/test_*.c)
UNIT_BIN   := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
TOOL_SRC   := $(wildcard tests/tools/*.c)
TOOL_BIN   := $(patsubst tests/tools/%.c,$(BUILD)/tools/%,$(TOOL_SRC))
BENCH_SRC  := $(wildcard tests/bench/bench_*.c)
BENCH_BIN  := $(patsubst tests/bench/%.c,$(BUILD)/bench/%,$(BENCH_SRC))

.PHONY: all deps test unit-test bench run asan fuzz clean install check-deps
.DEFAULT_GOAL := all

all: deps $(SLUICE) $(LIBHANDLER)

# deps: install what pkg-config, headers or the test tools cannot find. Cheap when all is present.
deps:
	@missing=""; \
	for p in $(PKGS) cmocka; do pkg-config --exists $$p 2>/dev/null || missing=1; done; \
	[ -f /usr/include/http_parser.h ] || missing=1; \
	for t in aws wrk clang nghttp curl; do command -v $$t >/dev/null 2>&1 || missing=1; done; \
	$(PYTHON) -c 'import boto3, cbor2' >/dev/null 2>&1 || missing=1; \
	[ -f /usr/bin/aws ] || missing=1; \
	if [ -n "$$missing" ]; then \
	  echo "deps: installing Debian packages"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends \
	    $(DEB_BUILD) $(DEB_TEST) >/dev/null || { echo "deps: apt-get failed" >&2; exit 1; }; \
	fi

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(LIBBROKER): $(call obj,$(BROKER_SRC))
$(LIBSANDBOX): $(call obj,$(SANDBOX_SRC))
$(LIBFUNCTIONS): $(call obj,$(FUNCTIONS_SRC))
$(LIBRUNTIME): $(call obj,$(RUNTIME_SRC))
$(LIBHANDLER): $(call obj,$(HANDLER_SRC))
$(BUILD)/lib%.a:
	@mkdir -p $(dir $@)
	@rm -f $@
	ar rcs $@ $^

ALL_LIBS := $(LIBRUNTIME) $(LIBFUNCTIONS) $(LIBSANDBOX) $(LIBBROKER)

$(SLUICE): $(call obj,runtime/main.c) $(ALL_LIBS)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Unit tests: the prefix of the file name says which libraries it links (module isolation).
$(BUILD)/tests/test_broker_%: tests/unit/test_broker_%.c $(LIBBROKER)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS) $(TESTLIBS)
$(BUILD)/tests/test_sandbox_%: tests/unit/test_sandbox_%.c $(LIBSANDBOX) $(LIBBROKER)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS) $(TESTLIBS)
$(BUILD)/tests/test_functions_%: tests/unit/test_functions_%.c $(LIBFUNCTIONS) $(LIBSANDBOX) $(LIBBROKER)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS) $(TESTLIBS)
$(BUILD)/tests/test_%: tests/unit/test_%.c $(ALL_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS) $(TESTLIBS)

$(BUILD)/tools/broker_%: tests/tools/broker_%.c $(LIBBROKER)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS)
$(BUILD)/tools/%: tests/tools/%.c $(ALL_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS)

$(BUILD)/bench/bench_broker%: tests/bench/bench_broker%.c $(LIBBROKER)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS)
$(BUILD)/bench/%: tests/bench/%.c $(ALL_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS) $(shell pkg-config --libs libcurl)

unit-test: deps $(UNIT_BIN)

# test: every suite through one runner that sums the counts (tests/run_tests.sh).
test: deps $(SLUICE) $(LIBHANDLER) $(UNIT_BIN) $(TOOL_BIN)
	@BUILD=$(BUILD) PYTHON=$(PYTHON) bash tests/run_tests.sh

bench: deps $(SLUICE) $(BENCH_BIN)
	@BUILD=$(BUILD) PYTHON=$(PYTHON) bash tests/bench/run_bench.sh

run: all
	@BUILD=$(BUILD) bash examples/run_hello.sh

asan:
	$(MAKE) BUILD=build-asan OPT=-O1 SAN="-fsanitize=address,undefined -fno-omit-frame-pointer" test

FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRC))
fuzz: deps $(FUZZ_BIN)
$(BUILD)/fuzz/%: tests/fuzz/%.c $(BROKER_SRC) $(RUNTIME_SRC) $(FUNCTIONS_SRC) $(SANDBOX_SRC)
	@mkdir -p $(dir $@)
	clang -std=c11 -D_GNU_SOURCE -O1 -g -I. -fsanitize=fuzzer,address,undefined \
	  $(shell pkg-config --cflags $(PKGS) 2>/dev/null) -o $@ $^ $(LDLIBS)

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include
	install -m 755 $(SLUICE) $(DESTDIR)$(PREFIX)/bin/sluice
	install -m 644 $(LIBHANDLER) $(DESTDIR)$(PREFIX)/lib/
	install -m 644 functions/sluice_handler.h $(DESTDIR)$(PREFIX)/include/

clean:
	rm -rf build build-asan build-*

# ---- rules added by module owners (keep each block small and labelled) ----

# ---- native handlers (owner: native): static test handlers, test launcher, bench ----
# Handler-library objects end up in static, untrusted handlers: never build them with sanitizers.
$(call obj,$(HANDLER_SRC)): CFLAGS := $(filter-out -fsanitize=% -fno-omit-frame-pointer,$(CFLAGS))
NATIVE_HANDLERS := $(patsubst tests/handlers/%.c,$(BUILD)/tests/handlers/%,$(wildcard tests/handlers/*.c))
# The daemon launches handlers with `sluice __launch`; this stand-alone build of the same
# launcher code only lets the native unit tests run without the full binary.
NATIVE_LAUNCHER := $(BUILD)/sluice-launch
$(BUILD)/tests/handlers/%: tests/handlers/%.c $(LIBHANDLER) functions/sluice_handler.h
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -D_GNU_SOURCE -O2 -g $(WARN) -I. -Ifunctions -static -o $@ $< -L$(BUILD) -lsluice_handler
$(NATIVE_LAUNCHER): sandbox/launcher_main.c $(LIBSANDBOX) $(LIBBROKER)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) -lseccomp -lcrypto
$(BUILD)/tests/test_functions_native $(BUILD)/tests/test_sandbox_jail: | $(NATIVE_HANDLERS) $(NATIVE_LAUNCHER)
$(BUILD)/bench/bench_native: tests/bench/bench_native.c $(LIBFUNCTIONS) $(LIBSANDBOX) $(LIBBROKER) | $(NATIVE_HANDLERS) $(NATIVE_LAUNCHER)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ tests/bench/bench_native.c $(LIBFUNCTIONS) $(LIBSANDBOX) $(LIBBROKER) $(LDFLAGS) $(LDLIBS)

# ---- http front (owner: http): the fuzz target links only what it exercises ----
$(BUILD)/fuzz/fuzz_http: tests/fuzz/fuzz_http.c runtime/http_server.c runtime/auth.c runtime/log.c broker/sl_common.c
	@mkdir -p $(dir $@)
	clang -std=c11 -D_GNU_SOURCE -O1 -g -I. -fsanitize=fuzzer,address,undefined \
	  $(shell pkg-config --cflags $(PKGS) 2>/dev/null) -o $@ $^ $(LDLIBS)

# ---- broker core (owner: bcore): the broker bench links only libbroker ----
$(BUILD)/bench/bench_broker: tests/bench/bench_broker.c $(LIBBROKER)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS)

# ---- esm end-to-end bench (owner: esme2e): the load helper needs only cJSON and libcrypto ----
$(BUILD)/bench/esm_load: tests/bench/esm_load.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(LDFLAGS) -lcjson -lcrypto -lpthread

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
