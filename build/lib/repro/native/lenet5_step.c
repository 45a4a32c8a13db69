/* LeNet-5 written out by hand for the CPU (repro/native/__init__.py builds and loads it): the online
   step, the mini-batch gradient, the forward pass for evaluation, the Gauss-Newton curvature pass of
   SDLM (Appendix C), Adam's update and the bilinear resampling of the distortions.

   For each pattern of a block, in order, lenet5_block computes the forward pass, the loss, the
   gradient of every parameter and the update w <- w - eps * dE/dw: what repro/step.py's eager step
   computes for the networks of repro.config (Sec. II-B). Why by hand: at one pattern per update the
   work is ~1 MFLOP, and the cost of PyTorch is in the calls around it.

   The same bits on every x86-64 CPU. Every result here is fixed by the C source under IEEE 754
   arithmetic, whatever the compiler or the instruction set chooses:
   - built without -ffast-math, without reassociation and with -ffp-contract=off (no fused
     multiply-add unless written), so the compiler may vectorise but never reorder a sum;
   - sums that should be vectorised are written with LANES explicit partial sums combined in a fixed
     order (dot, sum), so their order is part of the source, not of the vector width;
   - tanh, exp and log are computed here from + - * / and floor (all correctly rounded), not taken
     from libm, whose results differ between versions and between its per-CPU code paths.
   tests/test_native.py builds this file for several instruction sets and checks identical bits.

   Layout: inner loops run over a whole map (C1 and C3 use im2col patches, X1 and X3), so the
   multiply-adds are long vector loops. Built once as float and once as double (REAL_DOUBLE). */
#include "codes.h"
#include "numerics.h"

/* ---- the network ------------------------------------------------------------------------------ */
typedef struct {
    int act, pool, head, loss, pairs;
    real squash_a, squash_s;     /* f(a) = A tanh(S a) (repro.paper) */
    real pool_scale, j;          /* S2/S4: coefficient x pool_scale (the layer's scale); eq. 9's j */
    const int *pair_out, *pair_in; /* C3's connections (repro.layers.c3_pairs) */
    const real *prototypes;      /* RBF: 10 x 84 */
} Net;

/* What the loader checks before it passes a Net: the size of a real, of the struct and where its
   last field lies, and the number of parameter slots. */
void lenet5_layout(long *out) {
    out[0] = sizeof(real), out[1] = sizeof(Net), out[2] = offsetof(Net, prototypes), out[3] = SLOTS;
}

/* The forward pass of one pattern, kept for the backward and curvature passes (one process trains
   one network at a time, so static storage is enough). */
static real X1[25][784], a1[6 * 784], f1[6 * 784], d1[6 * 784];
static real pre2[6 * 196], f2[6 * 196], d2[6 * 196];
static real X3[6][25][100], a3[16 * 100], f3[16 * 100], d3[16 * 100];
static real pre4[400], f4[400], d4[400];
static real a5[120], f5[120], d5[120], a6[84], f6[84], d6[84], y[10];
static int arg2[6 * 196], arg4[400];

static void activate(const Net *net, const real *restrict a, real *restrict f, real *restrict d, int n) {
    if (net->act == ACTIVATION_SCALED_TANH)
        squash(net->squash_a, net->squash_s, a, f, d, n);
    else
        for (int i = 0; i < n; i++) {
            f[i] = a[i] <= 0 ? 0 : a[i];  /* NaN stays NaN, as torch.relu */
            d[i] = a[i] > 0 ? 1 : 0;
        }
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
                if (net->pool == SUBSAMPLING_MAX) {
                    int k = 0;
                    for (int t = 1; t < 4; t++) if (v[t] > v[k]) k = t;  /* first maximum, as max_pool2d */
                    pre[q] = v[k], arg[q] = k;
                } else
                    pre[q] = v[0] + v[1] + v[2] + v[3];
            }
    if (net->pool == SUBSAMPLING_TRAINABLE) {
        real a[16 * 14 * 14];
        for (int m = 0; m < maps; m++)
            for (int q = 0; q < side * side; q++)
                a[m * side * side + q] = w[m] * net->pool_scale * pre[m * side * side + q] + b[m];
        activate(net, a, f, d, n);
    } else
        for (int q = 0; q < n; q++)
            f[q] = net->pool == SUBSAMPLING_AVERAGE ? net->pool_scale * pre[q] : pre[q], d[q] = 1;
}

