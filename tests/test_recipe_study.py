"""experiments/recipe_study.py: the pre-registered rule on made-up validation errors, and its settings."""
import json

import pytest

import recipe_study as study
import runner
from repro import get_config, paper


def errors(effect, seeds=range(10)):
    """{setting: {seed: error}}: 1% plus a seed's noise, plus effect(setting overrides) where given."""
    noise = [0.0004, -0.0003, 0.0001, 0.0002, -0.0001, 0.0, 0.0003, -0.0002, -0.0004, 0.00015]
    return {name: {s: 0.01 + noise[s] + effect(o) + 0.00002 * ((s * 7 + i) % 5) for s in seeds}
            for i, (name, o) in enumerate(study.settings().items())}


def test_settings_are_the_twelve_of_the_pre_registration():
    s = study.settings()
    assert len(s) == 12 and len({runner.folder(n) for n in s}) == 12
    configs = [get_config("paper", **o) for o in s.values()]
    assert sum(c.distortions == "paper" for c in configs) == 6
    assert {c.mu for c in configs} == {paper.MU, 0.05, 0.1}
    assert {c.distortion_ranges for c in configs if c.distortions == "paper"} == {"a11", "small"}
    authors = [c for c in configs if c.subsampling_init == "authors"]
    assert len(authors) == 3 and all(c.init_scale == 1.0 and c.init_fan_power == 0.5 and c.bias_init == "zero"
                                     for c in authors)


def test_nothing_better_keeps_the_text():
    d = study.decide(errors(lambda o: 0.0))
    assert (d["mu"], d["ranges"], d["init"]) == (paper.MU, "a11", "recipe")
    assert len(d["comparisons"]) == 4 and not any(r["reject"] for r in d["comparisons"])


def test_clear_effects_win_and_the_lower_mu_score_is_chosen():
    def effect(o):
        mu = {paper.MU: 0.0, 0.05: -0.0010, 0.1: -0.0015}[o["mu"]]
        return mu - 0.0010 * (o.get("distortion_ranges") == "small")
    d = study.decide(errors(effect))
    assert (d["mu"], d["ranges"], d["init"]) == (0.1, "small", "recipe")
    rows = {r["factor"] + str(r["candidate"]): r for r in d["comparisons"]}
    assert rows["mu0.1"]["diff"] == pytest.approx(-0.0015, abs=1e-4) and rows["mu0.1"]["reject"]


def test_a_mu_that_helps_one_regime_only_counts_half():
    # mu 0.1 helps the distorted runs by 0.2 point and hurts the plain ones by as much: no main effect
    d = study.decide(errors(lambda o: (o["mu"] == 0.1) * (-0.002 if o.get("distortions") else 0.002)))
    assert d["mu"] == paper.MU


def test_only_common_seeds_are_paired():
    val = errors(lambda o: 0.0)
    del val[next(iter(val))][9]
    assert study.decide(val)["seeds"] == list(range(9))


def test_a_kept_run_counts_only_for_its_own_config_and_seed(tmp_path):
    config = get_config("paper", mu=0.05)
    stored = dict(get_config("paper", mu=0.05, train_size=runner.VALIDATION_TRAIN).to_dict(), seed=3)
    del stored["distortion_ranges"]  # a run made before a field existed: the field's default
    (tmp_path / "config.json").write_text(json.dumps(stored))
    (tmp_path / "metrics.csv").write_text("pass\n" + "\n".join(str(p) for p in range(1, 21)) + "\n")
    assert runner.kept(tmp_path, config, 3)
    assert not runner.kept(tmp_path, config, 4)
    assert not runner.kept(tmp_path, get_config("paper", mu=0.1), 3)
    (tmp_path / "metrics.csv").write_text("pass\n1\n")  # stopped after pass 1
    assert not runner.kept(tmp_path, config, 3)
