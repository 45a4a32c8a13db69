/* The online step of LeNet-5, written out by hand for the CPU (repro/native.py builds and loads it).

   For each pattern of a block, in order: the forward pass, the loss, the gradient of every parameter
   and the update w <- w - eps * dE/dw, exactly what repro/step.py's eager step computes for the
   networks it builds (Sec. II-B; the variants of repro.config). With train = 0 it runs the forward
   pass only (evaluation). Why by hand: at one pattern per update the work is ~1 MFLOP, and the cost
   of PyTorch is in the calls around it; plain loops over whole maps let the compiler vectorise.

   Layout: inner loops run over a whole map (C1 and C3 use im2col patches, X1 and X3), so the
   multiply-adds are long vector loops. Compiled once as float and once as double (REAL). */
#include <math.h>
#include <string.h>

/* glibc's vector tanh (libmvec), declared here so that it is used without -ffast-math (which would
   also let the compiler assume that no value is ever NaN, and training must see a NaN) */
#pragma omp declare simd notinbranch
float tanhf(float);
#pragma omp declare simd notinbranch
double tanh(double);

#ifndef REAL
#define REAL float
#endif
typedef REAL real;
#define TANH(x) (sizeof(real) == 4 ? tanhf(x) : tanh(x))
#define EXP(x) (sizeof(real) == 4 ? expf(x) : exp(x))
#define LOG(x) (sizeof(real) == 4 ? logf(x) : log(x))

enum { TANH_ACT = 0, RELU_ACT = 1 };
enum { POOL_TRAINABLE = 0, POOL_AVERAGE = 1, POOL_MAX = 2 };
enum { HEAD_RBF = 0, HEAD_LINEAR = 1 };
enum { LOSS_MAP = 0, LOSS_ML = 1, LOSS_CE = 2 };
/* parameter slots; a slot the network lacks (plain pooling, the RBF head) is NULL */
enum { C1W, C1B, S2W, S2B, C3W, C3B, S4W, S4B, C5W, C5B, F6W, F6B, OUTW, OUTB, SLOTS };

typedef struct {
    int act, pool, head, loss, pairs;
    real squash_a, squash_s;     /* f(a) = A tanh(S a) (repro.paper) */
    real pool_scale, j;          /* S2/S4: coefficient x pool_scale (the layer's scale); eq. 9's j */
    const int *pair_out, *pair_in; /* C3's connections (Table I, or all 96) */
    const real *prototypes;      /* RBF: 10 x 84 */
} Net;

static void activate(const Net *net, const real *restrict a, real *restrict f, real *restrict d, int n) {
    if (net->act == TANH_ACT)
        for (int i = 0; i < n; i++) {
            real t = TANH(net->squash_s * a[i]);
            f[i] = net->squash_a * t;
            d[i] = net->squash_a * net->squash_s * (1 - t * t);
        }
    else
        for (int i = 0; i < n; i++) {
            f[i] = a[i] <= 0 ? 0 : a[i];  /* NaN stays NaN, as torch.relu */
            d[i] = a[i] > 0 ? 1 : 0;
        }
}

