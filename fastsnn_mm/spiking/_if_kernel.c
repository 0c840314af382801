/*
 * Fused integrate-and-fire update over T steps (float32, CPU).
 *
 * Why: the neuron update is elementwise and memory-bound. Written as torch
 * ops, every step makes ~10 passes over the activation and allocates masks.
 * Here each element's membrane stays in a register (or a small block on the
 * stack) for all T steps: one read of the input per step, one write of the
 * output. The arithmetic is the reference loop's (functional.if_step), in the
 * same order, so the outputs are bit-identical; -ffp-contract=off keeps the
 * compiler from fusing a*b+c, and -fno-trapping-math (no FP traps are used)
 * lets it turn the selects into vector blends.
 *
 * Beside spike x theta it can write, in the same pass, one code per element
 * in the dtype the next layer reads (1, 2 or 4 bytes: uint8 spike + 1 for
 * oneDNN's int8 convolution, the bfloat16 / float16 bits of +-theta, ...):
 * the three code values for spikes +1, 0 and -1 are given by the caller
 * (spiking/spike_codes.py), so the reader needs no conversion pass.
 *
 * Layout: element k of step t lives at t * n + k in the input (x_step = n;
 * 0 when every step has the same input), the output, the codes and, at k,
 * the state: any dense layout (contiguous, channels-last) works as long as
 * all of them share it, which kernel.py sees to.
 *
 * No numpy or torch headers: tensors arrive as raw data pointers (Python
 * ints) from fastsnn_mm/spiking/kernel.py, which checks dtype, device and
 * layout first.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pthread.h>
#include <stdint.h>
#include <math.h>
#include <string.h>

#define BLOCK 512           /* elements per stack block in folded mode */
#define MIN_PER_THREAD 32768 /* below this a thread costs more than it saves */

typedef struct {
    const float *x;   /* [T, n] or [n] when x_step == 0 */
    float *out;       /* [T, n] */
    float *v;         /* streaming: persistent membrane [n]; NULL: folded */
    void *count;      /* streaming + signed: persistent net count [n] */
    int count_bytes;  /* 1 (int8) or 4 (int32) */
    int64_t n, begin, end, x_step;
    int T, is_signed;
    float theta, neg_thr;
    void *codes;      /* [T, n] codes in the reader's dtype, or NULL */
    int code_bytes;   /* 1, 2 or 4 */
    uint32_t code_pos, code_zero, code_neg; /* spike +1, 0, -1 */
    /* eval BN applied to the input first, x * alpha[c] + beta[c] in one
     * rounding (bn_fma) or two, as ATen rounds it on this CPU; alpha NULL:
     * none. The channel of element k of a step is (k / inner) % channels
     * (inner 1: channels-last) */
    const float *alpha, *beta;
    int64_t channels, inner;
    int bn_fma;       /* 1: fmaf(x, alpha, beta), one rounding */
    const float *res; /* added after BN (a residual), laid out as x; NULL */
} job_t;

static inline int32_t get_count(const void *c, int bytes, int64_t i) {
    return bytes == 1 ? ((const int8_t *)c)[i] : ((const int32_t *)c)[i];
}

static inline void set_count(void *c, int bytes, int64_t i, int32_t val) {
    if (bytes == 1)
        ((int8_t *)c)[i] = (int8_t)val;
    else
        ((int32_t *)c)[i] = val;
}

/* The update of one element; SRC and DST may be the same array (in-place
 * output over the input: each element is read before it is written).
 * theta > 0, so "up"/"down" are theta or 0 and double as the spike flags;
 * the output up - down is theta, -theta or +0, as the reference's
 * (pos - neg) * theta. WRITE stores the reader's code (or nothing): one
 * loop per code width, so each stays a plain vectorisable loop. */
#define SEL(UP, NEG) ((UP) > 0.0f ? cpos : (NEG) ? cneg : czero)
#define IF_UNSIGNED_LOOP(LOAD, DST, WRITE)                                \
    for (int64_t k = 0; k < len; ++k) {                                   \
        float vv = v[k] + (LOAD);                                         \
        float up = vv >= theta ? theta : 0.0f;                            \
        const int neg = 0;                                                \
        v[k] = vv - up;                                                   \
        (DST)[k] = up;                                                    \
        WRITE;                                                            \
    }
