/* cuda/kernels_emu.c — every kernel file of the CUDA backend compiled as C
 * against the SIMT emulator (cuda/emu.c): the library always carries these
 * (symbols *_emu, table cu_table_emu()), so the backend logic and the
 * kernels are tested on machines without a GPU. nvcc builds the same files
 * separately (cuda/cuda.mk, symbols *_gpu). */
#include "rmsnorm.cu"
#include "rope.cu"
#include "matmul_f.cu"
#include "matmul_q.cu"
#include "elementwise.cu"
#include "embed.cu"
#include "ssd.cu"
#include "attn.cu"
#include "cdmoe.cu"
#include "logsoftmax.cu"
#include "kl.cu"
#include "table.cu"
