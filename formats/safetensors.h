/* formats/safetensors.h — safetensors reader (huggingface/safetensors format;
 * the entry point fmt_safetensors_parse is declared in ckpt.h).
 *
 * On-disk layout (little-endian):
 *  1. u64 N = header length in bytes; N <= HQ_MAX_ST_HEADER (100,000,000, the
 *     reference MAX_HEADER_SIZE) and 8 + N <= file size.
 *  2. N bytes of UTF-8 JSON: one object mapping tensor name ->
 *     {"dtype": "F32", "shape": [d0, d1, ...], "data_offsets": [BEGIN, END]}
 *     plus an optional "__metadata__": {string: string}. Offsets are relative
 *     to the byte buffer (3.), END exclusive. The reference writer pads the
 *     header with spaces to a multiple of 8.
 *  3. the byte buffer: every tensor's bytes, C order, little-endian.
 *
 * What this reader enforces (the reference tensor.rs rules, plus):
 *  - the header is strict UTF-8 with no raw control bytes other than JSON
 *    whitespace; optional JSON whitespace may precede the `{` and follow the
 *    closing `}` (as the reference accepts since PR #686); nothing else may;
 *  - duplicate keys are rejected (top level and inside an entry);
 *  - `__metadata__` is null or an object of strings;
 *  - dtype is one of the safetensors dtypes; F32 F16 BF16 F64 I64 I32 I16 I8
 *    U8 BOOL are readable, the rest (F8_*, F4, F6_*, U16, U32, U64, C64)
 *    fail with HQ_ERR_UNSUPPORTED naming the tensor;
 *  - shape entries and offsets are JSON numbers that are integers in
 *    [0, 2^53] (cJSON keeps numbers as doubles; 1e3 and 1.0 are accepted as
 *    1000 and 1, where serde would refuse them); rank <= HQ_MAX_DIMS;
 *  - sorted by data_offsets the tensors tile the buffer from 0 with no hole
 *    and no overlap; product(shape) x dtype size (checked) == END - BEGIN;
 *  - the last END + 8 + N == file size (no trailing bytes: anti-polyglot);
 *  - names <= HQ_MAX_NAME bytes; at most HQ_MAX_TENSORS tensors.
 * Tensors are added to the checkpoint in data-offset order, each with its
 * own storage id, row-major strides and a storage pointer into the buffer
 * (not necessarily aligned: readers must use memcpy-style loads).
 */
#ifndef HQ_SAFETENSORS_H
#define HQ_SAFETENSORS_H
#include "ckpt.h"

/* dtype name as written in safetensors -> hq_dtype; -1 unknown name,
 * -2 a valid safetensors dtype that this reader does not support.
 * *bits gets the dtype's bit size when the name is known. */
int fmt_safetensors_dtype(const char *name, uint32_t *bits);
#endif
