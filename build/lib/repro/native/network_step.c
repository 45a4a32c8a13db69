/* The other networks of Sec. III-C (LeNet-1, LeNet-4, the multilayer networks; repro/networks.py)
   written out for the CPU: the online step, the mini-batch gradient, the forward pass and the
   Gauss-Newton curvature pass of SDLM, as lenet5_step.c does for LeNet-5, but for any stack of
   the same layer types, described by a Net that repro/native/__init__.py fills in:

     CONV  k x k convolution; output map pair_out[c] sees input map pair_in[c] through kernel c
           (a full convolution lists every pair, a sparse one its table), plus a bias per map;
     POOL  trainable subsampling: output map m adds the 2x2 fields of input map pair_in[m],
           times its coefficient (and pool_scale), plus its bias;
     FULL  a dot product per unit plus a bias on the flattened input;

   each followed by the scaled tanh, then the Euclidean RBF output with fixed prototypes and the
   loss of eq. 9 or eq. 8. The arithmetic, and so the promise of the same bits on every x86-64 CPU,
   is numerics.h's. The per-pattern buffers live in a workspace the caller allocates
   (network_workspace gives its size). */
#include "codes.h"
#include "numerics.h"

typedef struct {
    int kind, in_maps, in_side, out_maps, out_side, k, pairs;
    const int *pair_out, *pair_in;
    real pool_scale;
} Layer;

typedef struct {
    int layers, units, loss_ml;  /* units: the last layer's outputs, the prototypes' length */
    real squash_a, squash_s, j;
    const Layer *layer;
    const real *prototypes;      /* 10 x units */
} Net;

void network_layout(long *out) {
    out[0] = sizeof(real), out[1] = sizeof(Net), out[2] = offsetof(Net, prototypes), out[3] = sizeof(Layer);
}

/* Per layer: its weighted sums a, outputs f, slopes d, dE/df g (then dE/da), and for CONV the im2col
   patches X (in_maps x k^2 x units per map) and their gradient or curvature G; for POOL the 2x2 sums. */
typedef struct { real *a, *f, *d, *g, *X, *G, *pre; } Buffers;

static int units_per_map(const Layer *L) { return L->out_side * L->out_side; }
static int outputs(const Layer *L) { return L->out_maps * units_per_map(L); }
static int inputs(const Layer *L) { return L->in_maps * L->in_side * L->in_side; }
static long patches(const Layer *L) { return L->kind == CONV ? (long)L->in_maps * L->k * L->k * units_per_map(L) : 0; }

/* Carves the workspace into each layer's buffers (work NULL: only counts); returns the reals used,
   the last 10 of which hold the penalties y. */
static long carve(const Net *net, real *work, Buffers *b) {
    long used = 0;
    for (int l = 0; l < net->layers; l++) {
        const Layer *L = &net->layer[l];
        long n = outputs(L), x = patches(L);
        if (work) {
            real *p = work + used;
            b[l] = (Buffers){p, p + n, p + 2 * n, p + 3 * n, p + 5 * n, p + 5 * n + x, p + 4 * n};
        }
        used += 5 * n + 2 * x;
    }
    return used + 10;
}

long network_workspace(const Net *net) { return carve(net, NULL, NULL); }

/* Kernel tap t of input map m, as rows of units: X[m][t] */
static real *patch(const Layer *L, real *X, int m, int t) {
    return X + ((long)m * L->k * L->k + t) * units_per_map(L);
}

/* The patches' terms G (as X's layout) added back onto the input maps `out` (zeroed first): the
   gradient, or the curvature, of the input of a convolution. */
static void col2im(const Layer *L, real *G, real *out) {
    int k = L->k, s = L->out_side;
    memset(out, 0, inputs(L) * sizeof(real));
    for (int m = 0; m < L->in_maps; m++)
        for (int i = 0; i < k; i++)
            for (int j = 0; j < k; j++)
                for (int r = 0; r < s; r++)
                    axpy(1, patch(L, G, m, i * k + j) + r * s, out + (m * L->in_side + r + i) * L->in_side + j, s);
}

static void conv_forward(const Layer *L, const real *in, const real *w, const real *bias, Buffers *b) {
    int k = L->k, s = L->out_side, n = units_per_map(L), kk = k * k;
    for (int m = 0; m < L->in_maps; m++)
        for (int i = 0; i < k; i++)
            for (int j = 0; j < k; j++)
                for (int r = 0; r < s; r++)
                    memcpy(patch(L, b->X, m, i * k + j) + r * s, in + (m * L->in_side + r + i) * L->in_side + j,
                           s * sizeof(real));
    for (int o = 0; o < L->out_maps; o++)
        for (int q = 0; q < n; q++) b->a[o * n + q] = bias[o];
    const real *x[kk];
    for (int c = 0; c < L->pairs; c++) {
        rows(patch(L, b->X, L->pair_in[c], 0), kk, n, x);
        axpys(b->a + L->pair_out[c] * n, n, kk, w + c * kk, x);
    }
}