#define IF_SIGNED_LOOP(LOAD, DST, WRITE)                                  \
    for (int64_t k = 0; k < len; ++k) {                                   \
        float vv = v[k] + (LOAD);                                         \
        float up = vv >= theta ? theta : 0.0f;                            \
        vv = vv - up;                                                     \
        int neg = (vv < neg_thr) & (cnt[k] > 0.0f);                       \
        float down = neg ? theta : 0.0f;                                  \
        v[k] = vv + down;                                                 \
        cnt[k] += (up > 0.0f ? 1.0f : 0.0f) - (neg ? 1.0f : 0.0f);        \
        (DST)[k] = up - down;                                             \
        WRITE;                                                            \
    }
#define IF_LOOP(LOAD, DST, WRITE)                                         \
    if (j->is_signed) IF_SIGNED_LOOP(LOAD, DST, WRITE)                    \
    else IF_UNSIGNED_LOOP(LOAD, DST, WRITE)
/* LOAD: element k's input, an expression (read before DST[k] is written) */
#define IF_LOOP_CODED(LOAD, DST)                                          \
    if (c8) IF_LOOP(LOAD, DST, c8[k] = (uint8_t)SEL(up, neg))             \
    else if (c16) IF_LOOP(LOAD, DST, c16[k] = (uint16_t)SEL(up, neg))     \
    else if (c32) IF_LOOP(LOAD, DST, c32[k] = SEL(up, neg))               \
    else IF_LOOP(LOAD, DST, (void)neg)
/* the input through BN first (:mod:`deferred_bn`), one rounding or two */
#define IF_LOOP_BN(SRC, DST)                                              \
    if (rt != NULL) {                                                     \
        if (j->bn_fma)                                                    \
            IF_LOOP_CODED(fmaf((SRC)[k], a[k], b[k]) + rt[k], DST)        \
        else IF_LOOP_CODED(((SRC)[k] * a[k] + b[k]) + rt[k], DST)         \
    } else if (j->bn_fma) IF_LOOP_CODED(fmaf((SRC)[k], a[k], b[k]), DST)  \
    else IF_LOOP_CODED((SRC)[k] * a[k] + b[k], DST)

/* One block of elements through all T steps; v/cnt point at its state.
 * Built for AVX-512 (x86-64-v4: with byte masks, the signed update and its
 * uint8 codes ran at twice AVX2's speed in a one-off timing), AVX2 + FMA
 * (x86-64-v3) and plain x86-64; the CPU picks one at load time. No contracted FMA (-ffp-contract=off): only the
 * explicit fmaf of a BN that ATen computes so, so every build gives the
 * same bits. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#if __GNUC__ >= 12
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
__attribute__((target_clones("avx2", "default")))
#endif
#endif
static void run_block(const job_t *j, int64_t i0, int64_t len,
                      float *restrict v, float *restrict cnt,
                      const float *restrict a, const float *restrict b) {
    const float theta = j->theta, neg_thr = j->neg_thr;
    const uint32_t cpos = j->code_pos, czero = j->code_zero,
                   cneg = j->code_neg;
    const int in_place = (const float *)j->out == j->x;
    for (int t = 0; t < j->T; ++t) {
        int64_t at = (int64_t)t * j->n + i0;
        float *ot = j->out + at;
        uint8_t *restrict c8 = NULL;
        uint16_t *restrict c16 = NULL;
        uint32_t *restrict c32 = NULL;
        if (j->codes != NULL) {
            if (j->code_bytes == 1) c8 = (uint8_t *)j->codes + at;
            else if (j->code_bytes == 2) c16 = (uint16_t *)j->codes + at;
            else c32 = (uint32_t *)j->codes + at;
        }
        const float *rt = j->res == NULL ? NULL : j->res + t * j->x_step + i0;
        if (in_place) {
            float *io = ot;
            if (a != NULL) IF_LOOP_BN(io, io)
            else IF_LOOP_CODED(io[k], io)
        } else {
            const float *restrict xt = j->x + t * j->x_step + i0;
            float *restrict o = ot;
            if (a != NULL) IF_LOOP_BN(xt, o)
            else IF_LOOP_CODED(xt[k], o)
        }
    }
}

static void *run_range(void *arg) {
    const job_t *j = (const job_t *)arg;
    /* the count is a small integer (|count| <= T), exact as a float; a float
     * block lets the compiler vectorise the signed update */
    float v[BLOCK], cnt[BLOCK], a[BLOCK], b[BLOCK];
    for (int64_t i0 = j->begin; i0 < j->end; i0 += BLOCK) {
        int64_t len = j->end - i0 < BLOCK ? j->end - i0 : BLOCK;
        if (j->alpha != NULL) { /* each element's BN factors, once a block */
            int64_t c = (i0 / j->inner) % j->channels, p = i0 % j->inner;
            for (int64_t k = 0; k < len;) { /* runs of one channel, or of */
                int64_t run;               /* consecutive ones (inner 1) */
                if (j->inner == 1) {
                    run = j->channels - c < len - k ? j->channels - c
                                                    : len - k;
                    memcpy(a + k, j->alpha + c, sizeof(float) * (size_t)run);
                    memcpy(b + k, j->beta + c, sizeof(float) * (size_t)run);
                    c = 0;
                } else {
                    run = j->inner - p < len - k ? j->inner - p : len - k;
                    for (int64_t r = 0; r < run; ++r) {
                        a[k + r] = j->alpha[c];
                        b[k + r] = j->beta[c];
                    }
                    p = 0;
                    if (++c == j->channels) c = 0;
                }
                k += run;
            }
        }
        if (j->v == NULL) { /* folded: fresh state, theta/2 and count 0 */
            for (int64_t k = 0; k < len; ++k) v[k] = 0.5f * j->theta;
            for (int64_t k = 0; k < len; ++k) cnt[k] = 0.0f;
        } else {
            memcpy(v, j->v + i0, sizeof(float) * (size_t)len);
            if (j->is_signed)
                for (int64_t k = 0; k < len; ++k)
                    cnt[k] = (float)get_count(j->count, j->count_bytes, i0 + k);
        }
        run_block(j, i0, len, v, cnt, j->alpha != NULL ? a : NULL, b);
        if (j->v != NULL) {
            memcpy(j->v + i0, v, sizeof(float) * (size_t)len);
            if (j->is_signed)
                for (int64_t k = 0; k < len; ++k)
                    set_count(j->count, j->count_bytes, i0 + k,
                              (int32_t)cnt[k]);
        }
    }
    return NULL;
}

