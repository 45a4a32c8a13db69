"""Numbers printed in LeCun, Bottou, Bengio & Haffner (1998), in one place.

Tables, tests and the training recipe all read them from here, so a figure is typed once.
Section numbers refer to the paper; every number here was checked against its text.
"""

# Sec. II-B: LeNet-5, layer by layer: (feature maps, map side, trainable parameters, connections).
LAYERS = {
    "C1": dict(maps=6, size=28, params=156, connections=122_304),
    "S2": dict(maps=6, size=14, params=12, connections=5_880),
    "C3": dict(maps=16, size=10, params=1_516, connections=151_600),
    "S4": dict(maps=16, size=5, params=32, connections=2_000),
    "C5": dict(maps=120, size=1, params=48_120, connections=48_120),
    "F6": dict(maps=84, size=1, params=10_164, connections=10_164),
    "OUTPUT": dict(maps=10, size=1, params=0, connections=840),
}
TOTAL_PARAMS = 60_000
TOTAL_CONNECTIONS = 340_908

# Table I: the S2 maps that feed each of the 16 C3 maps.
C3_TABLE = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (0, 4, 5), (0, 1, 5),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (0, 3, 4, 5), (0, 1, 4, 5), (0, 1, 2, 5),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)

# Appendix A: squashing function f(a) = A tanh(S a); initial weights uniform in +-INIT_SCALE / fan-in.
SQUASH_A = 1.7159
SQUASH_S = 2.0 / 3.0
INIT_SCALE = 2.4

# Sec. III-A: MNIST's training set (the test set has 10,000).
TRAIN_SIZE = 60_000

# Sec. II-B: input scaling (background white -> -0.1, ink black -> 1.175), 28x28 padded to 32x32.
INPUT_BACKGROUND = -0.1
INPUT_INK = 1.175
INPUT_SIZE = 32

# Sec. II-B / Fig. 3: RBF prototypes are 7x12 bitmaps of +-1 (hence F6's 84 units).
BITMAP_WIDTH, BITMAP_HEIGHT = 7, 12

# Sec. III-B and Appendix C: online SDLM, 20 passes, eta per pass, mu, 500 patterns for h_kk.
PASSES = 20
ETA_SCHEDULE = (5e-4,) * 2 + (2e-4,) * 3 + (1e-4,) * 3 + (5e-5,) * 4 + (1e-5,) * 8
MU = 0.02
HESSIAN_SAMPLES = 500
FIRST_PASS_EPS_RANGE = (7e-5, 0.016)  # "about", Sec. III-B

# Sec. III-C: the distorted training set, 60,000 originals plus 540,000 random affine distortions
# of them, trained "with the same training procedure" (20 passes of 60,000 patterns).
DISTORTED_COPIES = 9

# Sec. III-C and Fig. 9: test error (fraction) of LeNet-5, the training error after 19 passes,
# and the stated uncertainty of the test figures.
TEST_ERROR = 0.0095
TEST_ERROR_DISTORTED = 0.008
TRAIN_ERROR = 0.0035
ERROR_UNCERTAINTY = 0.001

# Sec. III-C.7: LeNet-1, "about 100,000 multiply/add steps and about 2,600 free parameters"; its
# layers are those of LeCun et al. (1990), which counts, as we recall that paper (not checked against
# its text here: PAPER_NOTES.md, A26), 98,442 connections and 2,578 parameters.
LENET1 = dict(params_about=2_600, connections_about=100_000, params_1990=2_578, connections_1990=98_442)
# Sec. III-C.8: LeNet-4, "about 260,000 connections and ... about 17,000 free parameters" (its stated
# layers cannot have both: PAPER_NOTES.md, A27).
LENET4 = dict(params_about=17_000, connections_about=260_000)
# Sec. III-C.9: boosted LeNet-4 costs "only about 1.75 times" one net: nets 2 and 3 are not run when
# net 1 is highly confident (Fig. 11: 460 thousand against LeNet-4's 260)
BOOSTED_NETS_RUN = 1.75