static real dot(const real *restrict a, const real *restrict b, int n) {
    real s = 0;
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

static void axpy(real w, const real *restrict x, real *restrict y, int n) {
    for (int i = 0; i < n; i++) y[i] += w * x[i];
}

/* S2/S4 forward: maps of side 2*side -> side. pre: the 2x2 sum (or, for max, the max) per unit,
   arg: which of the four won (max), f/d: output and its activation slope. */
static void pool_forward(const Net *net, int maps, int side, const real *in, real *pre, int *arg,
                         real *f, real *d, const real *w, const real *b) {
    int n = maps * side * side, in_side = 2 * side;
    for (int m = 0; m < maps; m++)
        for (int r = 0; r < side; r++)
            for (int c = 0; c < side; c++) {
                const real *u = in + (m * in_side + 2 * r) * in_side + 2 * c;
                real v[4] = {u[0], u[1], u[in_side], u[in_side + 1]};
                int q = (m * side + r) * side + c;
                if (net->pool == POOL_MAX) {
                    int k = 0;
                    for (int t = 1; t < 4; t++) if (v[t] > v[k]) k = t;  /* first maximum, as max_pool2d */
                    pre[q] = v[k], arg[q] = k;
                } else
                    pre[q] = v[0] + v[1] + v[2] + v[3];
            }
    if (net->pool == POOL_TRAINABLE) {
        real a[16 * 14 * 14];
        for (int m = 0; m < maps; m++)
            for (int q = 0; q < side * side; q++)
                a[m * side * side + q] = w[m] * net->pool_scale * pre[m * side * side + q] + b[m];
        activate(net, a, f, d, n);
    } else
        for (int q = 0; q < n; q++)
            f[q] = net->pool == POOL_AVERAGE ? net->pool_scale * pre[q] : pre[q], d[q] = 1;
}

/* S2/S4 backward: from dE/df of the output (g_out) to dE/da of the input layer (g_in, which
   includes the input layer's slope d_in); updates the coefficient and bias. */
static void pool_backward(const Net *net, int maps, int side, const real *g_out, const real *d_out,
                          const real *pre, const int *arg, const real *d_in, real *g_in,
                          real *w, real *b, const real *ew, const real *eb) {
    int in_side = 2 * side;
    for (int m = 0; m < maps; m++) {
        real gw = 0, gb = 0;
        real coef = net->pool == POOL_TRAINABLE ? w[m] * net->pool_scale : net->pool == POOL_AVERAGE ? net->pool_scale : 1;
        for (int r = 0; r < side; r++)
            for (int c = 0; c < side; c++) {
                int q = (m * side + r) * side + c;
                real da = g_out[q] * d_out[q];
                gw += da * pre[q], gb += da;
                int o = (m * in_side + 2 * r) * in_side + 2 * c, at[4] = {o, o + 1, o + in_side, o + in_side + 1};
                for (int t = 0; t < 4; t++)
                    g_in[at[t]] = net->pool == POOL_MAX && t != arg[q] ? 0 : da * coef * d_in[at[t]];
            }
        if (net->pool == POOL_TRAINABLE) {
            w[m] -= ew[m] * gw * net->pool_scale;
            b[m] -= eb[m] * gb;
        }
    }
}

/* A full connection (C5, F6, the linear head): da = sign * g_out * slope (slope NULL: 1); g_in gets
   dE/d(input) through the old weights, then w -= eps * da * input and b -= eps * da. */
static void full_backward(int outs, int ins, const real *g_out, const real *slope, real sign, const real *in,
                          real *g_in, real *w, real *b, const real *ew, const real *eb) {
    memset(g_in, 0, ins * sizeof(real));
    for (int o = 0; o < outs; o++) {
        real g = sign * g_out[o] * (slope ? slope[o] : 1), *wo = w + o * ins;
        const real *eo = ew + o * ins;
        for (int q = 0; q < ins; q++) {
            g_in[q] += wo[q] * g;
            wo[q] -= eo[q] * g * in[q];
        }
        b[o] -= eb[o] * g;
    }
}

void lenet5_block(const Net *net, real **p, real **e, const real *xs, const long *labels, int n, int train,
                  real *losses, real *outs) {
    static real X1[25][784], a1[6 * 784], f1[6 * 784], d1[6 * 784];
    static real pre2[6 * 196], f2[6 * 196], d2[6 * 196];
    static real X3[6][25][100], a3[16 * 100], f3[16 * 100], d3[16 * 100];
    static real pre4[400], f4[400], d4[400];
    static real a5[120], f5[120], d5[120], a6[84], f6[84], d6[84];
    static real g6[84], g5[120], g4[400], g3[16 * 100], G3[6][25][100], g2[6 * 196], g1[6 * 784];
    static int arg2[6 * 196], arg4[400];
    for (int s = 0; s < n; s++) {
        const real *x = xs + s * 1024;
        /* C1: 6 maps of 28x28, a 5x5 kernel on the 32x32 input */
        for (int i = 0; i < 5; i++)
            for (int j = 0; j < 5; j++)
                for (int r = 0; r < 28; r++) memcpy(&X1[i * 5 + j][r * 28], x + (r + i) * 32 + j, 28 * sizeof(real));
        for (int o = 0; o < 6; o++) {
            for (int q = 0; q < 784; q++) a1[o * 784 + q] = p[C1B][o];
            for (int t = 0; t < 25; t++) axpy(p[C1W][o * 25 + t], X1[t], a1 + o * 784, 784);
        }
        activate(net, a1, f1, d1, 6 * 784);
        pool_forward(net, 6, 14, f1, pre2, arg2, f2, d2, p[S2W], p[S2B]);
        /* C3: 16 maps of 10x10 from the S2 maps its table lists */
        for (int m = 0; m < 6; m++)
            for (int i = 0; i < 5; i++)
                for (int j = 0; j < 5; j++)
                    for (int r = 0; r < 10; r++)
                        memcpy(&X3[m][i * 5 + j][r * 10], f2 + m * 196 + (r + i) * 14 + j, 10 * sizeof(real));
        for (int o = 0; o < 16; o++)
            for (int q = 0; q < 100; q++) a3[o * 100 + q] = p[C3B][o];
        for (int k = 0; k < net->pairs; k++)
            for (int t = 0; t < 25; t++) axpy(p[C3W][k * 25 + t], X3[net->pair_in[k]][t], a3 + net->pair_out[k] * 100, 100);
        activate(net, a3, f3, d3, 1600);
        pool_forward(net, 16, 5, f3, pre4, arg4, f4, d4, p[S4W], p[S4B]);
        /* C5 (a 5x5 kernel on 5x5 maps: one dot product per unit) and F6 */
        for (int o = 0; o < 120; o++) a5[o] = dot(p[C5W] + o * 400, f4, 400) + p[C5B][o];
        activate(net, a5, f5, d5, 120);
        for (int o = 0; o < 84; o++) a6[o] = dot(p[F6W] + o * 120, f5, 120) + p[F6B][o];
        activate(net, a6, f6, d6, 84);
        /* output penalties y (argmin = class) */
        real y[10], dy[10];
        for (int k = 0; k < 10; k++) {
            if (net->head == HEAD_RBF) {
                real t = 0;
                for (int q = 0; q < 84; q++) {
                    real u = f6[q] - net->prototypes[k * 84 + q];
                    t += u * u;
                }
                y[k] = t;
            } else
                y[k] = -(dot(p[OUTW] + k * 84, f6, 84) + p[OUTB][k]);
            outs[s * 10 + k] = y[k];
        }
        if (!train) continue;
        /* loss and dE/dy: eq. 9 (log-sum-exp over -j and -y), eq. 8, or cross-entropy on -y */
        int label = (int)labels[s];
        if (net->loss == LOSS_ML) {
            losses[s] = y[label];
            for (int k = 0; k < 10; k++) dy[k] = 0;
        } else {
            real top = net->loss == LOSS_MAP ? -net->j : -y[0];
            for (int k = 0; k < 10; k++) top = -y[k] > top ? -y[k] : top;
            real z = net->loss == LOSS_MAP ? EXP(-net->j - top) : 0;
            for (int k = 0; k < 10; k++) z += EXP(-y[k] - top);
            real lse = top + LOG(z);
            losses[s] = y[label] + lse;
            for (int k = 0; k < 10; k++) dy[k] = -EXP(-y[k] - lse);
        }
        dy[label] += 1;
        /* backward, layer by layer; each layer's old weights give the gradient below it before
           the layer is updated */
        if (net->head == HEAD_RBF) {
            memset(g6, 0, sizeof g6);
            for (int k = 0; k < 10; k++)
                for (int q = 0; q < 84; q++) g6[q] += 2 * dy[k] * (f6[q] - net->prototypes[k * 84 + q]);
        } else  /* y = -z: dE/dz = -dE/dy */
            full_backward(10, 84, dy, NULL, -1, f6, g6, p[OUTW], p[OUTB], e[OUTW], e[OUTB]);
        full_backward(84, 120, g6, d6, 1, f5, g5, p[F6W], p[F6B], e[F6W], e[F6B]);
        full_backward(120, 400, g5, d5, 1, f4, g4, p[C5W], p[C5B], e[C5W], e[C5B]);
        pool_backward(net, 16, 5, g4, d4, pre4, arg4, d3, g3, p[S4W], p[S4B], e[S4W], e[S4B]);
        for (int o = 0; o < 16; o++) {
            real gb = 0;
            for (int q = 0; q < 100; q++) gb += g3[o * 100 + q];
            p[C3B][o] -= e[C3B][o] * gb;
        }
        memset(G3, 0, sizeof G3);
        for (int k = 0; k < net->pairs; k++) {
            const real *da = g3 + net->pair_out[k] * 100;
            int m = net->pair_in[k];
            for (int t = 0; t < 25; t++) {
                real *w = p[C3W] + k * 25 + t;
                axpy(*w, da, G3[m][t], 100);
                *w -= e[C3W][k * 25 + t] * dot(da, X3[m][t], 100);
            }
        }
        memset(g2, 0, sizeof g2);  /* col2im: patch gradients back onto the S2 maps */
        for (int m = 0; m < 6; m++)
            for (int i = 0; i < 5; i++)
                for (int j = 0; j < 5; j++)
                    for (int r = 0; r < 10; r++) axpy(1, &G3[m][i * 5 + j][r * 10], g2 + m * 196 + (r + i) * 14 + j, 10);
        pool_backward(net, 6, 14, g2, d2, pre2, arg2, d1, g1, p[S2W], p[S2B], e[S2W], e[S2B]);
        for (int o = 0; o < 6; o++) {
            real gb = 0;
            for (int q = 0; q < 784; q++) gb += g1[o * 784 + q];
            p[C1B][o] -= e[C1B][o] * gb;
            for (int t = 0; t < 25; t++) p[C1W][o * 25 + t] -= e[C1W][o * 25 + t] * dot(g1 + o * 784, X1[t], 784);
        }
    }
}
