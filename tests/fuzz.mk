# tests/fuzz.mk — fuzzing (included by the root Makefile).
#   make fuzz                 every harness under libFuzzer+ASan+UBSan (clang), one after
#                             the other, FUZZ_SECONDS each (default 60); new inputs go to
#                             build/fuzz/corpus/<h>/, crashes to build/fuzz/artifacts/<h>/
#   make fuzz-one H=zip       one harness
#   make fuzz-replay          plain gcc replay binaries over fuzz/corpus + fuzz/regressions
#   make fuzz-minimize H=zip  merge build/fuzz/corpus/<h> into a minimal set in fuzz/corpus/<h>
# A crash found: copy the artifact into fuzz/regressions/<h>/ (make test replays it,
# normal and ASan+UBSan, through tests/test_fuzz_replay.c). See SECURITY.md.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_JOBS    ?= 1
FUZZ_FLAGS   ?=
FUZZ_DIR     := $(BUILD)/fuzz
FUZZ_NAMES   := zip pickle safetensors torch gguf imatrix config ckpt_index tokenizer_load tokenize model
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS  := -O1 -g -std=c11 -D_GNU_SOURCE -I. $(CJSON_CFLAGS) -Wall -Wno-unknown-pragmas $(FUZZ_SAN)
FUZZ_LIB_OBJ := $(LIB_SRC:%.c=$(FUZZ_DIR)/obj/%.o) $(FUZZ_DIR)/obj/fuzz/fuzz_cpu.o
FUZZ_BINS    := $(FUZZ_NAMES:%=$(FUZZ_DIR)/fuzz_%)
REPLAY_BINS  := $(FUZZ_NAMES:%=$(BUILD)/fuzz-replay/fuzz_%)

.PHONY: fuzz fuzz-one fuzz-build fuzz-replay fuzz-minimize

$(FUZZ_DIR)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -include fuzz/fuzz_cpu.h -fsanitize=fuzzer-no-link -MMD -MP -c -o $@ $<

# objects, not an archive: linked as the tests link them
$(FUZZ_DIR)/fuzz_%: fuzz/fuzz_%.c fuzz/fuzz_common.h $(FUZZ_LIB_OBJ)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_LIB_OBJ) $(LDLIBS)

fuzz-build: $(FUZZ_BINS)

# one harness: $(1) = name
define fuzz_run
	@mkdir -p $(FUZZ_DIR)/corpus/$(1) $(FUZZ_DIR)/artifacts/$(1) $(FUZZ_DIR)/tmp/$(1)
	@echo "== fuzz $(1): $(FUZZ_SECONDS) s"
	@HQ_FUZZ_TMP=$(FUZZ_DIR)/tmp/$(1) ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  $(FUZZ_DIR)/fuzz_$(1) -max_total_time=$(FUZZ_SECONDS) $(if $(filter-out 1,$(FUZZ_JOBS)),-jobs=$(FUZZ_JOBS) -workers=$(FUZZ_JOBS)) \
	  -rss_limit_mb=2048 -timeout=20 -print_final_stats=1 \
	  $(if $(wildcard fuzz/dict/$(1).dict),-dict=fuzz/dict/$(1).dict) \
	  -artifact_prefix=$(FUZZ_DIR)/artifacts/$(1)/ $(FUZZ_FLAGS) \
	  $(FUZZ_DIR)/corpus/$(1) fuzz/corpus/$(1) $(wildcard fuzz/regressions/$(1)) \
	  2>&1 | tee $(FUZZ_DIR)/$(1).log | grep -E '^(#[0-9]+ +DONE|==[0-9]+==ERROR|SUMMARY|stat::|Done|fuzz contract)' ; \
	  rc=$${PIPESTATUS[0]}; rm -rf $(FUZZ_DIR)/tmp/$(1); test $$rc -eq 0 || { echo "fuzz $(1): FAILED, see $(FUZZ_DIR)/$(1).log and $(FUZZ_DIR)/artifacts/$(1)/"; exit 1; }
endef

# every harness in turn (one fuzzer at a time: the machine is shared); a
# failing harness does not stop the others, the target fails at the end
fuzz: $(FUZZ_BINS)
	@fail=""; for h in $(FUZZ_NAMES); do \
	  $(MAKE) --no-print-directory fuzz-one H=$$h FUZZ_SECONDS=$(FUZZ_SECONDS) || fail="$$fail $$h"; done; \
	  if [ -n "$$fail" ]; then echo "make fuzz: failures in:$$fail"; exit 1; fi; echo "make fuzz: all harnesses clean"

fuzz-one: SHELL := /bin/bash
fuzz-one: $(FUZZ_DIR)/fuzz_$(H)
	$(call fuzz_run,$(H))

fuzz-minimize: $(FUZZ_DIR)/fuzz_$(H)
	@mkdir -p $(FUZZ_DIR)/min/$(H)
	$(FUZZ_DIR)/fuzz_$(H) -merge=1 $(FUZZ_DIR)/min/$(H) fuzz/corpus/$(H) $(FUZZ_DIR)/corpus/$(H)
	@echo "minimized set in $(FUZZ_DIR)/min/$(H) (review, then copy into fuzz/corpus/$(H))"

$(BUILD)/fuzz-replay/fuzz_%: fuzz/fuzz_%.c fuzz/fuzz_common.h fuzz/replay_main.c $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< fuzz/replay_main.c $(LIB_OBJ) $(LDLIBS)

fuzz-replay: $(REPLAY_BINS)
	@for h in $(FUZZ_NAMES); do printf '%-15s ' $$h; $(BUILD)/fuzz-replay/fuzz_$$h fuzz/corpus/$$h fuzz/regressions/$$h || exit 1; done

-include $(FUZZ_LIB_OBJ:.o=.d)
