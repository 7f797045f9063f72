# wsechod - pre-fork RFC 6455 echo server.  One Makefile for everything:
#   make            build build/wsechod (and the tools)
#   make test       install missing Debian packages, build, run unit + integration tests
#   make test SAN=1 the same with ASan + UBSan (any report fails the run)
#   make fuzz FUZZ_SECONDS=N   run each libFuzzer target for N seconds
#   make run        deps, build, then wsechod in the foreground on its defaults
#   make install / uninstall (PREFIX, DESTDIR)
# V=1 shows the commands.

CC      ?= cc
PREFIX  ?= /usr/local
DESTDIR ?=
SAN     ?= 0
V       ?= 0
FUZZ_SECONDS ?= 60

ifeq ($(SAN),1)
BUILD   := build/san
SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
else
BUILD   := build
SANFLAGS :=
endif
# STATS=0 compiles the counters out (build/nostats/), to measure their cost.
STATS   ?= 1
DEFS    :=
ifeq ($(STATS),0)
BUILD   := $(BUILD)/nostats
DEFS    += -DWSE_NO_STATS
endif

# The release number; build/version.h adds `git describe` of the tree built
# (rewritten only when either changes, so nothing rebuilds needlessly).
VERSION := 0.1.0
GIT_DESCRIBE := $(shell git describe --always --dirty 2>/dev/null || echo unknown)

WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Werror
CFLAGS  ?= -O2 -g
ALL_CFLAGS := -std=gnu11 $(CFLAGS) $(WARN) $(SANFLAGS) $(DEFS) -Iinclude -I$(BUILD) -MMD -MP -D_GNU_SOURCE
LDFLAGS ?=
ALL_LDFLAGS := $(LDFLAGS) $(SANFLAGS)

ifeq ($(V),1)
Q :=
else
Q := @
endif

# Layer 0: the pure protocol core (libc, libcrypto, libb64 only).
CORE    := common utf8 frame msg http handshake page proxy route transform hsbuf pmd pmdz
# Layer 1: infrastructure without libev.
INFRA   := log config net chan stats notify iplimit prom priv transport groups sockets tls access connlimit pmdconn
# Layer 2: on libev.
SERVER  := conn timer worker master stats_cli metrics

# Modules appear as their files do, so the tree builds at every step.
have     = $(patsubst src/%.c,%,$(wildcard $(patsubst %,src/%.c,$(1))))
LIB_MODS := $(call have,$(CORE) $(INFRA))
SRV_MODS := $(call have,$(SERVER))
LIB_OBJ  := $(patsubst %,$(BUILD)/src/%.o,$(LIB_MODS))
SRV_OBJ  := $(patsubst %,$(BUILD)/src/%.o,$(SRV_MODS))
LIB      := $(BUILD)/libwse.a

# libssl for the TLS module (layer 1); the core uses libcrypto, zlib and
# libdeflate (pmdz: zlib streams, libdeflate for whole messages).
LIBDEFLATE  := $(shell pkg-config --libs libdeflate 2>/dev/null || echo -ldeflate)
LIBS_CORE   := -lssl -lcrypto -lb64 -lz $(LIBDEFLATE) -lpthread
LIBS_SERVER := -lev $(LIBS_CORE)
CHECK_LIBS  := $(shell pkg-config --libs check 2>/dev/null || echo -lcheck -lsubunit -lm -lrt -lpthread)

UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))

BENCH_SRC := $(wildcard bench/micro_*.c)
BENCH_BIN := $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_SRC))

WSECHOD := $(if $(wildcard src/main.c),$(BUILD)/wsechod)
# The load generator (bench/wsbench*.c): its own program, linked with the core
# for the handshake and frame code.
WSBENCH_SRC := $(wildcard bench/wsbench*.c)
WSBENCH := $(if $(WSBENCH_SRC),$(BUILD)/wsbench)

.PHONY: FORCE all test unit integration fuzz run install uninstall clean deps layercheck bench-micro valgrind
.DEFAULT_GOAL := all
.SECONDARY:

all: layercheck $(WSECHOD) $(WSBENCH) $(UNIT_BIN) $(BENCH_BIN)

deps:
	@sh scripts/deps.sh build test
	@sh scripts/npm-deps.sh tests/integration/node
	@sh scripts/deps.sh --optional browser
	@sh scripts/deps.sh --optional prometheus

$(BUILD)/version.h: FORCE
	@mkdir -p $(dir $@)
	@printf '#define WSE_VERSION "%s"\n#define WSE_GIT_DESCRIBE "%s"\n' \
	    '$(VERSION)' '$(GIT_DESCRIBE)' > $@.tmp
	@if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv $@.tmp $@; fi
$(BUILD)/src/main.o $(BUILD)/src/metrics.o $(BUILD)/bench/wsbench.o: $(BUILD)/version.h

$(BUILD)/src/%.o: src/%.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/tests/%.o: tests/unit/%.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/bench/%.o: bench/%.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) -c -o $@ $<

# The archive also depends on the Makefile: a module added to the lists
# above must enter it even when its object is older than the archive.
$(LIB): $(LIB_OBJ) Makefile
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && ar rcs $@ $(filter %.o,$^)

$(BUILD)/wsechod: $(BUILD)/src/main.o $(SRV_OBJ) $(LIB)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS_SERVER)