/* if_run(x, out, v, count, count_bytes, n, x_step, T, theta, neg_thr,
 *        signed, threads, codes, code_bytes, code_pos, code_zero,
 *        code_neg, alpha, beta, channels, inner, bn_fma, res): pointers
 *        are ints (0 = NULL). */
static PyObject *if_run(PyObject *self, PyObject *args) {
    unsigned long long px, pout, pv, pc, pcodes, palpha, pbeta, pres;
    int count_bytes, T, is_signed, threads, code_bytes;
    unsigned int code_pos, code_zero, code_neg;
    long long n, x_step, channels, inner;
    int bn_fma;
    float theta, neg_thr;
    if (!PyArg_ParseTuple(args, "KKKKiLLiffpiKiIIIKKLLpK", &px, &pout, &pv,
                          &pc, &count_bytes, &n, &x_step, &T, &theta,
                          &neg_thr, &is_signed, &threads, &pcodes,
                          &code_bytes, &code_pos, &code_zero, &code_neg,
                          &palpha, &pbeta, &channels, &inner, &bn_fma,
                          &pres))
        return NULL;
    if (pres != 0 && palpha == 0) {
        PyErr_SetString(PyExc_ValueError, "if_run: a residual needs the BN");
        return NULL;
    }
    if (palpha != 0 && (pbeta == 0 || channels < 1 || inner < 1)) {
        PyErr_SetString(PyExc_ValueError,
                        "if_run: BN needs beta, channels >= 1, inner >= 1");
        return NULL;
    }
    if (n < 0 || T < 1 || (count_bytes != 1 && count_bytes != 4)) {
        PyErr_SetString(PyExc_ValueError, "if_run: bad n, T or count_bytes");
        return NULL;
    }
    if (pcodes != 0 && code_bytes != 1 && code_bytes != 2 && code_bytes != 4) {
        PyErr_SetString(PyExc_ValueError, "if_run: codes of 1, 2 or 4 bytes");
        return NULL;
    }
    if (px == pout && x_step != n) {
        PyErr_SetString(PyExc_ValueError,
                         "if_run: in place needs one input per step");
        return NULL;
    }
    if (pv != 0 && is_signed && pc == 0) {
        PyErr_SetString(PyExc_ValueError, "if_run: signed state needs count");
        return NULL;
    }
    job_t base = {(const float *)(uintptr_t)px, (float *)(uintptr_t)pout,
                  (float *)(uintptr_t)pv, (void *)(uintptr_t)pc,
                  count_bytes, n, 0, n, x_step, T, is_signed, theta, neg_thr,
                  (void *)(uintptr_t)pcodes, code_bytes, code_pos, code_zero,
                  code_neg, (const float *)(uintptr_t)palpha,
                  (const float *)(uintptr_t)pbeta, channels, inner, bn_fma,
                  (const float *)(uintptr_t)pres};
    int64_t work = n * (int64_t)T;
    int nt = threads < 1 ? 1 : threads;
    if (nt > 64) nt = 64;
    while (nt > 1 && work / nt < MIN_PER_THREAD) --nt;

    Py_BEGIN_ALLOW_THREADS
    if (nt == 1) {
        run_range(&base);
    } else {
        pthread_t tid[64];
        job_t jobs[64];
        int started[64] = {0};
        /* split on BLOCK boundaries so threads never share a block */
        int64_t blocks = (n + BLOCK - 1) / BLOCK;
        for (int i = 0; i < nt; ++i) {
            jobs[i] = base;
            jobs[i].begin = blocks * i / nt * BLOCK;
            int64_t e = blocks * (i + 1) / nt * BLOCK;
            jobs[i].end = e < n ? e : n;
            if (jobs[i].begin > n) jobs[i].begin = n;
        }
        for (int i = 1; i < nt; ++i)
            started[i] = pthread_create(&tid[i], NULL, run_range, &jobs[i]) == 0;
        run_range(&jobs[0]);
        for (int i = 1; i < nt; ++i) {
            if (started[i])
                pthread_join(tid[i], NULL);
            else
                run_range(&jobs[i]); /* could not start: do it here */
        }
    }
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

/* bn_factors(mean, var, weight, bias, eps, alpha, beta, channels, fma):
 * an eval BN's per-channel factors as ATen forms them, alpha = invstd *
 * weight and beta = bias - mean * alpha (fma: that in one rounding, as a
 * compiler contracts it); weight / bias 0 = none. */
static PyObject *bn_factors(PyObject *self, PyObject *args) {
    unsigned long long pm, pv, pw, pb, pa, pbeta;
    float eps;
    long long channels;
    int fma;
    if (!PyArg_ParseTuple(args, "KKKKfKKLp", &pm, &pv, &pw, &pb, &eps, &pa,
                          &pbeta, &channels, &fma))
        return NULL;
    const float *mean = (const float *)(uintptr_t)pm;
    const float *var = (const float *)(uintptr_t)pv;
    const float *w = (const float *)(uintptr_t)pw;
    const float *b = (const float *)(uintptr_t)pb;
    float *alpha = (float *)(uintptr_t)pa, *beta = (float *)(uintptr_t)pbeta;
    for (long long c = 0; c < channels; ++c) {
        float invstd = 1.0f / sqrtf(var[c] + eps);
        alpha[c] = w ? invstd * w[c] : invstd;
        float bias = b ? b[c] : 0.0f;
        beta[c] = fma ? fmaf(-mean[c], alpha[c], bias)
                      : bias - mean[c] * alpha[c];
    }
    Py_RETURN_NONE;
}

/* bn_apply(x, out, n, alpha, beta, channels, inner, fma): out = the BN of
 * if_run's BN mode over n elements, the same arithmetic. */
static PyObject *bn_apply(PyObject *self, PyObject *args) {
    unsigned long long px, pout, pa, pb;
    long long n, channels, inner;
    int fma;
    if (!PyArg_ParseTuple(args, "KKLKKLLp", &px, &pout, &n, &pa, &pb,
                          &channels, &inner, &fma))
        return NULL;
    if (channels < 1 || inner < 1) {
        PyErr_SetString(PyExc_ValueError, "bn_apply: channels, inner >= 1");
        return NULL;
    }
    const float *x = (const float *)(uintptr_t)px;
    const float *a = (const float *)(uintptr_t)pa;
    const float *b = (const float *)(uintptr_t)pb;
    float *out = (float *)(uintptr_t)pout;
    for (long long i = 0; i < n; ++i) {
        long long c = (i / inner) % channels;
        out[i] = fma ? fmaf(x[i], a[c], b[c]) : x[i] * a[c] + b[c];
    }
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"if_run", if_run, METH_VARARGS,
     "Fused IF update over T steps on raw float32 buffers (+ reader codes)."},
    {"bn_factors", bn_factors, METH_VARARGS,
     "An eval BN's per-channel factors, formed as ATen forms them."},
    {"bn_apply", bn_apply, METH_VARARGS,
     "x * alpha + beta per channel, as if_run's BN mode computes it."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_if_kernel",
                                    "Fused integrate-and-fire kernel.", -1,
                                    methods};

PyMODINIT_FUNC PyInit__if_kernel(void) { return PyModule_Create(&module); }