static void forward(const Net *net, real **p, const real *x) {
    /* C1: 6 maps of 28x28, a 5x5 kernel on the 32x32 input */
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 5; j++)
            for (int r = 0; r < 28; r++) memcpy(&X1[i * 5 + j][r * 28], x + (r + i) * 32 + j, 28 * sizeof(real));
    const real *x1[25], *x3[6][25], *w5[120], *w6[84];
    rows(X1[0], 25, 784, x1);
    for (int o = 0; o < 6; o++) {
        for (int q = 0; q < 784; q++) a1[o * 784 + q] = p[C1B][o];
        axpys(a1 + o * 784, 784, 25, p[C1W] + o * 25, x1);
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
    for (int m = 0; m < 6; m++) rows(X3[m][0], 25, 100, x3[m]);
    for (int k = 0; k < net->pairs; k++) axpys(a3 + net->pair_out[k] * 100, 100, 25, p[C3W] + k * 25, x3[net->pair_in[k]]);
    activate(net, a3, f3, d3, 1600);
    pool_forward(net, 16, 5, f3, pre4, arg4, f4, d4, p[S4W], p[S4B]);
    /* C5 (a 5x5 kernel on 5x5 maps: one dot product per unit) and F6 */
    rows(p[C5W], 120, 400, w5);
    dots(w5, f4, 400, 120, a5);
    for (int o = 0; o < 120; o++) a5[o] += p[C5B][o];
    activate(net, a5, f5, d5, 120);
    rows(p[F6W], 84, 120, w6);
    dots(w6, f5, 120, 84, a6);
    for (int o = 0; o < 84; o++) a6[o] += p[F6B][o];
    activate(net, a6, f6, d6, 84);
    /* output penalties y (argmin = class) */
    for (int k = 0; k < 10; k++) {
        if (net->head == OUTPUT_RBF) {
            real u[84];
            for (int q = 0; q < 84; q++) u[q] = f6[q] - net->prototypes[k * 84 + q];
            y[k] = dot(u, u, 84);
        } else
            y[k] = -(dot(p[OUTW] + k * 84, f6, 84) + p[OUTB][k]);
    }
}

/* The probabilities of eq. 9 (and of softmax for CE), and the loss with dE/dy (numerics.h). */
static real softmax(const Net *net, real *prob) {
    return penalty_softmax(net->loss == LOSS_MAP, net->j, y, prob);
}

static real loss(const Net *net, int label, real *dy) {
    return penalty_loss(net->loss == LOSS_ML, net->loss == LOSS_MAP, net->j, y, label, dy);
}

/* A full connection (C5, F6, the linear head): da = sign * g_out * slope (slope NULL: 1); g_in gets
   dE/d(input) through the current weights w, then dst gets the update of da * input. */
static void full_backward(int outs, int ins, const real *g_out, const real *slope, real sign, const real *in,
                          real *g_in, const real *w, real *dw, real *db, const real *ew, const real *eb) {
    real g[120];
    const real *w_rows[120];
    for (int o = 0; o < outs; o++) g[o] = sign * g_out[o] * (slope ? slope[o] : 1);
    memset(g_in, 0, ins * sizeof(real));
    rows(w, outs, ins, w_rows);
    axpys(g_in, ins, outs, g, w_rows);  /* through the weights before any update, as the loss saw them */
    for (int o = 0; o < outs; o++) {
        for (int q = 0; q < ins; q++) apply(dw + o * ins, ew ? ew + o * ins : NULL, q, g[o] * in[q]);
        apply(db, eb, o, g[o]);
    }
}

/* S2/S4 backward: from dE/df of the output (g_out) to dE/da of the input layer (g_in, which
   includes the input layer's slope d_in); updates the coefficient and bias. */
static void pool_backward(const Net *net, int maps, int side, const real *g_out, const real *d_out,
                          const real *pre, const int *arg, const real *d_in, real *g_in,
                          const real *w, real *dw, real *db, const real *ew, const real *eb) {
    int in_side = 2 * side, n = side * side;
    for (int m = 0; m < maps; m++) {
        real da[196];
        for (int q = 0; q < n; q++) da[q] = g_out[m * n + q] * d_out[m * n + q];
        real coef = net->pool == SUBSAMPLING_TRAINABLE ? w[m] * net->pool_scale
                  : net->pool == SUBSAMPLING_AVERAGE ? net->pool_scale : 1;
        for (int r = 0; r < side; r++)
            for (int c = 0; c < side; c++) {
                int q = r * side + c, o = (m * in_side + 2 * r) * in_side + 2 * c;
                int at[4] = {o, o + 1, o + in_side, o + in_side + 1};
                for (int t = 0; t < 4; t++)
                    g_in[at[t]] = net->pool == SUBSAMPLING_MAX && t != arg[m * n + q] ? 0 : da[q] * coef * d_in[at[t]];
            }
        if (net->pool == SUBSAMPLING_TRAINABLE) {
            apply(dw, ew, m, dot(da, pre + m * n, n) * net->pool_scale);
            apply(db, eb, m, sum(da, n));
        }
    }
}

