"""The count-based tests against independent computations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import fisher_exact

from analysis.stats import cochran_armitage, fisher_greater, holm


@pytest.mark.parametrize(
    "table", [(2, 0, 0, 18), (1, 1, 0, 18), (9, 0, 0, 18), (3, 4, 5, 6), (0, 3, 2, 2)]
)
def test_fisher_greater_matches_scipy(table):
    a, b, c, d = table
    expected = fisher_exact([[a, b], [c, d]], alternative="greater").pvalue
    assert fisher_greater([a], [b], [c], [d])[0] == pytest.approx(expected)


def test_fisher_with_an_empty_group_has_no_evidence():
    assert list(fisher_greater([0, 2], [0, 1], [3, 0], [4, 0])) == [1.0, 1.0]


def test_one_failure_against_m_successes_is_one_over_m_plus_one():
    m = np.arange(1, 20)
    assert np.allclose(fisher_greater(np.ones_like(m), 0 * m, 0 * m, m), 1 / (m + 1))


def test_cochran_armitage_single_stratum_equals_n_minus_one_r_squared():
    rng = np.random.default_rng(3)
    scores = np.log2(np.repeat([32, 64, 128, 256, 512], 20))
    y = (rng.random(len(scores)) < 0.1 + 0.15 * (scores - 5)).astype(float)
    counts = (
        pd.DataFrame({"score": scores, "k": y})
        .groupby("score")["k"]
        .agg(n="size", k="sum")
        .reset_index()
        .assign(stratum=0)
    )
    test = cochran_armitage(counts)
    r = np.corrcoef(scores, y)[0, 1]
    assert test.z**2 == pytest.approx((len(y) - 1) * r**2)
    assert test.z > 0 and test.p_increasing < 0.05


def test_cochran_armitage_stratified_is_not_fooled_by_a_confounder():
    # Within each LR, failure does not depend on batch; but the bad LR was only run at large
    # batches, so pooled data shows a spurious trend. Stratifying removes it.
    rows = []
    for stratum, rate, batches in ((0, 0.1, (32, 64, 128, 256)), (1, 0.8, (256, 512, 1024))):
        for b in batches:
            rows.append({"stratum": stratum, "score": np.log2(b), "n": 20, "k": int(rate * 20)})
    counts = pd.DataFrame(rows)
    assert cochran_armitage(counts.assign(stratum=0)).p_increasing < 0.001
    stratified = cochran_armitage(counts)
    assert stratified.z == pytest.approx(0.0, abs=1e-9)


def test_cochran_armitage_without_information_is_untestable():
    counts = pd.DataFrame({"stratum": [0, 0], "score": [5.0, 6.0], "n": [4, 4], "k": [0, 0]})
    assert not cochran_armitage(counts).testable


def test_holm_adjustment():
    assert list(holm([0.01, 0.04, 0.03])) == pytest.approx([0.03, 0.06, 0.06])
