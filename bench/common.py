#!/usr/bin/env python3
"""bench/common.py — helpers shared by the peer benchmarks (bench_*_peers.py).

  * llama.cpp from the llama-cpp-python sdist on PyPI (it vendors
    llama.cpp's sources), built with cmake under bench/work/llama/ (CPU only,
    Release, -DGGML_NATIVE=ON, static, only the targets asked for). Nothing of
    it is committed; `python3 bench/common.py --build-llama` does the one-time
    download + build (≈ 20–40 min on 2 shared cores; the benchmark scripts
    call it too and reuse what is there).
  * a STREAM-like triad (a[i] = b[i] + s·c[i], C compiled on the fly) for the
    machine's copy bandwidth,
  * min / median / max, the machine line, JSON results, README sections.
"""
import glob
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.join(ROOT, "bench", "work")
RESULTS = os.path.join(ROOT, "bench", "results")
LLAMA = os.path.join(WORK, "llama")
LLAMA_SRC = os.path.join(LLAMA, "llama.cpp")
LLAMA_BUILD = os.path.join(LLAMA, "build")
HQ = os.path.join(ROOT, "hyquant")
LLAMA_TARGETS = ["ggml", "llama-bench", "llama-quantize", "llama-perplexity", "test-quantize-perf"]


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def run(cmd, env=None, cwd=None, check=True, timeout=None):
    """run, capture text; raise with the tail of stderr on failure"""
    t0 = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True, errors="replace", env=env, cwd=cwd, timeout=timeout)
    r.seconds = time.monotonic() - t0
    if check and r.returncode != 0:
        raise RuntimeError("%s failed (%d):\n%s" % (" ".join(map(str, cmd)), r.returncode, (r.stderr or r.stdout)[-3000:]))
    return r


def mmm(xs):
    """min / median / max of a list"""
    xs = sorted(xs)
    return {"min": xs[0], "median": statistics.median(xs), "max": xs[-1], "n": len(xs)}


def fmt_mmm(d, f="%.2f"):
    return (f + " / " + f + " / " + f) % (d["min"], d["median"], d["max"])


def machine():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"date": time.strftime("%Y-%m-%d %H:%M"), "cpu": cpu, "nproc": os.cpu_count(),
            "loadavg": os.getloadavg()[0]}


def write_json(name, obj):
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, name)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)
    return path


def readme_section(key, text):
    """replace the text between <!-- key:begin --> and <!-- key:end --> in
    bench/README.md (appended at the end when the markers are absent)"""
    path = os.path.join(ROOT, "bench", "README.md")
    b, e = "<!-- %s:begin -->" % key, "<!-- %s:end -->" % key
    os.makedirs(WORK, exist_ok=True)
    with open(os.path.join(WORK, key + ".md"), "w") as f:  # the section alone, always
        f.write(text.rstrip("\n") + "\n")
    if not os.path.exists(path):
        log("bench/README.md is missing; section left in bench/work/%s.md" % key)
        return
    with open(path) as f:
        s = f.read()
    block = b + "\n" + text.rstrip("\n") + "\n" + e
    if b in s and e in s:
        s = s[:s.index(b)] + block + s[s.index(e) + len(e):]
    else:
        s = s.rstrip("\n") + "\n\n" + block + "\n"
    with open(path, "w") as f:
        f.write(s)


def md_table(head, rows):
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def ensure_hyquant():
    run(["make", "-s", "-j2", "hyquant"], cwd=ROOT)
    return HQ


def hq_lib():
    """an archive of the hyquant library objects as `make` built them (same
    flags as ./hyquant), for small C harnesses linked against them"""
    ensure_hyquant()
    objs = []
    for d in ("core", "formats", "convert", "quant", "runtime", "verify", "cuda"):
        objs += sorted(glob.glob(os.path.join(ROOT, "build", d, "*.o")))
    os.makedirs(WORK, exist_ok=True)
    lib = os.path.join(WORK, "libhyquant.a")
    if os.path.exists(lib):
        os.unlink(lib)
    run(["ar", "rcs", lib] + objs)
    return lib