/* Backward from dE/dy, layer by layer; each layer's current weights give the gradient below it
   before the layer is updated. dst: where the updates go (the parameters, or gradient sums). */
static void backward(const Net *net, real **p, real **dst, real **e, const real *dy) {
    static real g6[84], g5[120], g4[400], g3[16 * 100], G3[6][25][100], g2[6 * 196], g1[6 * 784];
    real *ez[SLOTS] = {0};
    real **ee = e ? e : ez;
    if (net->head == OUTPUT_RBF) {
        memset(g6, 0, sizeof g6);
        for (int k = 0; k < 10; k++)
            for (int q = 0; q < 84; q++) g6[q] += 2 * dy[k] * (f6[q] - net->prototypes[k * 84 + q]);
    } else  /* y = -z: dE/dz = -dE/dy */
        full_backward(10, 84, dy, NULL, -1, f6, g6, p[OUTW], dst[OUTW], dst[OUTB], ee[OUTW], ee[OUTB]);
    full_backward(84, 120, g6, d6, 1, f5, g5, p[F6W], dst[F6W], dst[F6B], ee[F6W], ee[F6B]);
    full_backward(120, 400, g5, d5, 1, f4, g4, p[C5W], dst[C5W], dst[C5B], ee[C5W], ee[C5B]);
    pool_backward(net, 16, 5, g4, d4, pre4, arg4, d3, g3, p[S4W], dst[S4W], dst[S4B], ee[S4W], ee[S4B]);
    for (int o = 0; o < 16; o++) apply(dst[C3B], ee[C3B], o, sum(g3 + o * 100, 100));
    memset(G3, 0, sizeof G3);
    const real *x3[25], *x1[25];
    for (int m = 0; m < 6; m++) {  /* G3[m][t] gets its pairs' terms in the order of k, as pair by pair */
        const real *da[16];
        real w[16];
        int count = 0, ks[16];
        for (int k = 0; k < net->pairs; k++)
            if (net->pair_in[k] == m) da[count] = g3 + net->pair_out[k] * 100, ks[count++] = k;
        for (int t = 0; t < 25; t++) {
            for (int c = 0; c < count; c++) w[c] = p[C3W][ks[c] * 25 + t];
            axpys(G3[m][t], 100, count, w, da);
        }
    }
    for (int k = 0; k < net->pairs; k++) {  /* then the updates, each weight used above before it changes */
        real dw[25];
        rows(X3[net->pair_in[k]][0], 25, 100, x3);
        dots(x3, g3 + net->pair_out[k] * 100, 100, 25, dw);
        for (int t = 0; t < 25; t++) apply(dst[C3W], ee[C3W], k * 25 + t, dw[t]);
    }
    memset(g2, 0, sizeof g2);  /* col2im: patch gradients back onto the S2 maps */
    for (int m = 0; m < 6; m++)
        for (int i = 0; i < 5; i++)
            for (int j = 0; j < 5; j++)
                for (int r = 0; r < 10; r++) axpy(1, &G3[m][i * 5 + j][r * 10], g2 + m * 196 + (r + i) * 14 + j, 10);
    pool_backward(net, 6, 14, g2, d2, pre2, arg2, d1, g1, p[S2W], dst[S2W], dst[S2B], ee[S2W], ee[S2B]);
    rows(X1[0], 25, 784, x1);
    for (int o = 0; o < 6; o++) {
        real dw[25];
        apply(dst[C1B], ee[C1B], o, sum(g1 + o * 784, 784));
        dots(x1, g1 + o * 784, 784, 25, dw);
        for (int t = 0; t < 25; t++) apply(dst[C1W], ee[C1W], o * 25 + t, dw[t]);
    }
}

/* n patterns in order. MODE_FORWARD: penalties only; MODE_EVALUATE: and each pattern's loss;
   MODE_ONLINE: and the update of p by eps e after each pattern (dst = p); MODE_GRADIENT: the
   gradients summed into dst, p unchanged. Returns 0, or 1 + the index of a label outside 0..9. */
int lenet5_block(const Net *net, real **p, real **e, real **dst, const real *xs, const int64_t *labels, int n,
                 int mode, real *losses, real *outs) {
    for (int s = 0; s < n; s++) {
        forward(net, p, xs + s * 1024);
        memcpy(outs + s * 10, y, sizeof y);
        if (mode == MODE_FORWARD) continue;
        if (labels[s] < 0 || labels[s] > 9) return s + 1;
        real dy[10];
        losses[s] = loss(net, (int)labels[s], dy);
        if (mode != MODE_EVALUATE) backward(net, p, dst, mode == MODE_ONLINE ? e : NULL, dy);
    }
    return 0;
}

