/* What the native code shares (lenet5_step.c, network_step.c): real numbers as float or double
   (REAL_DOUBLE), tanh, exp and log from correctly rounded operations, sums whose order is fixed by
   the source (why each is written so: lenet5_step.c's opening comment), and the pieces of the
   network that both files compute alike: the squashing function, the update of a weight, the loss
   at the penalties and its exact curvature. */
#ifndef REPRO_NUMERICS_H
#define REPRO_NUMERICS_H
#include <math.h>
#include <stdint.h>
#include <stddef.h>
#include <string.h>

#ifdef REAL_DOUBLE
typedef double real;
typedef uint64_t bits_t;
enum { MANTISSA = 52, EXP_BIAS = 1023, EXP_MASK = 0x7ff, EXPM1_TERMS = 13, LOG_TERMS = 10 };
static const real LN2_HI = 6.93147180369123816490e-01, LN2_LO = 1.90821492927058770002e-10;
static const real EXP_LOW = -700;   /* below: exp underflows to 0 */
#define FLOOR floor
#define SQRT sqrt
#else
typedef float real;
typedef uint32_t bits_t;
enum { MANTISSA = 23, EXP_BIAS = 127, EXP_MASK = 0xff, EXPM1_TERMS = 8, LOG_TERMS = 5 };
static const real LN2_HI = 0.693145751953125f, LN2_LO = 1.428606820309417232e-06f;
static const real EXP_LOW = -87;
#define FLOOR floorf
#define SQRT sqrtf
#endif
static const real INV_LN2 = 1.44269504088896340736, SQRT2 = 1.41421356237309504880, LN2 = 0.69314718055994530942;
static const real TANH_LOW = -40;    /* e^-40 is below either precision: tanh = +-1 */

/* ---- elementary functions from correctly rounded operations ----------------------------------- */

/* y = k ln2 + r with |r| <= ln2/2 (Cody-Waite: k ln2_hi is exact); returns expm1(r) by its Taylor
   series (relative error below the precision) and 2^k in *scale. y must be in [EXP_LOW, 0] or NaN. */
static inline real expm1_reduced(real y, real *scale) {
    real k = FLOOR(y * INV_LN2 + (real)0.5);
    real r = (y - k * LN2_HI) - k * LN2_LO;
    static const double inv_factorial[] = {1.0, 1.0, 1.0 / 2, 1.0 / 6, 1.0 / 24, 1.0 / 120, 1.0 / 720, 1.0 / 5040,
                                           1.0 / 40320, 1.0 / 362880, 1.0 / 3628800, 1.0 / 39916800,
                                           1.0 / 479001600, 1.0 / 6227020800.0};
    real q = (real)inv_factorial[EXPM1_TERMS];
    for (int i = EXPM1_TERMS - 1; i >= 1; i--) q = q * r + (real)inv_factorial[i];
    bits_t b = (bits_t)((int)k + EXP_BIAS) << MANTISSA;  /* k is NaN only if y is, and then q is NaN too */
    memcpy(scale, &b, sizeof b);
    return q * r;
}

static inline real tanh_(real x) {
    real ax = x < 0 ? -x : x, y = -2 * ax, s;
    y = y < TANH_LOW ? TANH_LOW : y;
    real p = expm1_reduced(y, &s);
    real em1 = s * p + (s - 1);  /* expm1(-2|x|) = 2^k (1 + p) - 1; exactly p when k = 0 */
    real t = -em1 / (2 + em1);   /* tanh |x| */
    return x < 0 ? -t : t;
}

/* The squashing function f(a) = A tanh(S a) (repro.paper's A and S) over n units, and its slope
   f'(a) = A S (1 - tanh^2(S a)). */
static void squash(real A, real S, const real *restrict a, real *restrict f, real *restrict d, int n) {
    for (int i = 0; i < n; i++) {
        real t = tanh_(S * a[i]);
        f[i] = A * t;
        d[i] = A * S * (1 - t * t);
    }
}

static inline real exp_(real y) {  /* y <= 0 */
    real s, p = expm1_reduced(y < EXP_LOW ? EXP_LOW : y, &s);
    return y < EXP_LOW ? 0 : s * p + s;
}

