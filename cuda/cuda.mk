# cuda/cuda.mk — the CUDA backend's nvcc build (included by the root Makefile).
#
# Always: cuda/kernels_emu.c (every cuda/*.cu compiled as C against the SIMT
# emulator) is part of the library like any other .c file, so the kernels and
# the backend are tested everywhere (tests/test_cuda_*.c run in `make test`).
# When nvcc is found (and NO_CUDA is not 1): every cuda/*.cu is also compiled
# by nvcc for sm_80 and sm_90 with all warnings as errors and ptxas resource
# usage printed (spills / local memory are errors), and the objects are linked
# into ./hyquant and the normal test binaries with the static CUDA runtime, so
# the binary still starts on machines without a GPU or driver (cu_gpu_devices
# reports why and `--backend cuda` falls back to the CPU with a note).
# `make test-cuda` builds and runs only the CUDA tests.

CU_SRC  := $(sort $(wildcard cuda/*.cu))
CU_GPU_DIR := $(BUILD)/cuda/gpu
NVCC_FLAGS ?= -O2
# NVCC_ARCH can be narrowed from the environment or the command line (the
# device check builds sm_90 only: NVCC_ARCH="-gencode arch=compute_90,code=sm_90")
NVCC_ARCH  ?= -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90
NVCC_WARN  := -Werror all-warnings -Xptxas -v,-warn-spills,-warn-lmem-usage,-Werror
CU_TESTS   := $(BUILD)/tests/test_cuda_emu $(BUILD)/tests/test_cuda_ops $(BUILD)/tests/test_cuda_model

ifneq ($(HAVE_NVCC),)
  CU_OBJ := $(CU_SRC:cuda/%.cu=$(CU_GPU_DIR)/%.o)
  CUDA_LIBDIR ?= $(firstword $(wildcard $(dir $(HAVE_NVCC))../lib64 $(dir $(HAVE_NVCC))../targets/x86_64-linux/lib))
  CU_LIBS := -L$(CUDA_LIBDIR) -lcudart_static -ldl -lrt -lpthread -lstdc++

  $(CU_GPU_DIR)/%.o: cuda/%.cu cuda/hq_cuda.h cuda/cu_kern.h cuda/cu_ops.h cuda/cu_q8dot.h
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCC_FLAGS) $(NVCC_ARCH) $(NVCC_WARN) -I. -c -o $@ $<

  # hyquant links $^ (so the objects join its prerequisites); the tests link
  # $(LIB_OBJ) $(LDLIBS), so they get the objects through LDLIBS
  $(HQ_BIN): $(CU_OBJ)
  $(HQ_BIN): LDLIBS += $(CU_LIBS)
  $(TEST_BIN) $(BUILD)/bench_gpu: $(CU_OBJ)
  $(TEST_BIN) $(BUILD)/bench_gpu: LDLIBS += $(CU_OBJ) $(CU_LIBS)
endif

# bench/bench_gpu.c, linked like a test (bench/bench_gpu.sh, tools/gpu_check.sh)
$(BUILD)/bench_gpu: bench/bench_gpu.c $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(LIB_OBJ) $(LDLIBS)

test-cuda: $(CU_TESTS)
	@fail=0; for t in $(CU_TESTS); do echo "== $$t"; $$t || fail=1; done; exit $$fail