/* ---- the Gauss-Newton curvature pass (Appendix C) ---------------------------------------------
   Back-propagated like the gradient, with squared weights and squared slopes:
   d2E/da^2 = f'(a)^2 d2E/dx^2, d2E/dx_j^2 = sum_i u_ij^2 d2E/da_i^2, h_kk += x_j^2 d2E/da_i^2 over
   every connection that shares w_k. repro/sdlm.py gives the same pass in PyTorch and its boundary
   terms; tests/test_native.py compares the two. */

/* S2/S4: d2a from d2E/df of the output, h of the coefficient and bias, d2E/df of the input. */
static void pool_curvature(const Net *net, int maps, int side, const real *d2f, const real *d_out, const real *in,
                           const int *arg, real *d2in, const real *w, real *hw, real *hb) {
    int in_side = 2 * side, n = side * side;
    for (int m = 0; m < maps; m++) {
        real d2a[196], in2[196];
        for (int q = 0; q < n; q++) d2a[q] = d2f[m * n + q] * (d_out[m * n + q] * d_out[m * n + q]);
        real coef = net->pool == SUBSAMPLING_TRAINABLE ? w[m] * w[m] * (net->pool_scale * net->pool_scale)
                  : net->pool == SUBSAMPLING_AVERAGE ? net->pool_scale * net->pool_scale : 1;
        for (int r = 0; r < side; r++)
            for (int c = 0; c < side; c++) {
                int q = r * side + c, o = (m * in_side + 2 * r) * in_side + 2 * c;
                int at[4] = {o, o + 1, o + in_side, o + in_side + 1};
                in2[q] = ((in[at[0]] * in[at[0]] + in[at[1]] * in[at[1]]) + in[at[2]] * in[at[2]]) + in[at[3]] * in[at[3]];
                for (int t = 0; t < 4; t++)
                    d2in[at[t]] = net->pool == SUBSAMPLING_MAX && t != arg[m * n + q] ? 0 : coef * d2a[q];
            }
        if (net->pool == SUBSAMPLING_TRAINABLE) {
            hw[m] += dot(d2a, in2, n) * (net->pool_scale * net->pool_scale);
            hb[m] += sum(d2a, n);
        }
    }
}

/* A full connection: h of weights and biases from d2E/da, and d2E/dx of its input. */
static void full_curvature(int outs, int ins, const real *d2a, const real *in, const real *w, real *hw, real *hb,
                           real *d2in) {
    real in2[400], w2[400];
    square(in, in2, ins);
    memset(d2in, 0, ins * sizeof(real));
    for (int o = 0; o < outs; o++) {
        axpy(d2a[o], in2, hw + o * ins, ins);
        hb[o] += d2a[o];
        square(w + o * ins, w2, ins);
        axpy(d2a[o], w2, d2in, ins);
    }
}

/* Sums h_kk over n patterns into h (per slot; the caller divides by n). exact = 0: d2E/dx^2 = 2 at
   F6's outputs (Appendix C, for eq. 8); exact = 1: the diagonal of the loss's own Hessian there.
   The linear head starts from softmax's exact p(1 - p) at the penalties. */