/* The four inputs of unit q of output map m (offsets into the input maps). */
static void field(const Layer *L, int m, int q, int *at) {
    int s = L->out_side, side = L->in_side, r = q / s, c = q % s;
    int o = (L->pair_in[m] * side + 2 * r) * side + 2 * c;
    at[0] = o, at[1] = o + 1, at[2] = o + side, at[3] = o + side + 1;
}

static void pool_forward(const Layer *L, const real *in, const real *w, const real *bias, Buffers *b) {
    int n = units_per_map(L), at[4];
    for (int m = 0; m < L->out_maps; m++)
        for (int q = 0; q < n; q++) {
            field(L, m, q, at);
            real pre = ((in[at[0]] + in[at[1]]) + in[at[2]]) + in[at[3]];
            b->pre[m * n + q] = pre;
            b->a[m * n + q] = w[m] * L->pool_scale * pre + bias[m];
        }
}

static void full_forward(const Layer *L, const real *in, const real *w, const real *bias, Buffers *b) {
    int outs = L->out_maps, ins = inputs(L);
    const real *wr[outs];
    rows(w, outs, ins, wr);
    dots(wr, in, ins, outs, b->a);
    for (int o = 0; o < outs; o++) b->a[o] += bias[o];
}

/* The forward pass of one pattern x; returns the 10 penalties (argmin = class). */
static const real *forward(const Net *net, real *const *p, const real *x, Buffers *b, real *y) {
    const real *in = x;
    for (int l = 0; l < net->layers; l++) {
        const Layer *L = &net->layer[l];
        if (L->kind == CONV) conv_forward(L, in, p[2 * l], p[2 * l + 1], &b[l]);
        else if (L->kind == POOL) pool_forward(L, in, p[2 * l], p[2 * l + 1], &b[l]);
        else full_forward(L, in, p[2 * l], p[2 * l + 1], &b[l]);
        squash(net->squash_a, net->squash_s, b[l].a, b[l].f, b[l].d, outputs(L));
        in = b[l].f;
    }
    for (int k = 0; k < 10; k++) {
        real u[net->units];
        for (int q = 0; q < net->units; q++) u[q] = in[q] - net->prototypes[k * net->units + q];
        y[k] = dot(u, u, net->units);
    }
    return in;
}

/* Each layer gets da = dE/da in b->g (from dE/df there) and passes dE/df of its input to g_in
   (NULL for the first layer: the image needs none) through its weights before they change. */
static void conv_backward(const Layer *L, const real *w, real *dw, real *db, const real *ew,
                          const real *eb, Buffers *b, real *g_in) {
    int kk = L->k * L->k, n = units_per_map(L);
    real *da = b->g;
    for (int o = 0; o < L->out_maps; o++) apply(db, eb, o, sum(da + o * n, n));
    if (g_in) {
        memset(b->G, 0, patches(L) * sizeof(real));
        for (int m = 0; m < L->in_maps; m++) {  /* G[m][t] gets its pairs' terms in the order of c */
            const real *from[L->pairs];
            real wt[L->pairs];
            int count = 0, cs[L->pairs];
            for (int c = 0; c < L->pairs; c++)
                if (L->pair_in[c] == m) from[count] = da + L->pair_out[c] * n, cs[count++] = c;
            for (int t = 0; t < kk; t++) {
                for (int c = 0; c < count; c++) wt[c] = w[cs[c] * kk + t];
                axpys(patch(L, b->G, m, t), n, count, wt, from);
            }
        }
        col2im(L, b->G, g_in);
    }
    const real *x[kk];
    real g[kk];
    for (int c = 0; c < L->pairs; c++) {  /* then the updates, each weight used above before it changes */
        rows(patch(L, b->X, L->pair_in[c], 0), kk, n, x);
        dots(x, da + L->pair_out[c] * n, n, kk, g);
        for (int t = 0; t < kk; t++) apply(dw, ew, (long)c * kk + t, g[t]);
    }
}

