# hyquant — one Makefile. `make` builds ./hyquant; `make test` runs the suite
# (normal build, then the same tests under ASan+UBSan, then a smoke run of the
# NO_OMP=1 and NO_CUDA=1 NO_MPI=1 builds); `make demo` runs the main job on the
# bundled model. Knobs: NO_OMP=1, NO_CUDA=1, NO_MPI=1, CC=clang, BUILD=dir and
# HQ_BIN=path (where objects and the binary go; the variants use build/noomp,
# build/nocuda).

CC      ?= gcc
NVCC    ?= nvcc
BUILD   := build
HQ_BIN  := hyquant
PY      ?= python3

# ---- Debian packages the build needs: installed when root, else the exact line.
# Checked only when a goal compiles something (not for clean, help, fixtures).
# DEPS_PREFIX=dir: take cJSON and zlib from Debian packages unpacked there
# (dpkg -x) instead — for machines with no package registry (tools/gpu_check.sh).
DEB_PKGS := libcjson-dev zlib1g-dev pkg-config
NEED_DEPS := $(filter-out clean help fixtures,$(or $(MAKECMDGOALS),all))
ifeq ($(NEED_DEPS),)
  DEB_MISSING :=
else ifneq ($(DEPS_PREFIX),)
  DEPS_LIB := $(abspath $(DEPS_PREFIX))/usr/lib/x86_64-linux-gnu
  DEB_MISSING :=
  CJSON_CFLAGS := -I$(abspath $(DEPS_PREFIX))/usr/include/cjson -I$(abspath $(DEPS_PREFIX))/usr/include
  CJSON_LIBS := -L$(DEPS_LIB) -Wl,-rpath,$(DEPS_LIB) -lcjson
  ZLIB_LIBS := $(DEPS_LIB)/libz.a
  $(info [deps] cJSON and zlib from $(DEPS_PREFIX))
else
  DEB_MISSING := $(shell for p in $(DEB_PKGS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done)
endif
ifneq ($(strip $(DEB_MISSING)),)
  ifeq ($(shell id -u),0)
    $(info [deps] installing missing Debian packages: $(DEB_MISSING))
    DEB_LOG := $(shell (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DEB_MISSING)) >/dev/null 2>&1; echo $$?)
    ifneq ($(DEB_LOG),0)
      $(error [deps] apt-get install $(DEB_MISSING) failed; run it by hand: apt-get install -y $(DEB_MISSING))
    endif
  else
    $(error [deps] missing Debian packages; run: sudo apt-get install -y $(DEB_MISSING))
  endif
endif

# Open MPI (optional, docs/scale-out.md): installed as root when missing; a
# failed install or no root only means a build without MPI
MPI_PKGS := openmpi-bin libopenmpi-dev
ifeq ($(NO_MPI)$(DEPS_PREFIX)$(if $(NEED_DEPS),,skip),)
  MPI_MISSING := $(shell for p in $(MPI_PKGS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done)
  ifneq ($(strip $(MPI_MISSING)),)
    ifeq ($(shell id -u),0)
      $(info [deps] installing Open MPI for scale-out: $(MPI_MISSING))
      MPI_LOG := $(shell (DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(MPI_MISSING) || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(MPI_MISSING))) >/dev/null 2>&1; echo $$?)
      ifneq ($(MPI_LOG),0)
        $(info [deps] could not install $(MPI_MISSING): building without MPI)
      endif
    endif
  endif
endif

ifeq ($(DEPS_PREFIX),)
  CJSON_CFLAGS := $(shell pkg-config --cflags libcjson 2>/dev/null)
  CJSON_LIBS   := $(shell pkg-config --libs libcjson 2>/dev/null || echo -lcjson)
  ZLIB_LIBS    := $(shell pkg-config --libs zlib 2>/dev/null || echo -lz)
endif

# ---- probes, each printing what it found (skipped, like the package check,
# for goals that compile nothing)
ifneq ($(NEED_DEPS),)
ifeq ($(NO_OMP),1)
  OMP_FLAGS :=
  $(info [probe] OpenMP: disabled (NO_OMP=1))