$(BUILD)/tests/test_%: $(BUILD)/tests/test_%.o $(LIB)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(CHECK_LIBS) $(LIBS_CORE)

# The TLS suite wraps BIO_new_file to rename a file over while it is read.
$(BUILD)/tests/test_tls: $(BUILD)/tests/test_tls.o $(LIB)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -Wl,--wrap=BIO_new_file -o $@ $^ $(CHECK_LIBS) $(LIBS_CORE)

# The suite of a libev-layer module links its object and libev as well.
$(BUILD)/tests/test_timer: $(BUILD)/tests/test_timer.o $(BUILD)/src/timer.o $(LIB)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(CHECK_LIBS) $(LIBS_SERVER)

$(BUILD)/bench/micro_%: $(BUILD)/bench/micro_%.o $(LIB)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS_CORE)

# The raw TCP echo server: the floor for bench/compare.sh.
$(BUILD)/rawecho: bench/rawecho.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(ALL_CFLAGS) -o $@ $<

# The raw TLS echo server: the same I/O over OpenSSL, the floor for wss.
$(BUILD)/tlsecho: bench/tlsecho.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(ALL_CFLAGS) -o $@ $< -lssl -lcrypto

$(BUILD)/wsbench: $(patsubst bench/%.c,$(BUILD)/bench/%.o,$(WSBENCH_SRC)) $(LIB)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS_CORE) -lpthread -lm

# The include rules of ARCHITECTURE.md: layer 0 includes only layer 0 (no
# sockets, libev, log or configuration); layer 1 nothing of layer 2 and no
# libev, its headers not config.h; of layer 2 only conn.c includes core
# headers (metrics.c: http.h).
layercheck:
	@sh scripts/layercheck.sh "$(CORE)" "$(INFRA)" "$(SERVER)"

# Unit suites: each prints Check's summary; the run fails if any suite fails.
unit: $(UNIT_BIN)
	@fail=0; for t in $(UNIT_BIN); do \
	    echo "== $$t"; \
	    CK_DEFAULT_TIMEOUT=30 $$t || fail=1; \
	done; \
	if [ $$fail -ne 0 ]; then echo "unit tests FAILED" >&2; exit 1; fi

integration: $(WSECHOD)
	@if [ -n "$(WSECHOD)" ] && [ -x tests/integration/run.sh ]; then \
	    WSECHOD=$(BUILD)/wsechod SAN=$(SAN) tests/integration/run.sh; \
	fi

test: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory integration

run:
	@sh scripts/deps.sh build
	@$(MAKE) --no-print-directory $(BUILD)/wsechod $(WSBENCH)
	$(BUILD)/wsechod

# The unit suites and the server under valgrind (slow; make test SAN=1 runs
# ASan + UBSan on every test instead).
valgrind: deps
	@$(MAKE) --no-print-directory all SAN=0
	@sh scripts/valgrind-check.sh

bench-micro: $(BENCH_BIN)
	@for b in $(BENCH_BIN); do $$b; done

# libFuzzer targets: clang, separate objects (different instrumentation).
FUZZ_CC     ?= clang
FUZZ_FLAGS  := -std=gnu11 -g -O1 -Iinclude -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined \
               -fno-sanitize-recover=all
FUZZ_CORE   := $(patsubst %,src/%.c,$(call have,$(CORE)))
FUZZ_SRC    := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN    := $(patsubst tests/fuzz/%.c,build/fuzz/%,$(FUZZ_SRC))

build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_CORE)
	@sh scripts/deps.sh fuzz
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  FUZZ    $@")
	$(Q)$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ $^ $(LIBS_CORE)

# The deflate transform is layer 1: its fuzzer links it beside the core.
build/fuzz/fuzz_pmdconn: src/pmdconn.c

# Each target runs FUZZ_SECONDS on a scratch copy of its seed corpus, so new
# inputs never dirty the tree; a finding is written to build/fuzz/ and fails.
fuzz: $(FUZZ_BIN)
	@for f in $(FUZZ_BIN); do \
	    n=$${f#build/fuzz/fuzz_}; work=build/fuzz/corpus-$$n; mkdir -p $$work; \
	    cp -n tests/fuzz/corpus/$$n/* $$work/ 2>/dev/null || true; \
	    echo "== $$f for $(FUZZ_SECONDS)s"; \
	    $$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	        -artifact_prefix=build/fuzz/$$n- $$work || exit 1; \
	done

install: $(BUILD)/wsechod $(WSBENCH)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man8
	install -m 755 $(BUILD)/wsechod $(DESTDIR)$(PREFIX)/bin/wsechod
	install -m 644 man/wsechod.8 $(DESTDIR)$(PREFIX)/share/man/man8/wsechod.8
	if [ -n "$(WSBENCH)" ]; then \
	    install -d $(DESTDIR)$(PREFIX)/share/man/man1 && \
	    install -m 755 $(WSBENCH) $(DESTDIR)$(PREFIX)/bin/wsbench && \
	    install -m 644 man/wsbench.1 $(DESTDIR)$(PREFIX)/share/man/man1/wsbench.1; \
	fi

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/wsechod $(DESTDIR)$(PREFIX)/bin/wsbench \
	      $(DESTDIR)$(PREFIX)/share/man/man8/wsechod.8 $(DESTDIR)$(PREFIX)/share/man/man1/wsbench.1

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
