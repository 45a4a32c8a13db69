"""Numbers printed in LeCun, Bottou, Bengio & Haffner (1998), in one place.

Tables, tests and the training recipe all read them from here, so a figure is typed once.
Section numbers refer to the paper; `../shared/paper_facts.md` was checked against its text.
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

# Fig. 9: test error (fraction) of every classifier compared in Sec. III-C, by our row names; the
# input version each used (Sec. III-A, repro/versions.py) is in repro/classical/'s METHODS and,
# for the networks, in their configs. ../shared/paper_facts_comparison.md lists them with the text.
FIG9_ERROR = {
    "linear": 0.120, "linear-deslant": 0.084, "pairwise": 0.076,
    "knn": 0.050, "knn-deslant": 0.024, "pca-quadratic": 0.033, "rbf-network": 0.036,
    "tangent-distance": 0.011, "svm-poly4": 0.011, "rs-svm-poly5": 0.010, "v-svm-poly9-dist": 0.008,
    "mlp-300": 0.047, "mlp-300-dist": 0.036, "mlp-300-deslant": 0.016, "mlp-1000": 0.045, "mlp-1000-dist": 0.038,
    "mlp-300-100": 0.0305, "mlp-300-100-dist": 0.025, "mlp-500-150": 0.0295, "mlp-500-150-dist": 0.0245,
    "lenet1": 0.017, "lenet4": 0.011, "lenet4-local": 0.011, "lenet4-knn": 0.011,
    "lenet5": TEST_ERROR, "lenet5-dist": TEST_ERROR_DISTORTED, "boosted-lenet4-dist": 0.007,
}
