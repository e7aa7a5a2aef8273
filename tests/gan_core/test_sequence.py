"""The sequence family: it learns a Markov chain's bigrams and valid code, packs like solo runs,
resumes exactly, reads user text and Parquet token lists, refuses what does not apply, and its
metrics and verdict signals mean what docs/CONTRACTS.md says."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from gan_core import ConfigError, Member, RunConfig, Trainer
from gan_core.console import format_epoch
from gan_core.data import DataError
from gan_core.monitor import verdict
from gan_core.seeding import EVAL, make_generator
from gan_core.seq_metrics import SequenceEvaluator, js_divergence
from gan_core.tokens import PAD, markov_chain, ngram_counts, python_code

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SMALL = {
    "family": "sequence",
    "sequence": {"length": 12, "vocab_size": 8, "markov_successors": 2, "g_channels": 32,
                 "d_channels": 32, "n_blocks": 1, "latent_dim": 32},
    "data": {"n_points": 4000},
    "train": {"epochs": 6, "steps_per_epoch": 30, "batch_size": 32, "g_lr": 3e-3, "d_lr": 3e-3},
    "eval": {"every": 0, "n_samples": 500},
}


def _cfg(**sections):
    values = {k: dict(v) if isinstance(v, dict) else v for k, v in SMALL.items()}
    for key, value in sections.items():
        values[key] = {**values.get(key, {}), **value} if isinstance(value, dict) else value
    return RunConfig.from_dict(values)


def _plain(history):
    return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in history]


def _untrained(trainer, seeds):
    return [trainer.family.evaluate(i, make_generator(s, EVAL)) for i, s in enumerate(seeds)]


@pytest.mark.slow
def test_learns_the_markov_chains_bigrams_over_seeds():
    # Measured (3 seeds packed, 180 G steps, ~30 s on one core): bigram JS 0.59-0.68 untrained,
    # 0.10-0.15 trained; 7-8 of the 8 tokens used; bigram precision 0.83-0.86.
    seeds = [0, 1, 2]
    trainer = Trainer(_cfg(), members=[Member(s, s) for s in seeds])
    before = _untrained(trainer, seeds)
    for _ in trainer.epochs():
        pass
    for start, history in zip(before, trainer.history, strict=True):
        end = history[-1]
        assert end["seq/js_2"] < 0.4 * start["seq/js_2"], (start["seq/js_2"], end["seq/js_2"])
        assert end["seq/js_rel"] < 0.4
        assert end["seq/unique_tokens"] >= 7 and end["seq/unique_sequences"] > 0.9
    assert {v.status for v in trainer.verdicts()} == {"stable"}


@pytest.mark.slow
def test_valid_code_fraction_rises_above_its_untrained_level():
    # Measured: 0.6-2.4% of an untrained G's samples parse, 21-61% after 180 G steps.
    seeds = [0, 1, 2]
    trainer = Trainer(_cfg(data={"name": "code"}), members=[Member(s, s) for s in seeds])
    before = _untrained(trainer, seeds)
    for _ in trainer.epochs():
        pass
    for start, history in zip(before, trainer.history, strict=True):
        assert history[-1]["seq/valid_fraction"] > max(0.1, 5 * start["seq/valid_fraction"])


@pytest.mark.parametrize("arch", ["conv", "gru"])
def test_a_pack_equals_solo_runs(arch):
    # Grouped convolutions sum in another order than a run alone: after 4 G steps (20 D steps)
    # measured 2e-5 relative on D's losses, 1.2e-3 on loss/g near 0 and so on
    # stability/dg_ratio (8e-6 absolute), 1e-4 on weights/d_mean near 0 (2e-7 absolute); G's
    # weights 1.4e-5 absolute at lr 1e-3 (Adam's first steps turn rounding of near-zero
    # gradients into steps of about lr).
    cfg = _cfg(train={"epochs": 1, "steps_per_epoch": 4, "g_lr": 1e-3}, eval={"n_samples": 200},
               sequence={"arch": arch, "spectral_norm": arch == "conv", "power_iterations": 3})
    pack = Trainer(cfg, members=[Member(0, 0), Member(1, 3, d_lr=2e-3)])
    solo = Trainer(cfg, members=[Member(1, 3, d_lr=2e-3)])
    for _ in zip(pack.epochs(), solo.epochs(), strict=True):
        pass
    ours, theirs = _plain(pack.history[1])[0], _plain(solo.history[0])[0]
    assert set(ours) == set(theirs)
    for key, value in theirs.items():
        if isinstance(value, float):
            assert ours[key] == pytest.approx(value, rel=2e-3, abs=1e-5), key
    for p, q in zip(pack.G.parameters(), solo.G.parameters(), strict=True):
        torch.testing.assert_close(p[1], q[0], rtol=1e-3, atol=5e-5)
    assert torch.equal(pack.generate(64, member=1), solo.generate(64))


def test_checkpoint_resume_is_exact_with_gumbel_and_its_temperature_schedule(tmp_path):
    cfg = _cfg(train={"epochs": 2, "steps_per_epoch": 3, "n_critic": 2},
               sequence={"output": "gumbel", "temperature": 2.0, "temperature_final": 0.5,
                         "gp_alpha": "batch"},
               eval={"every": 1, "n_samples": 100})
    straight = Trainer(cfg)
    for _ in straight.epochs():
        pass
    first = Trainer(cfg)
    next(iter(first.epochs()))
    first.save_checkpoint(tmp_path / "c.pt")
    resumed = Trainer(cfg)
    resumed.load_checkpoint(tmp_path / "c.pt")
    for _ in resumed.epochs():
        pass
    assert _plain(resumed.history[0]) == _plain(straight.history[0])
    assert torch.equal(resumed.generate(16), straight.generate(16))
    # T falls geometrically from 2 to 0.5 over the 6 G steps: epoch means of steps 0-2, 3-5
    temps = [r["seq/temperature"] for r in straight.history[0]]
    expected = [np.mean([2.0 * 0.25 ** (s / 5) for s in range(a, a + 3)]) for a in (0, 3)]
    assert temps == pytest.approx(expected, rel=1e-5)
    paths = resumed.save_artifacts(tmp_path / "art")
    assert {"samples", "samples_text", "vocab", "dynamics"} <= set(paths)
    lines = paths["samples_text"].read_text().splitlines()
    assert len(lines) == 32 and all(set(line.split()) <= {f"t{i}" for i in range(8)}
                                    for line in lines)


def test_gumbel_output_is_one_hot_forward_with_a_relaxed_gradient():
    trainer = Trainer(_cfg(sequence={"output": "gumbel"}))
    fake = trainer.family._fake(5)
    assert fake.shape == (1, 5, 12, 8)
    assert torch.equal(fake.detach().sum(-1), torch.ones(1, 5, 12))
    assert set(fake.detach().unique().tolist()) == {0.0, 1.0}
    fake[..., 0].sum().backward()
    grads = [p.grad for p in trainer.G.parameters() if p.grad is not None]
    assert grads and any(float(g.abs().sum()) > 0 for g in grads)


def test_family_defaults_and_refusals():
    cfg = RunConfig.from_dict({"family": "sequence"})
    t = cfg.train
    assert (t.loss, t.gp_weight, t.n_critic, t.g_lr, t.g_betas) == (
        "wasserstein", 10.0, 5, 1e-4, (0.5, 0.9))
    assert cfg.data.name == "markov" and cfg.sequence.gp_alpha == "sample"
    cases = [
        ({"family": "sequence", "generator": {"arch": "dcgan"}}, "generator: does not apply"),
        ({"family": "sequence", "conditional": True}, "conditional: family sequence"),
        ({"family": "sequence", "train": {"instance_noise": 0.1}}, "train.instance_noise"),
        ({"sequence": {"length": 8}}, "sequence: only for family sequence"),
        ({"family": "sequence", "sequence": {"kernel_size": 4}}, "kernel_size: must be odd"),
        ({"family": "sequence", "sequence": {"markov_successors": 20}}, "exceeds vocab_size"),
        ({"family": "sequence", "sequence": {"tokenizer": "regex"}}, "sequence.token_pattern"),
        ({"family": "sequence", "sequence": {"token_pattern": "("}}, "not a regex"),
        ({"family": "sequence", "sequence": {"output": "argmax"}}, "sequence.output"),
        ({"family": "sequence", "sequence": {"arch": "gru", "spectral_norm": True}}, "conv only"),
    ]
    for values, message in cases:
        with pytest.raises(ConfigError, match=message):
            RunConfig.from_dict(values)
    with pytest.raises(ConfigError, match="family sequence needs token data, got 'ring'"):
        Trainer(_cfg(data={"name": "ring"}))
    with pytest.raises(ConfigError, match="data.path: data 'text' reads a file"):
        Trainer(_cfg(data={"name": "text"}))
    with pytest.raises(ConfigError, match="exceeds the 4000 sequences"):
        Trainer(_cfg(train={"steps_per_epoch": None, "batch_size": 1000}))


def _text_cfg(path, **sequence):
    return _cfg(data={"name": "text", "path": str(path)},
                sequence={"length": 6, **sequence}, train={"epochs": 1, "steps_per_epoch": 1,
                                                            "batch_size": 2, "n_critic": 1},
                eval={"n_samples": 4})


def test_user_text_by_line_or_window_with_explicit_padding(tmp_path):
    path = tmp_path / "code.txt"
    path.write_text("x = a + b\ny = x\n\nprint ( y )\na very long line of many words here\n")
    trainer = Trainer(_text_cfg(path, tokenizer="whitespace"))
    data = trainer.dataset
    assert data.vocab[0] == PAD and data.pad == 0
    assert [data.decode(row) for row in data.x] == ["x = a + b", "y = x", "print ( y )"]
    assert data.x[1].tolist()[3:] == [0, 0, 0]  # "y = x" padded to 6 with the pad token
    record = next(iter(trainer.epochs()))[0]
    assert 0 <= record["seq/js_2"] <= 1 and "seq/valid_fraction" not in record
    windows = Trainer(_text_cfg(path, tokenizer="regex", token_pattern=r"\w+", split="windows"))
    # 15 word tokens: two windows of 6, the last 3 tokens dropped
    assert windows.dataset.x.shape == (2, 6) and windows.dataset.joiner == " "
    chars = Trainer(_text_cfg(path, length=9)).dataset
    assert chars.decode(chars.x[0]) == "x = a + b" and chars.joiner == ""
    with pytest.raises(DataError, match="every one of its 4 lines is longer than sequence.le"):
        Trainer(_text_cfg(path, length=2, tokenizer="whitespace"))
    with pytest.raises(DataError, match="no such file"):
        Trainer(_text_cfg(tmp_path / "missing.txt"))


def test_user_parquet_token_lists_padded_with_a_new_pad_id(tmp_path):
    path = tmp_path / "tokens.parquet"
    pq.write_table(pa.table({"ids": [[1, 2, 3], [4, 0], [2, 2, 2, 2, 2, 2]]}), path)
    cfg = _text_cfg(path).replace(**{"data.name": "parquet", "data.column": "ids"})
    data = Trainer(cfg).dataset
    assert data.pad == 5 and data.vocab[5] == PAD and data.x[1].tolist() == [4, 0, 5, 5, 5, 5]
    pq.write_table(pa.table({"ids": [[1, 2], list(range(9))]}), tmp_path / "long.parquet")
    with pytest.raises(DataError, match="row 1 of column 'ids' has 9 ids"):
        Trainer(cfg.replace(**{"data.path": str(tmp_path / "long.parquet")}))
    pq.write_table(pa.table({"ids": [1.0, 2.0]}), tmp_path / "flat.parquet")
    with pytest.raises(DataError, match="not a column of integer lists"):
        Trainer(cfg.replace(**{"data.path": str(tmp_path / "flat.parquet")}))
    with pytest.raises(ConfigError, match="data.column: .* has no column 'nope'"):
        Trainer(cfg.replace(**{"data.column": "nope"}))


def test_metrics_on_real_noise_and_collapsed_samples():
    data = markov_chain(3000, 12, 8, 2)
    ev = SequenceEvaluator(data, 500, 4)
    x = data.x.numpy()
    real = ev(x[-500:])
    noise = ev(np.random.default_rng(1).integers(0, 8, (500, 12)))
    one = ev(np.repeat(x[:1], 500, axis=0))
    assert abs(real["seq/js_rel"]) < 0.2 and noise["seq/js_rel"] == pytest.approx(1, abs=0.1)
    assert real["seq/bigram_precision"] == 1.0 and noise["seq/bigram_precision"] < 0.4
    assert real["seq/mode_collapse_score"] < 0.1 and one["seq/mode_collapse_score"] > 0.8
    assert one["seq/unique_sequences"] == 1 / 500 and real["seq/unique_tokens"] == 8
    assert js_divergence(ngram_counts(x, 2, 8), ngram_counts(x, 2, 8)) == 0.0
    assert js_divergence(ngram_counts(x[:, :1], 1, 8), ngram_counts(x[:, :1] + 8, 1, 16)) == 1.0
    code = python_code(200, 12)
    assert SequenceEvaluator(code, 200, 4)(code.x.numpy())["seq/valid_fraction"] == 1.0
    assert code.valid is not None and not code.valid("a=(1") and not code.valid("")


def _history(n, **quality):
    rec = {"loss/d": -0.5, "loss/d_real": -1.0, "loss/d_fake": 0.0, "loss/g": 0.1,
           "d/real": 1.0, "d/fake": 0.0, "d/accuracy": 0.7, "loss/w_dist": 1.0,
           "grad/g_norm": 1.0, "weights/d_abs_mean": 0.05, "weights/g_abs_mean": 0.05}
    healthy = {"seq/js_2": 0.1, "seq/js_rel": 0.15, "seq/unique_sequences": 1.0,
               "seq/token_coverage": 1.0, "seq/mode_collapse_score": 0.0,
               "seq/bigram_precision": 0.9, "quality/nonfinite": 0.0}
    out = []
    for i in range(n):
        r = {**rec, "epoch": float(i + 1), "loss/w_dist": 1.0 / (i + 1)}
        if (i + 1) % 2 == 0:
            r.update({**healthy, **quality})
        out.append(r)
    return out


def test_sequence_verdict_signals():
    cfg = RunConfig().monitor
    assert verdict(_history(12), cfg, "wasserstein").status == "stable"
    repeated = verdict(_history(12, **{"seq/unique_sequences": 0.05}), cfg, "wasserstein")
    assert repeated.status == "mode_collapse" and repeated.evidence["seq/unique_sequences"] == 0.05
    few_tokens = verdict(_history(12, **{"seq/token_coverage": 0.25}), cfg, "wasserstein")
    assert few_tokens.status == "mode_collapse"
    # an untrained G's constant output: its bigrams are not the data's, so it is poor quality
    garbage = {"seq/unique_sequences": 0.02, "seq/bigram_precision": 0.01, "seq/js_rel": 1.4}
    untrained = verdict(_history(12, **garbage), cfg, "wasserstein")
    assert untrained.status == "poor_quality" and untrained.evidence["seq/js_rel"] == 1.4
    invalid = verdict(_history(12, **{"seq/valid_fraction": 0.01}), cfg, "wasserstein")
    assert invalid.status == "poor_quality"


def test_console_quality_row():
    record = {"epoch": 3.0, "seq/js_2": 0.123, "seq/js_rel": 0.2, "seq/unique_tokens": 8.0,
              "seq/unique_sequences": 0.98, "seq/mode_collapse_score": 0.0,
              "seq/valid_fraction": 0.5}
    text = format_epoch(record, 10)
    assert "JS2: 0.123 (rel 0.20)" in text and "Tokens: 8" in text and "Valid: 50.0%" in text


def test_a_sweep_may_search_on_sequence_metrics_of_a_sequence_base_only():
    from sweeps.spec import SpecError, parse_spec

    search = {"space": {"lr": {"type": "float", "low": 1e-4, "high": 1e-2}},
              "objective": {"metric": "seq/js_2", "mode": "min"}, "scheduler": {"type": "none"}}
    spec = parse_spec({"name": "s", "base": {"family": "sequence", "data": {"name": "code"}},
                       "search": search})
    assert spec.search.objective.metric == "seq/js_2"
    with pytest.raises(SpecError, match="seq/js_2 is not computed for data 'ring'"):
        parse_spec({"name": "s", "base": {}, "search": search})
    with pytest.raises(SpecError, match="data.name: unknown data set 'markv'; valid: .*markov"):
        parse_spec({"name": "s", "base": {"family": "sequence", "data": {"name": "markv"}}})