# Fig. 9: test error (fraction) of every classifier compared in Sec. III-C, by our row names; the
# input version each used (Sec. III-A, repro/versions.py) is in repro/classical/'s METHODS and,
# for the networks, in their configs; the paper's Sec. III-C describes each with its input.
FIG9_ERROR = {
    "linear": 0.120, "linear-deslant": 0.084, "pairwise": 0.076,
    "knn": 0.050, "knn-deslant": 0.024, "pca-quadratic": 0.033, "rbf-network": 0.036,
    "tangent-distance": 0.011, "svm-poly4": 0.011, "rs-svm-poly5": 0.010, "v-svm-poly9-dist": 0.008,
    "mlp-300": 0.047, "mlp-300-dist": 0.036, "mlp-300-deslant": 0.016, "mlp-1000": 0.045, "mlp-1000-dist": 0.038,
    "mlp-300-100": 0.0305, "mlp-300-100-dist": 0.025, "mlp-500-150": 0.0295, "mlp-500-150-dist": 0.0245,
    "lenet1": 0.017, "lenet4": 0.011, "lenet4-local": 0.011, "lenet4-knn": 0.011,
    "lenet5": TEST_ERROR, "lenet5-dist": TEST_ERROR_DISTORTED, "boosted-lenet4-dist": 0.007,
}

# Not the paper: the MNIST page (yann.lecun.com/exdb/mnist, ../shared/paper_facts_comparison.md sec. 8)
# lists "LeNet-5, huge distortions" at 0.85% and gives no ranges (PAPER_NOTES, A11)
MNIST_PAGE_HUGE_DISTORTIONS = 0.0085

# Fig. 10 (Sec. III-D): fraction of the test patterns rejected to reach REJECTION_TARGET error
# (the figure prints percent), by our row names; the rows it shows only. repro/rejection.py has the rule.
REJECTION_TARGET = 0.005
FIG10_REJECTION = {
    "knn-deslant": 0.081, "tangent-distance": 0.019, "svm-poly4": 0.018, "mlp-300-deslant": 0.032,
    "lenet1": 0.037, "lenet4": 0.018, "lenet4-local": 0.014, "lenet4-knn": 0.016, "boosted-lenet4-dist": 0.005,
}

# Figs. 11 and 12 (Sec. III-D): multiply-accumulates to recognise one size-normalised image, and
# variables stored; the figures print thousands, stored here in units. Fig. 12 labels the V-SVM
# "poly 5". The one Linear bar (4 thousand) fits the deslanted net, 400 x 10 (+ 10), not 784 x 10.
FIG11_MACS = {
    "linear": 4_000, "pairwise": 36_000, "knn-deslant": 24_000_000, "pca-quadratic": 39_000,
    "rbf-network": 794_000, "tangent-distance": 20_000_000, "svm-poly4": 14_000_000, "rs-svm-poly5": 650_000,
    "v-svm-poly9-dist": 28_000_000, "mlp-300-deslant": 123_000, "mlp-1000": 795_000, "mlp-300-100": 267_000,
    "mlp-500-150": 469_000, "lenet1": 100_000, "lenet4": 260_000, "lenet4-local": 20_000_000,
    "lenet4-knn": 10_000_000, "lenet5": 401_000, "boosted-lenet4-dist": 460_000,
}
FIG12_MEMORY = {
    "linear": 4_000, "pairwise": 35_000, "knn-deslant": 24_000_000, "pca-quadratic": 40_000,
    "rbf-network": 794_000, "tangent-distance": 25_000_000, "svm-poly4": 14_000_000, "rs-svm-poly5": 650_000,
    "v-svm-poly9-dist": 28_000_000, "mlp-300-deslant": 123_000, "mlp-1000": 795_000, "mlp-300-100": 267_000,
    "mlp-500-150": 469_000, "lenet1": 3_000, "lenet4": 17_000, "lenet4-local": 24_000_000,
    "lenet4-knn": 24_000_000, "lenet5": 60_000, "boosted-lenet4-dist": 51_000,
}