int lenet5_curvature(const Net *net, real **p, const real *xs, const int64_t *labels, int n, int exact, real **h) {
    static real d2f6[84], d2a[6 * 784], d2f5[120], d2f4[400], d2f3[1600], d2f2[6 * 196], d2f1[6 * 784];
    static real sq[6][25][100], G[6][25][100], X1sq[25][784];
    for (int s = 0; s < n; s++) {
        if (labels[s] < 0 || labels[s] > 9) return s + 1;
        forward(net, p, xs + s * 1024);
        if (net->head == OUTPUT_LINEAR) {
            real prob[10], d2y[10];
            softmax(net, prob);
            for (int k = 0; k < 10; k++) d2y[k] = prob[k] * (1 - prob[k]);
            full_curvature(10, 84, d2y, f6, p[OUTW], h[OUTW], h[OUTB], d2f6);
        } else if (!exact || net->loss == LOSS_ML)
            for (int q = 0; q < 84; q++) d2f6[q] = 2;
        else
            exact_boundary(net->loss == LOSS_MAP, net->j, y, f6, net->prototypes, 84, d2f6);
        for (int o = 0; o < 84; o++) d2a[o] = d2f6[o] * (d6[o] * d6[o]);
        full_curvature(84, 120, d2a, f5, p[F6W], h[F6W], h[F6B], d2f5);
        for (int o = 0; o < 120; o++) d2a[o] = d2f5[o] * (d5[o] * d5[o]);
        full_curvature(120, 400, d2a, f4, p[C5W], h[C5W], h[C5B], d2f4);
        pool_curvature(net, 16, 5, d2f4, d4, f3, arg4, d2f3, p[S4W], h[S4W], h[S4B]);
        /* C3 */
        for (int q = 0; q < 1600; q++) d2a[q] = d2f3[q] * (d3[q] * d3[q]);
        for (int o = 0; o < 16; o++) h[C3B][o] += sum(d2a + o * 100, 100);
        for (int m = 0; m < 6; m++)
            for (int t = 0; t < 25; t++) square(X3[m][t], sq[m][t], 100);
        memset(G, 0, sizeof G);
        for (int k = 0; k < net->pairs; k++) {
            const real *da = d2a + net->pair_out[k] * 100;
            int m = net->pair_in[k];
            for (int t = 0; t < 25; t++) {
                real w = p[C3W][k * 25 + t];
                axpy(w * w, da, G[m][t], 100);
                h[C3W][k * 25 + t] += dot(da, sq[m][t], 100);
            }
        }
        memset(d2f2, 0, sizeof d2f2);
        for (int m = 0; m < 6; m++)
            for (int i = 0; i < 5; i++)
                for (int j = 0; j < 5; j++)
                    for (int r = 0; r < 10; r++) axpy(1, &G[m][i * 5 + j][r * 10], d2f2 + m * 196 + (r + i) * 14 + j, 10);
        pool_curvature(net, 6, 14, d2f2, d2, f1, arg2, d2f1, p[S2W], h[S2W], h[S2B]);
        /* C1 */
        for (int q = 0; q < 6 * 784; q++) d2a[q] = d2f1[q] * (d1[q] * d1[q]);
        for (int t = 0; t < 25; t++) square(X1[t], X1sq[t], 784);
        for (int o = 0; o < 6; o++) {
            h[C1B][o] += sum(d2a + o * 784, 784);
            for (int t = 0; t < 25; t++) h[C1W][o * 25 + t] += dot(d2a + o * 784, X1sq[t], 784);
        }
    }
    return 0;
}

/* ---- Adam (the modern recipe's update), on a flat parameter -----------------------------------
   g: the gradient summed over the mini-batch; bc1, bc2: 1 - beta^t, computed by the caller. */
void adam_update(real *w, real *m, real *v, const real *g, long n, real batch, real lr, real beta1, real beta2,
                 real eps, real bc1, real bc2) {
    for (long i = 0; i < n; i++) {
        real gi = g[i] / batch;
        m[i] = beta1 * m[i] + (1 - beta1) * gi;
        v[i] = beta2 * v[i] + (1 - beta2) * (gi * gi);
        w[i] -= lr * (m[i] / bc1) / (SQRT(v[i] / bc2) + eps);
    }
}

/* ---- distortions (Sec. III-C): bilinear resampling of 32x32 images ------------------------------
   theta (n x 2 x 3) maps output to input coordinates normalised to [-1, 1], pixel centres at
   (2i + 1)/32 - 1 (grid_sample with align_corners=False); outside the field is background. */
void distort_images(const float *in, float *out, const double *theta, long n, float background) {
    for (long s = 0; s < n; s++) {
        const float *x = in + s * 1024;
        const double *t = theta + s * 6;
        for (int r = 0; r < 32; r++)
            for (int c = 0; c < 32; c++) {
                double xn = (2 * c + 1) / 32.0 - 1, yn = (2 * r + 1) / 32.0 - 1;
                double gx = (t[0] * xn + t[1] * yn) + t[2], gy = (t[3] * xn + t[4] * yn) + t[5];
                double ix = ((gx + 1) * 32 - 1) / 2, iy = ((gy + 1) * 32 - 1) / 2;
                double x0 = floor(ix), y0 = floor(iy), wx = ix - x0, wy = iy - y0, v = 0;
                for (int dr = 0; dr < 2; dr++)
                    for (int dc = 0; dc < 2; dc++) {
                        int rr = (int)y0 + dr, cc = (int)x0 + dc;
                        if (rr < 0 || rr > 31 || cc < 0 || cc > 31) continue;
                        double weight = (dr ? wy : 1 - wy) * (dc ? wx : 1 - wx);
                        v += weight * ((double)x[rr * 32 + cc] - background);
                    }
                out[s * 1024 + r * 32 + c] = (float)(v + background);
            }
    }
}