else
  OMP_OK := $(shell echo 'int main(void){return 0;}' | $(CC) -fopenmp -x c - -o /dev/null 2>/dev/null && echo yes)
  ifeq ($(OMP_OK),yes)
    OMP_FLAGS := -fopenmp
    $(info [probe] OpenMP: yes ($(CC) -fopenmp))
  else
    OMP_FLAGS :=
    $(info [probe] OpenMP: not found, building single-threaded)
  endif
endif
ifeq ($(NO_CUDA),1)
  HAVE_NVCC :=
  $(info [probe] nvcc: disabled (NO_CUDA=1))
else
  HAVE_NVCC := $(shell command -v $(NVCC) 2>/dev/null)
  ifneq ($(HAVE_NVCC),)
    $(info [probe] nvcc: $(HAVE_NVCC) — CUDA backend built)
  else
    $(info [probe] nvcc: not found — CUDA backend not built (emulated kernels still tested))
  endif
endif
endif

ifneq ($(NEED_DEPS),)
# MPI (docs/scale-out.md): built in when mpicc is found (Debian: openmpi-bin
# libopenmpi-dev), used only when a launcher (mpirun, srun) starts the process
ifeq ($(NO_MPI),1)
  MPI_CFLAGS :=
  MPI_LIBS :=
  $(info [probe] MPI: disabled (NO_MPI=1))
else
  HAVE_MPICC := $(shell command -v mpicc 2>/dev/null)
  ifneq ($(HAVE_MPICC),)
    MPI_CFLAGS := -DHQ_MPI $(shell mpicc --showme:compile 2>/dev/null)
    MPI_LIBS := $(shell mpicc --showme:link 2>/dev/null)
    $(info [probe] MPI: $(HAVE_MPICC) — mpirun/srun split the work (docs/scale-out.md))
  else
    MPI_CFLAGS :=
    MPI_LIBS :=
    $(info [probe] MPI: mpicc not found — one process (apt-get install openmpi-bin libopenmpi-dev for scale-out))
  endif
endif

endif

WARN    := -Wall -Wextra -Wshadow -Wmissing-prototypes -Werror
CFLAGS  ?= -O2 -g
CFLAGS  += -std=c11 -D_GNU_SOURCE $(WARN) $(OMP_FLAGS) $(CJSON_CFLAGS) $(MPI_CFLAGS) -MMD -MP -I.
LDLIBS  := $(CJSON_LIBS) $(ZLIB_LIBS) $(MPI_LIBS) -lm -lpthread
SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer

# ---- sources: every .c in the module folders is part of the library; the
# subcommands are cli/cmd_*.c (tests that run a command link them too), the
# binary's main is cli/main.c
LIB_DIRS := core formats convert quant runtime verify cuda
LIB_SRC  := $(sort $(foreach d,$(LIB_DIRS),$(wildcard $(d)/*.c)))
CMD_SRC  := $(sort $(wildcard cli/cmd_*.c))
CLI_SRC  := cli/main.c $(CMD_SRC)
TEST_SRC := $(sort $(wildcard tests/test_*.c))

LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
CMD_OBJ  := $(CMD_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/%.o)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)

ASAN_DIR      := $(BUILD)/asan
ASAN_LIB_OBJ  := $(LIB_SRC:%.c=$(ASAN_DIR)/%.o)
ASAN_CMD_OBJ  := $(CMD_SRC:%.c=$(ASAN_DIR)/%.o)
ASAN_TEST_BIN := $(TEST_SRC:tests/%.c=$(ASAN_DIR)/tests/%)

.PHONY: all test test-fast test-asan test-cuda test-variants variants demo fixtures bench clean help
all: $(HQ_BIN)

help:
	@echo "make            build ./hyquant"
	@echo "make test       run the test suite (normal + ASan/UBSan + NO_OMP/NO_CUDA smoke runs)"
	@echo "make test-fast  run the test suite once, without the sanitizer pass and the variants"
	@echo "make test-variants  build NO_OMP=1 and NO_CUDA=1 NO_MPI=1 in build/noomp, build/nocuda and smoke-test them"
	@echo "make demo       convert, evaluate, quantize and verify the bundled model"
	@echo "make fixtures   regenerate reference fixtures with the Python tools (needs tools/requirements.txt)"

$(HQ_BIN): $(CLI_OBJ) $(LIB_OBJ)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/tests/%: tests/%.c $(CMD_OBJ) $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(CMD_OBJ) $(LIB_OBJ) $(LDLIBS)

$(ASAN_DIR)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SAN) -c -o $@ $<

$(ASAN_DIR)/tests/%: tests/%.c $(ASAN_CMD_OBJ) $(ASAN_LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SAN) -o $@ $< $(ASAN_CMD_OBJ) $(ASAN_LIB_OBJ) $(LDLIBS)

$(ASAN_DIR)/hyquant: $(CLI_SRC:%.c=$(ASAN_DIR)/%.o) $(ASAN_LIB_OBJ)
	$(CC) $(CFLAGS) $(SAN) -o $@ $^ $(LDLIBS)

# test-fast: the suite once; test: also under ASan+UBSan (tests may read
# HQ_SANITIZED=1 to shrink slow cases) and tests/smoke.sh on the variants.
# The runner prints "N passed, N failed, N skipped".
test-fast: hyquant $(TEST_BIN)
	@tests/run.sh $(BUILD) ./hyquant

test-asan: $(ASAN_DIR)/hyquant $(ASAN_TEST_BIN)
	@HQ_SANITIZED=1 ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
	    tests/run.sh $(ASAN_DIR) $(ASAN_DIR)/hyquant

test: hyquant $(TEST_BIN) $(ASAN_DIR)/hyquant $(ASAN_TEST_BIN) variants
	@HQ_SANITIZED_DIR=$(ASAN_DIR) tests/run.sh $(BUILD) ./hyquant $(ASAN_DIR) $(ASAN_DIR)/hyquant $(VARIANT_RUN)

test-variants: hyquant variants
	@tests/run.sh $(VARIANT_RUN)

demo: hyquant
	@tools/demo.sh

# Regenerates every committed reference fixture from the Python references
# (torch, transformers, tokenizers, safetensors). Order matters: the model
# fixtures come first, the tokenizer ids and fuzz seeds read them.
FIXTURE_SCRIPTS := make_fixtures make_bos_fixtures make_otce_fixtures make_keep_window_fixtures make_layout_fixtures make_torch_fixtures make_format_fixtures make_convert_fixtures \
                   gen_unicode_tables make_tokenizer_fixtures make_fuzz_corpus
fixtures:
	$(PY) -m pip install -q -r tools/requirements.txt
	@for s in $(FIXTURE_SCRIPTS); do echo "== tools/$$s.py"; $(PY) tools/$$s.py || exit 1; done

clean:
	rm -rf $(BUILD) hyquant

-include cuda/cuda.mk
-include tests/fuzz.mk

# ---- the build knobs, kept working: each variant is a full build in its own
# directory (a sub-make with the knob); tests/smoke.sh runs it end to end and
# compares its outputs with ./hyquant's. NO_OMP=1 links the nvcc objects of
# the main build (OpenMP does not touch them) instead of compiling them again.
VARIANT_noomp  := NO_OMP=1 CU_GPU_DIR=$(BUILD)/cuda/gpu
VARIANT_nocuda := NO_CUDA=1 NO_MPI=1
VARIANT_NAMES  := noomp nocuda
VARIANT_RUN    := $(foreach v,$(VARIANT_NAMES),--smoke $(BUILD)/$(v) $(BUILD)/$(v)/hyquant)
variants: $(CU_OBJ)
	@for v in $(VARIANT_NAMES); do \
	  case $$v in noomp) k="$(VARIANT_noomp)";; nocuda) k="$(VARIANT_nocuda)";; esac; \
	  echo "== variant $$v: $$k"; \
	  $(MAKE) --no-print-directory BUILD=$(BUILD)/$$v HQ_BIN=$(BUILD)/$$v/hyquant $$k $(BUILD)/$$v/hyquant || exit 1; \
	done
-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(TEST_BIN:=.d)
-include $(ASAN_LIB_OBJ:.o=.d) $(ASAN_CMD_OBJ:.o=.d)