static void pool_backward(const Layer *L, const real *w, real *dw, real *db, const real *ew,
                          const real *eb, Buffers *b, real *g_in) {
    int n = units_per_map(L), at[4];
    real *da = b->g;
    if (g_in) {
        memset(g_in, 0, inputs(L) * sizeof(real));
        for (int m = 0; m < L->out_maps; m++) {
            real coef = w[m] * L->pool_scale;
            for (int q = 0; q < n; q++) {
                field(L, m, q, at);
                for (int t = 0; t < 4; t++) g_in[at[t]] += da[m * n + q] * coef;
            }
        }
    }
    for (int m = 0; m < L->out_maps; m++) {
        apply(dw, ew, m, dot(da + m * n, b->pre + m * n, n) * L->pool_scale);
        apply(db, eb, m, sum(da + m * n, n));
    }
}

static void full_backward(const Layer *L, const real *in, const real *w, real *dw, real *db, const real *ew,
                          const real *eb, Buffers *b, real *g_in) {
    int outs = L->out_maps, ins = inputs(L);
    const real *da = b->g;
    if (g_in) memset(g_in, 0, ins * sizeof(real));
    for (int o = 0; o < outs; o++) {  /* row o carries dE/df below before its own update */
        real *row = dw + (long)o * ins;
        const real *e = ew ? ew + (long)o * ins : NULL;
        if (g_in) axpy(da[o], w + (long)o * ins, g_in, ins);
        if (e) for (int q = 0; q < ins; q++) row[q] -= e[q] * (da[o] * in[q]);
        else for (int q = 0; q < ins; q++) row[q] += da[o] * in[q];
        apply(db, eb, o, da[o]);
    }
}

static void backward(const Net *net, real *const *p, real *const *dst, real *const *e, const real *x, Buffers *b,
                     const real *f_top, const real *dy) {
    int top = net->layers - 1, units = net->units;
    real *g = b[top].g;
    memset(g, 0, units * sizeof(real));
    for (int k = 0; k < 10; k++)  /* through the RBF: dy_k/df = 2 (f - w_k) */
        for (int q = 0; q < units; q++) g[q] += 2 * dy[k] * (f_top[q] - net->prototypes[k * units + q]);
    for (int l = top; l >= 0; l--) {
        const Layer *L = &net->layer[l];
        int n = outputs(L);
        for (int q = 0; q < n; q++) b[l].g[q] *= b[l].d[q];  /* dE/da */
        const real *in = l ? b[l - 1].f : x;
        real *g_in = l ? b[l - 1].g : NULL;
        const real *ew = e ? e[2 * l] : NULL, *eb = e ? e[2 * l + 1] : NULL;
        if (L->kind == CONV) conv_backward(L, p[2 * l], dst[2 * l], dst[2 * l + 1], ew, eb, &b[l], g_in);
        else if (L->kind == POOL) pool_backward(L, p[2 * l], dst[2 * l], dst[2 * l + 1], ew, eb, &b[l], g_in);
        else full_backward(L, in, p[2 * l], dst[2 * l], dst[2 * l + 1], ew, eb, &b[l], g_in);
    }
}

/* n patterns of `side` x `side` in order: as lenet5_block (MODE_FORWARD: penalties; MODE_EVALUATE:
   and losses; MODE_ONLINE: and the update of p by eps e after each pattern, dst = p; MODE_GRADIENT:
   the gradients summed into dst). Returns 0, or 1 + the index of a label outside 0..9. */
int network_block(const Net *net, real **p, real **e, real **dst, const real *xs, const int64_t *labels, int n,
                  int mode, real *losses, real *outs, real *work) {
    Buffers b[net->layers];
    real *y = work + carve(net, work, b) - 10;
    int size = inputs(&net->layer[0]);
    for (int s = 0; s < n; s++) {
        const real *x = xs + (long)s * size;
        const real *f_top = forward(net, p, x, b, y);
        memcpy(outs + s * 10, y, 10 * sizeof(real));
        if (mode == MODE_FORWARD) continue;
        if (labels[s] < 0 || labels[s] > 9) return s + 1;
        real dy[10];
        losses[s] = penalty_loss(net->loss_ml, 1, net->j, y, (int)labels[s], dy);
        if (mode != MODE_EVALUATE) backward(net, p, dst, mode == MODE_ONLINE ? e : NULL, x, b, f_top, dy);
    }
    return 0;
}

/* ---- the Gauss-Newton curvature pass (Appendix C), as lenet5_curvature: d2E/da^2 = f'(a)^2 d2E/df^2,
   d2E/dx_j^2 = sum_i u_ij^2 d2E/da_i^2, h_kk += x_j^2 d2E/da_i^2 over every connection sharing w_k.
   Each layer's d2E/da^2 is in b->g; d2E/df^2 of its input goes to d2in (NULL for the first). */
