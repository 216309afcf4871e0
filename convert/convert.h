/* convert/convert.h — checkpoint -> GGUF: variant detection, name mapping
 * (docs/gguf-schema.md), shape validation against config.json, streaming
 * atomic write. Used by `hyquant convert` / `inspect` and by tests. */
#ifndef HQ_CONVERT_H
#define HQ_CONVERT_H
#include "../core/hq.h"
#include "../formats/ckpt.h"

typedef enum { CV_OUT_AUTO = 0, CV_OUT_F32, CV_OUT_F16, CV_OUT_BF16 } cv_outtype;

typedef struct {
    cv_outtype outtype;
    bool quiet;        /* no progress line */
} cv_options;

/* Converts the checkpoint at src (dir or file) to GGUF at dst (atomically). */
hq_status cv_convert(const char *src, const char *dst, const cv_options *opt, char *err);
#endif