def ensure_llama(targets=None):
    """download llama.cpp's sources via the llama-cpp-python sdist and build
    `targets` (default: all LLAMA_TARGETS); returns the build dir"""
    targets = targets or LLAMA_TARGETS
    os.makedirs(LLAMA, exist_ok=True)
    if not os.path.isdir(LLAMA_SRC):
        sd = sorted(glob.glob(os.path.join(LLAMA, "llama_cpp_python-*.tar.gz")))
        if not sd:
            log("[llama.cpp] pip download --no-binary :all: --no-deps llama-cpp-python")
            run([sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps", "llama-cpp-python",
                 "-d", LLAMA])
            sd = sorted(glob.glob(os.path.join(LLAMA, "llama_cpp_python-*.tar.gz")))
        run(["tar", "xzf", sd[-1], "-C", LLAMA])
        top = os.path.basename(sd[-1])[:-len(".tar.gz")]
        os.rename(os.path.join(LLAMA, top, "vendor", "llama.cpp"), LLAMA_SRC)
    if not os.path.exists(os.path.join(LLAMA_BUILD, "build.ninja")) and \
            not os.path.exists(os.path.join(LLAMA_BUILD, "Makefile")):
        gen = ["-G", "Ninja"] if run(["sh", "-c", "command -v ninja"], check=False).returncode == 0 else []
        log("[llama.cpp] cmake configure (CPU, Release, GGML_NATIVE=ON, static)")
        run(["cmake", "-S", LLAMA_SRC, "-B", LLAMA_BUILD] + gen +
            ["-DCMAKE_BUILD_TYPE=Release", "-DGGML_NATIVE=ON", "-DBUILD_SHARED_LIBS=OFF", "-DLLAMA_BUILD_TESTS=ON",
             "-DLLAMA_BUILD_TOOLS=ON", "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_SERVER=OFF",
             "-DLLAMA_BUILD_APP=OFF", "-DLLAMA_OPENSSL=OFF", "-DLLAMA_CURL=OFF", "-DGGML_OPENMP=ON",
             "-DGGML_CCACHE=OFF"])
    missing = [t for t in targets if t != "ggml" and not os.path.exists(os.path.join(LLAMA_BUILD, "bin", t))]
    if "ggml" in targets and not os.path.exists(os.path.join(LLAMA_BUILD, "ggml", "src", "libggml-cpu.a")):
        missing.insert(0, "ggml")
    if missing:
        log("[llama.cpp] building %s (one-time; slow on 2 cores)" % " ".join(missing))
        run(["cmake", "--build", LLAMA_BUILD, "-j2", "--target"] + missing)
    return LLAMA_BUILD


def llama_bin(name):
    return os.path.join(LLAMA_BUILD, "bin", name)


def ggml_link_flags():
    b = os.path.join(LLAMA_BUILD, "ggml", "src")
    libs = [os.path.join(b, "libggml.a"), os.path.join(b, "libggml-cpu.a"), os.path.join(b, "libggml-base.a")]
    return ["-I" + os.path.join(LLAMA_SRC, "ggml", "include")], libs + ["-fopenmp", "-lpthread", "-lm", "-ldl"]


TRIAD_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <omp.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
int main(int argc,char**argv){
  long n=atol(argv[1]); int reps=atoi(argv[2]);
  double *a=malloc(n*8),*b=malloc(n*8),*c=malloc(n*8);
  #pragma omp parallel for schedule(static)
  for(long i=0;i<n;i++){a[i]=0;b[i]=1;c[i]=2;}
  for(int r=0;r<reps;r++){
    double t0=now();
    #pragma omp parallel for schedule(static)
    for(long i=0;i<n;i++) a[i]=b[i]+3.0*c[i];
    double t1=now();
    printf("%.6f\n", 3.0*8.0*n/(t1-t0)/1e9);  /* GB/s: read b,c + write a */
  }
  return a[n/2]==7.0?0:1;
}
"""

COPY_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <time.h>
#include <omp.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
/* read-only sweep (xor of 32-bit words, vectorizes): the access pattern of a
   memory-bound decode step, which streams every weight once per token */
int main(int argc,char**argv){
  long n=atol(argv[1]); int reps=atoi(argv[2]);
  uint32_t *a=malloc(n*4), s=0;
  #pragma omp parallel for schedule(static)
  for(long i=0;i<n;i++) a[i]=(uint32_t)i;
  for(int r=0;r<reps;r++){
    double t0=now();
    uint32_t acc=0;
    #pragma omp parallel for schedule(static) reduction(^:acc)
    for(long i=0;i<n;i++) acc^=a[i];
    double t1=now(); s+=acc;
    printf("%.6f\n", 4.0*n/(t1-t0)/1e9);
  }
  return s==12345u;
}
"""


def bandwidth(threads, mib=256, reps=7):
    """STREAM-like triad and a read-only sweep over `mib` MiB arrays (far
    beyond the caches), OMP_NUM_THREADS=threads; returns lists of GB/s"""
    os.makedirs(WORK, exist_ok=True)
    out = {}
    for name, src, elt in (("triad", TRIAD_C, 3 * 8), ("read", COPY_C, 4)):
        c = os.path.join(WORK, "bw_%s.c" % name)
        exe = os.path.join(WORK, "bw_%s" % name)
        with open(c, "w") as f:
            f.write(src)
        run(["gcc", "-O3", "-march=native", "-fopenmp", c, "-o", exe])
        n = mib * 1024 * 1024 // elt * (3 if name == "triad" else 1)
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), OMP_PROC_BIND="false")
        r = run([exe, str(n), str(reps)], env=env)
        out[name] = [float(x) for x in r.stdout.split()][1:]  # first pass touches pages
    return out


if __name__ == "__main__":
    if "--build-llama" in sys.argv:
        print(ensure_llama())
    elif "--bandwidth" in sys.argv:
        for t in (1, 2):
            print(t, {k: fmt_mmm(mmm(v)) for k, v in bandwidth(t).items()})
    else:
        print(__doc__)
