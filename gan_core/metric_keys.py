"""Names of the evaluation metrics in the per-epoch record (docs/CONTRACTS.md), in one place.

Plain tuples with no torch import: the evaluator writes these keys, the monitor reads them,
and the sweep spec checks search objectives against them.
"""

# 2-D mixtures. quality/near_fraction: samples within half the mode spacing of a mode;
# quality/modes_reached: modes with at least half their uniform share of those near samples
# (coverage of the data's support however blurry the samples are).
MIXTURE_KEYS = (
    "quality/modes",
    "quality/hq_fraction",
    "quality/kl",
    "quality/modes_reached",
    "quality/near_fraction",
)
# Images. quality/fid_rel: the FID placed between a real held-out subset (0) and uniform noise
# (1) in the same feature space, so that a classifier-space FID has a scale.
IMAGE_KEYS = (
    "quality/fid",
    "quality/fid_rel",
    "quality/kid",
    "quality/kid_std",
    "quality/is",
    "quality/is_std",
    "quality/pixvar",
)
# Labelled images: classes the classifier sees among the samples (stacked-MNIST protocol).
CLASS_KEYS = ("quality/classes", "quality/class_coverage", "quality/class_kl")
PAIRWISE_KEYS = ("diversity/mean", "diversity/min", "diversity/std")
# diversity/ratio: the generated mean pairwise distance over the real data's (scale-free; 1 = as
# spread as the data)
DIVERSITY_KEYS = PAIRWISE_KEYS + ("diversity/ratio",)
# CycleGAN (family cyclegan): mean |G(a) - T(a)| and |F(b) - T^-1(b)| against the true map
# where it is known, the first over the identity baseline mean |a - T(a)| (1: no better than
# copying the input, 0: exact); cycle/g_change: mean |G(a) - a| over the mean |a - a'| of two
# domain-A images (near 0: G copies its input).
CYCLE_KEYS = (
    "quality/translation_error",
    "quality/translation_error_ba",
    "quality/translation_error_rel",
    "cycle/g_change",
)
# Sequence GANs (family sequence): n-gram Jensen-Shannon divergences to the data (bits), the
# bigram one placed between a real subset (0) and uniform noise (1), distinct tokens and
# sequences, the mode-collapse score, the share of bigrams seen in the data, and for the code
# set the share of samples that parse (definitions: docs/CONTRACTS.md).
SEQUENCE_KEYS = (
    "seq/js_1",
    "seq/js_2",
    "seq/js_3",
    "seq/js_4",
    "seq/js_rel",
    "seq/unique_tokens",
    "seq/token_coverage",
    "seq/unique_sequences",
    "seq/mode_collapse_score",
    "seq/bigram_precision",
    "seq/valid_fraction",
)
# Every evaluation: the share of generated samples with a non-finite value (a diverged G).
NONFINITE_KEY = "quality/nonfinite"
EVAL_KEYS = (
    MIXTURE_KEYS
    + IMAGE_KEYS
    + CLASS_KEYS
    + DIVERSITY_KEYS
    + CYCLE_KEYS
    + SEQUENCE_KEYS
    + (NONFINITE_KEY,)
)

# Which way is better for each quality key (the sweep's `best/<key>` columns, search objectives).
QUALITY_DIRECTIONS = {
    "quality/modes": "max",
    "quality/hq_fraction": "max",
    "quality/kl": "min",
    "quality/modes_reached": "max",
    "quality/near_fraction": "max",
    "quality/fid": "min",
    "quality/fid_rel": "min",
    "quality/kid": "min",
    "quality/is": "max",
    "quality/pixvar": "max",
    "quality/classes": "max",
    "quality/class_coverage": "max",
    "quality/class_kl": "min",
    "quality/translation_error": "min",
    "quality/translation_error_ba": "min",
    "quality/translation_error_rel": "min",
    **{f"seq/js_{n}": "min" for n in (1, 2, 3, 4)},
    "seq/js_rel": "min",
    "seq/unique_tokens": "max",
    "seq/token_coverage": "max",
    "seq/unique_sequences": "max",
    "seq/mode_collapse_score": "min",
    "seq/bigram_precision": "max",
    "seq/valid_fraction": "max",
}