static inline real log_(real z) {  /* z > 0, normal */
    if (z != z) return z;
    bits_t b;
    memcpy(&b, &z, sizeof b);
    int e = (int)((b >> MANTISSA) & EXP_MASK) - EXP_BIAS;
    b = (b & (((bits_t)1 << MANTISSA) - 1)) | ((bits_t)EXP_BIAS << MANTISSA);
    real m;
    memcpy(&m, &b, sizeof m);  /* z = m 2^e, m in [1, 2) */
    if (m > SQRT2) m = m / 2, e += 1;
    real s = (m - 1) / (m + 1), s2 = s * s, q = (real)(1.0 / (2 * LOG_TERMS + 1));
    for (int i = LOG_TERMS - 1; i >= 0; i--) q = q * s2 + (real)(1.0 / (2 * i + 1));
    return (real)e * LN2 + 2 * s * q;  /* log m = 2 atanh(s) */
}

/* ---- vector helpers: fixed summation order ---------------------------------------------------- */
enum { LANES = 8 };

static real combine(const real *s) {
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

static real dot(const real *restrict a, const real *restrict b, int n) {
    real s[LANES] = {0};
    int i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int k = 0; k < LANES; k++) s[k] += a[i + k] * b[i + k];
    for (int k = 0; k < LANES && i < n; i++, k++) s[k] += a[i] * b[i];  /* the last n % LANES */
    return combine(s);
}

static real sum(const real *restrict a, int n) {
    real s[LANES] = {0};
    int i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int k = 0; k < LANES; k++) s[k] += a[i + k];
    for (int k = 0; k < LANES && i < n; i++, k++) s[k] += a[i];
    return combine(s);
}

static void axpy(real w, const real *restrict x, real *restrict y, int n) {
    for (int i = 0; i < n; i++) y[i] += w * x[i];
}

/* One vector holds the LANES partial sums (GCC's vector extension: element-wise IEEE operations,
   lowered to whatever the target has, so the bits do not depend on the vector width). */
#pragma GCC diagnostic ignored "-Wpsabi"  /* vectors passed between static functions only: no ABI crosses */
typedef real vec __attribute__((vector_size(LANES * sizeof(real))));
typedef real vec4 __attribute__((vector_size(4 * sizeof(real))));
static inline vec load(const real *p) { vec v; memcpy(&v, p, sizeof v); return v; }
static inline void store(real *p, const vec *v) { memcpy(p, v, sizeof *v); }

/* out[j] = dot(a[j], b, n) for j < m, four at a time: each keeps its own LANES partial sums in the
   order dot() adds them, so each equals dot()'s bits, but four independent sums keep the adder busy. */
static void dots(const real *const *a, const real *restrict b, int n, int m, real *out) {
    int j = 0;
    for (; j + 4 <= m; j += 4) {
        vec s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0};
        int i = 0;
        for (; i + LANES <= n; i += LANES) {
            vec bv = load(b + i);
            s0 += load(a[j] + i) * bv, s1 += load(a[j + 1] + i) * bv;
            s2 += load(a[j + 2] + i) * bv, s3 += load(a[j + 3] + i) * bv;
        }
        real s[4][LANES];
        store(s[0], &s0), store(s[1], &s1), store(s[2], &s2), store(s[3], &s3);
        for (int c = 0; c < 4; c++) {
            for (int k = 0, t = i; k < LANES && t < n; t++, k++) s[c][k] += a[j + c][t] * b[t];
            out[j + c] = combine(s[c]);
        }
    }
    for (; j < m; j++) out[j] = dot(a[j], b, n);
}

/* y += w[0] x[0]; y += w[1] x[1]; ... (m axpys, in that order), with blocks of y held in registers
   across the m terms: the same operations as m calls of axpy, with less memory traffic, and four
   independent sums per block so that the adder's latency is hidden. */
