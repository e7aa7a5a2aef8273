"""Names of the evaluation metrics in the per-epoch record (docs/CONTRACTS.md), in one place.

Plain tuples with no torch import: the evaluator writes these keys, the monitor reads them,
and the sweep spec checks search objectives against them.
"""

MIXTURE_KEYS = ("quality/modes", "quality/hq_fraction", "quality/kl")
IMAGE_KEYS = ("quality/fid", "quality/kid", "quality/is", "quality/pixvar")
PAIRWISE_KEYS = ("diversity/mean", "diversity/min", "diversity/std")
# diversity/ratio: the generated mean pairwise distance over the real data's (scale-free; 1 = as
# spread as the data)
DIVERSITY_KEYS = PAIRWISE_KEYS + ("diversity/ratio",)