static void conv_curvature(const Layer *L, const real *w, real *hw, real *hb, Buffers *b,
                           real *d2in, real *scratch) {
    int kk = L->k * L->k, n = units_per_map(L);
    const real *d2a = b->g;
    for (int o = 0; o < L->out_maps; o++) hb[o] += sum(d2a + o * n, n);
    if (d2in) memset(b->G, 0, patches(L) * sizeof(real));
    for (int c = 0; c < L->pairs; c++) {
        const real *da = d2a + L->pair_out[c] * n;
        int m = L->pair_in[c];
        for (int t = 0; t < kk; t++) {
            real wt = w[c * kk + t];
            if (d2in) axpy(wt * wt, da, patch(L, b->G, m, t), n);
            square(patch(L, b->X, m, t), scratch, n);
            hw[c * kk + t] += dot(da, scratch, n);
        }
    }
    if (d2in) {
        col2im(L, b->G, d2in);
    }
}

static void pool_curvature(const Layer *L, const real *in, const real *w, real *hw, real *hb, Buffers *b,
                           real *d2in, real *scratch) {
    int n = units_per_map(L), at[4];
    const real *d2a = b->g;
    if (d2in) memset(d2in, 0, inputs(L) * sizeof(real));
    for (int m = 0; m < L->out_maps; m++) {
        real coef = w[m] * w[m] * (L->pool_scale * L->pool_scale);
        for (int q = 0; q < n; q++) {
            field(L, m, q, at);
            scratch[q] = ((in[at[0]] * in[at[0]] + in[at[1]] * in[at[1]]) + in[at[2]] * in[at[2]]) + in[at[3]] * in[at[3]];
            if (d2in)
                for (int t = 0; t < 4; t++) d2in[at[t]] += coef * d2a[m * n + q];
        }
        hw[m] += dot(d2a + m * n, scratch, n) * (L->pool_scale * L->pool_scale);
        hb[m] += sum(d2a + m * n, n);
    }
}

static void full_curvature(const Layer *L, const real *in, const real *w, real *hw, real *hb, Buffers *b,
                           real *d2in, real *scratch) {
    int outs = L->out_maps, ins = inputs(L);
    const real *d2a = b->g;
    real in2[ins];
    square(in, in2, ins);
    if (d2in) memset(d2in, 0, ins * sizeof(real));
    for (int o = 0; o < outs; o++) {
        axpy(d2a[o], in2, hw + (long)o * ins, ins);
        hb[o] += d2a[o];
        if (d2in) {
            square(w + (long)o * ins, scratch, ins);
            axpy(d2a[o], scratch, d2in, ins);
        }
    }
}

/* Sums h_kk over n patterns into h (the caller divides by n). exact = 0: d2E/df^2 = 2 at the last
   layer's outputs (Appendix C, for eq. 8); exact = 1: the diagonal of eq. 9's own Hessian there. */
int network_curvature(const Net *net, real **p, const real *xs, const int64_t *labels, int n, int exact, real **h,
                      real *work) {
    Buffers b[net->layers];
    real *y = work + carve(net, work, b) - 10;
    int top = net->layers - 1, units = net->units, size = inputs(&net->layer[0]);
    for (int s = 0; s < n; s++) {
        if (labels[s] < 0 || labels[s] > 9) return s + 1;
        const real *x = xs + (long)s * size;
        const real *f = forward(net, p, x, b, y);
        real *d2 = b[top].g;
        if (!exact || net->loss_ml)
            for (int q = 0; q < units; q++) d2[q] = 2;
        else
            exact_boundary(1, net->j, y, f, net->prototypes, units, d2);
        for (int l = top; l >= 0; l--) {
            const Layer *L = &net->layer[l];
            int m = outputs(L);
            for (int q = 0; q < m; q++) b[l].g[q] *= b[l].d[q] * b[l].d[q];
            const real *in = l ? b[l - 1].f : x;
            real *d2in = l ? b[l - 1].g : NULL;
            real scratch[inputs(L)];  /* a row of squares (at least a map's units: inputs >= units per map) */
            if (L->kind == CONV) conv_curvature(L, p[2 * l], h[2 * l], h[2 * l + 1], &b[l], d2in, scratch);
            else if (L->kind == POOL) pool_curvature(L, in, p[2 * l], h[2 * l], h[2 * l + 1], &b[l], d2in, scratch);
            else full_curvature(L, in, p[2 * l], h[2 * l], h[2 * l + 1], &b[l], d2in, scratch);
        }
    }
    return 0;
}