static void axpys(real *restrict y, int n, int m, const real *restrict w, const real *const *x) {
    int i = 0;
    for (; i + 4 * LANES <= n; i += 4 * LANES) {
        vec acc0 = load(y + i), acc1 = load(y + i + LANES), acc2 = load(y + i + 2 * LANES), acc3 = load(y + i + 3 * LANES);
        for (int j = 0; j < m; j++) {
            const real *xj = x[j] + i;
            acc0 += w[j] * load(xj), acc1 += w[j] * load(xj + LANES);
            acc2 += w[j] * load(xj + 2 * LANES), acc3 += w[j] * load(xj + 3 * LANES);
        }
        store(y + i, &acc0), store(y + i + LANES, &acc1), store(y + i + 2 * LANES, &acc2), store(y + i + 3 * LANES, &acc3);
    }
    for (; i + LANES <= n; i += LANES) {
        vec acc = load(y + i);
        for (int j = 0; j < m; j++) acc += w[j] * load(x[j] + i);
        store(y + i, &acc);
    }
    for (; i + 4 <= n; i += 4) {  /* C3's maps (100 = 3 x 32 + 4) and the linear head's 84 inputs end in 4 */
        vec4 acc;
        memcpy(&acc, y + i, sizeof acc);
        for (int j = 0; j < m; j++) {
            vec4 xj;
            memcpy(&xj, x[j] + i, sizeof xj);
            acc += w[j] * xj;
        }
        memcpy(y + i, &acc, sizeof acc);
    }
    if (i < n)
        for (int j = 0; j < m; j++) axpy(w[j], x[j] + i, y + i, n - i);
}

/* Pointers to m rows of a matrix with the given row length. */
static void rows(const real *base, int m, int len, const real **out) {
    for (int j = 0; j < m; j++) out[j] = base + (long)j * len;
}

static void square(const real *restrict x, real *restrict y, int n) {
    for (int i = 0; i < n; i++) y[i] = x[i] * x[i];
}

/* The online update w -= eps * g (dst = the parameters), or with no eps the gradient added to dst. */
static inline void apply(real *dst, const real *e, long i, real g) {
    if (e) dst[i] -= e[i] * g;
    else dst[i] += g;
}

/* ---- the output's loss (Sec. II-C) on the 10 penalties y ------------------------------------------ */
/* prob[k] = e^-y_k / (e^-j + sum e^-y) (eq. 9, map = 1) or e^-y_k / sum e^-y (softmax, map = 0),
   computed as a log-sum-exp over the terms so that it never overflows. Returns the log-sum-exp. */
static real penalty_softmax(int map, real j, const real *y, real *prob) {
    real top = map ? -j : -y[0];
    for (int k = 0; k < 10; k++) top = -y[k] > top ? -y[k] : top;
    real z = map ? exp_(-j - top) : 0;
    for (int k = 0; k < 10; k++) z += exp_(-y[k] - top);
    real lse = top + log_(z);
    for (int k = 0; k < 10; k++) prob[k] = exp_(-y[k] - lse);
    return lse;
}

/* The loss of the pattern, eq. 8 (ml = 1: the penalty of the correct class) or the log-sum-exp form
   (eq. 9 with map = 1, cross-entropy with map = 0), and dE/dy. */
static real penalty_loss(int ml, int map, real j, const real *y, int label, real *dy) {
    if (ml) {
        for (int k = 0; k < 10; k++) dy[k] = 0;
        dy[label] = 1;
        return y[label];
    }
    real lse = penalty_softmax(map, j, y, dy);
    for (int k = 0; k < 10; k++) dy[k] = -dy[k];
    dy[label] += 1;
    return y[label] + lse;
}

/* The curvature pass's boundary term "exact" for the RBF output: the diagonal of the log-sum-exp
   loss's own Hessian with respect to the RBF's inputs f (units of them; prototypes: 10 x units),
   2 - 2 sum_i p_i + 4 (sum_i p_i u_i^2 - (sum_i p_i u_i)^2) with u_i = f - w_i and p
   penalty_softmax's probabilities at the penalties y. */
static void exact_boundary(int map, real j, const real *y, const real *f, const real *prototypes, int units,
                           real *d2f) {
    real prob[10], total = 0;
    penalty_softmax(map, j, y, prob);
    for (int k = 0; k < 10; k++) total += prob[k];
    for (int q = 0; q < units; q++) {
        real m1 = 0, m2 = 0;
        for (int k = 0; k < 10; k++) {
            real u = f[q] - prototypes[k * units + q];
            m1 += prob[k] * u, m2 += prob[k] * (u * u);
        }
        d2f[q] = (2 - 2 * total) + 4 * (m2 - m1 * m1);
    }
}

#endif
