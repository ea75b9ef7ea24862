"""The Opti-CAM paper's claims that this chapter tests, decided per photo (or per timing round).

Every condition pairs two methods (or two settings) on the photos both were run on — a method run on fewer
photos (Score-CAM) is compared on those only, and the condition's n says so. The rules are fixed here, before
any data is seen; :mod:`camrepro.evidence` turns each interval into an outcome and the outcomes into a verdict.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from camrepro.evidence import Claim, Condition, Rule, condition
from camrepro.experiments.opticam import tables
from camrepro.experiments.opticam.params import MODEL_NAMES, OPTI, PAPER_NAMES
from camrepro.reference import published

PAPER = "Opti-CAM"
CHAPTER = "opticam"
# How far below a real CAM's AI Fake-CAM may fall and still be "rewarded about as much" (percentage points):
# in the paper it is 1.6 points above Grad-CAM on ResNet50 and 2.0 above on VGG16.
AI_MARGIN = 10.0

BELOW, ABOVE = Rule(0.0, "below"), Rule(0.0, "above")


def _name(m: str) -> str:
    return MODEL_NAMES.get(m, m)


def _method(m: str) -> str:
    return PAPER_NAMES.get(m, m)


def _paired(label: str, frame: pd.DataFrame, a: str, b: str, rule: Rule, measure: str,
            b_scale: float = 1.0) -> list[Condition]:
    """A condition on the per-photo pairs of ``frame`` (columns ``image, a, b``); none if no photo has both."""
    if frame.empty:
        return []
    return [condition(label, frame["image"], frame[a], frame[b] * b_scale, rule=rule, measure=measure,
                      a_label=a, b_label=b if b_scale == 1.0 else f"{b_scale:g} × {b}")]


def _t1(method: str, model: str, column: str) -> float:
    t = published("opticam_table1_cnn")
    return float(t[(t.method == method) & (t.model == model)][column].iloc[0])


def _range_t1(column: str, model: str) -> str:
    t = published("opticam_table1_cnn")
    t = t[(t.model == model) & t.method.isin([v for k, v in PAPER_NAMES.items() if k not in ("fake-cam", OPTI)])]
    return f"{t[column].min():g}–{t[column].max():g}"


def _claim(key: str, text: str, published_text: str, source: str, rule: str,
           conditions: list[Condition], missing: str) -> Claim:
    if not conditions:
        return Claim(key, PAPER, CHAPTER, text, published_text, source, rule, untestable=missing)
    return Claim(key, PAPER, CHAPTER, text, published_text, source, rule, conditions=tuple(conditions))


def _baseline_conditions(results: Mapping[str, object], measure: str, ours: str, rule: Rule, *,
                         ours_first: bool = True, exclude: tuple[str, ...] = ()) -> list[Condition]:
    """``ours`` against every baseline of every model on ``measure`` (pixel-space masking), per photo."""
    s = tables.scores(results)
    out = []
    for m in tables.models_of(results):
        per_model = s[s.model == m]
        for baseline in per_model.method.unique():
            if baseline in (ours, OPTI, "fake-cam", *exclude):
                continue
            a, b = (ours, baseline) if ours_first else (baseline, ours)
            label = f"{_name(m)}, {measure}: {_method(a)} vs {_method(b)}"
            out += _paired(label, tables.pairs(per_model, measure, a, b),
                           a, b, rule, f"{measure} (%)")
    return out


def _fake_claims(results: Mapping[str, object]) -> list[Claim]:
    ad = _baseline_conditions(results, "AD", "fake-cam", BELOW)
    ai = _baseline_conditions(results, "AI", "fake-cam", Rule(-AI_MARGIN, "above"))
    ag = _baseline_conditions(results, "AG", "fake-cam", ABOVE, ours_first=False)
    none = "Fake-CAM or the baselines were not run at this scale"
    return [
        _claim("fake-ad", "Fake-CAM, a map that explains nothing, beats every CAM baseline on Average Drop",
               f"Fake-CAM AD {_t1('Fake-CAM', 'ResNet50', 'AD'):g} vs baselines {_range_t1('AD', 'ResNet50')} "
               f"(ResNet50); {_t1('Fake-CAM', 'VGG16', 'AD'):g} vs {_range_t1('AD', 'VGG16')} (VGG16)", "Table 1",
               "per photo, AD of Fake-CAM minus AD of the baseline (lower AD counts as better); each model × "
               "baseline holds when the 95 % paired-bootstrap interval of the mean difference lies below 0",
               ad, none),
        _claim("fake-ai", "Average Increase rewards Fake-CAM about as much as the real CAMs",
               f"Fake-CAM AI {_t1('Fake-CAM', 'ResNet50', 'AI'):g} vs baselines {_range_t1('AI', 'ResNet50')} "
               f"(ResNet50); {_t1('Fake-CAM', 'VGG16', 'AI'):g} vs {_range_t1('AI', 'VGG16')} (VGG16)", "Table 1",
               "per photo, AI of Fake-CAM minus AI of the baseline (AI of one photo: 100 if the masked "
               f"probability rises, else 0); each model × baseline holds when the 95 % interval lies above "
               f"−{AI_MARGIN:g} points (Fake-CAM at most {AI_MARGIN:g} points below the baseline), fails when it "
               f"lies below −{AI_MARGIN:g}", ai, none),
        _claim("fake-ag", "Average Gain exposes Fake-CAM: it ranks it below every real CAM",
               f"Fake-CAM AG {_t1('Fake-CAM', 'ResNet50', 'AG'):g} vs baselines {_range_t1('AG', 'ResNet50')} "
               f"(ResNet50); {_t1('Fake-CAM', 'VGG16', 'AG'):g} vs {_range_t1('AG', 'VGG16')} (VGG16)", "Table 1",
               "per photo, AG of the baseline minus AG of Fake-CAM; each model × baseline holds when the 95 % "
               "interval of the mean difference lies above 0", ag, none),
    ]


def _opti_claims(results: Mapping[str, object]) -> list[Claim]:
    ag = _baseline_conditions(results, "AG", OPTI, ABOVE)
    ad = _baseline_conditions(results, "AD", OPTI, BELOW)
    ai = _baseline_conditions(results, "AI", OPTI, ABOVE)
    a9 = published("opticam_tableA9_target_class_resnet50").set_index("target_class")
    none = "Opti-CAM or the baselines were not run at this scale"
    insdel = []
    for m in tables.models_of(results):
        auc = results[f"faithfulness-{m}"]["insertion_deletion"]
        auc = auc.assign(insertion=100 * auc.insertion, deletion=100 * auc.deletion)   # AUC in %, as Table 3
        insdel += _paired(f"{_name(m)}, insertion", tables.pairs(auc, "insertion", OPTI, "grad-cam"),
                          OPTI, "grad-cam", BELOW, "insertion AUC (%)")
        insdel += _paired(f"{_name(m)}, deletion", tables.pairs(auc, "deletion", OPTI, "grad-cam"),
                          OPTI, "grad-cam", ABOVE, "deletion AUC (%)")
    t3 = published("opticam_table3_insertion_deletion").set_index(["method", "model"])
    return [
        _claim("opti-ag", "Opti-CAM has a far higher Average Gain than every baseline",
               f"ResNet50: {_t1('Opti-CAM', 'ResNet50', 'AG'):g} vs baselines {_range_t1('AG', 'ResNet50')} "
               f"(ground-truth class); {a9.AG['predicted']:g} with the predicted class (Table A.9); VGG16: "
               f"{_t1('Opti-CAM', 'VGG16', 'AG'):g} vs {_range_t1('AG', 'VGG16')}", "Table 1, Table A.9",
               "per photo, AG of Opti-CAM minus AG of the baseline on the photos both ran on; each model × "
               "baseline (Fake-CAM excluded) holds when the 95 % interval lies above 0", ag, none),
        _claim("opti-ad-ai", "Opti-CAM has a lower Average Drop and a higher Average Increase than every CAM "
               "baseline",
               f"ResNet50: AD {_t1('Opti-CAM', 'ResNet50', 'AD'):g} vs {_range_t1('AD', 'ResNet50')}, AI "
               f"{_t1('Opti-CAM', 'ResNet50', 'AI'):g} vs {_range_t1('AI', 'ResNet50')}; predicted class: AD "
               f"{a9.AD['predicted']:g}, AI {a9.AI['predicted']:g} (Table A.9)", "Table 1, Table A.9",
               "per photo, AD of Opti-CAM minus the baseline's (holds below 0) and AI of Opti-CAM minus the "
               "baseline's (holds above 0), each model × baseline × measure a condition (Fake-CAM excluded)",
               ad + ai, none),
        _claim("insertion-deletion", "On insertion and deletion, Opti-CAM does not beat Grad-CAM",
               f"ResNet50: insertion {t3.insertion['Opti-CAM', 'ResNet50']:g} vs Grad-CAM "
               f"{t3.insertion['Grad-CAM', 'ResNet50']:g}, deletion {t3.deletion['Opti-CAM', 'ResNet50']:g} vs "
               f"{t3.deletion['Grad-CAM', 'ResNet50']:g}; VGG16: insertion {t3.insertion['Opti-CAM', 'VGG16']:g} "
               f"vs {t3.insertion['Grad-CAM', 'VGG16']:g}, deletion {t3.deletion['Opti-CAM', 'VGG16']:g} vs "
               f"{t3.deletion['Grad-CAM', 'VGG16']:g}", "Table 3",
               "per photo, Opti-CAM's insertion AUC minus Grad-CAM's (holds below 0: worse) and its deletion AUC "
               "minus Grad-CAM's (holds above 0: worse), per model", insdel,
               "insertion and deletion were not run for Opti-CAM and Grad-CAM at this scale"),
    ]


def _ablation_frame(results: Mapping[str, object]) -> pd.DataFrame:
    s = results["ablation"]["scores"]
    return s.assign(config=s.objective + "+" + s.normalization)


def _ablation_claims(results: Mapping[str, object], params: Mapping[str, object]) -> list[Claim]:
    s = _ablation_frame(results)
    model = _name(params["ablation"]["model"])
    t6 = published("opticam_table6_ablation_vgg16").set_index(["objective", "normalization"]).AG
    objective = []
    for n in params["ablation"]["normalizations"]:
        pairs = tables.pairs(s, "AG", f"mask+{n}", f"diff+{n}", by="config")
        objective += _paired(f"{model}, {n.capitalize()}", pairs,
                             f"mask+{n}", f"diff+{n}", ABOVE, "AG (%)")
    sigmoid = _paired(f"{model}, Mask", tables.pairs(s, "AG", "mask+sigmoid", "mask+range", by="config"),
                      "mask+sigmoid", "mask+range", BELOW, "AG (%)", b_scale=0.5)
    none = "the ablation was not run at this scale"
    return [
        _claim("objective", "The Mask objective (maximise the masked logit) beats Diff (match the original logit)",
               "; ".join(f"{n}: AG {t6['Mask', n]:g} vs {t6['Diff', n]:g}" for n in ("Range", "Max", "Sigmoid"))
               + " (VGG16)", "Table 6",
               "per photo, AG of Mask minus AG of Diff with the same normalisation; each normalisation holds "
               "when the 95 % interval lies above 0", objective, none),
        _claim("sigmoid", "With the Mask objective, Sigmoid normalisation loses most of the Average Gain",
               f"Mask + Sigmoid AG {t6['Mask', 'Sigmoid']:g} vs Mask + Range {t6['Mask', 'Range']:g} (VGG16)",
               "Table 6",
               "per photo, AG of Mask + Sigmoid minus half the AG of Mask + Range; holds when the 95 % interval "
               "lies below 0 (Sigmoid keeps less than half of Range's AG)", sigmoid, none),
    ]


def _iteration_claim(results: Mapping[str, object], params: Mapping[str, object]) -> Claim:
    snapshots = sorted(set(params["snapshots"]))
    conditions = []
    if len(snapshots) >= 2:
        last = snapshots[-1]
        half = min(snapshots[:-1], key=lambda t: abs(t - last / 2))
        for m in tables.models_of(results):
            curve = results[f"faithfulness-{m}"]["iterations"]
            conditions += _paired(f"{_name(m)}, AG({last}) vs AG({half})",
                                  tables.pairs(curve, "AG", last, half, by="iteration").rename(
                                      columns={last: f"after {last}", half: f"after {half}"}),
                                  f"after {last}", f"after {half}", ABOVE, "AG (%)")
    return _claim("iterations", "More iterations give a higher Average Gain: stopping at half of them costs AG",
                  "100 iterations give the best AG; 50 iterations about 6 % lower (text)", "Sec. 5",
                  "per photo, AG of the map after the last snapshot minus AG after the snapshot nearest half "
                  "of it (the same runs); each model holds when the 95 % interval lies above 0", conditions,
                  "fewer than two snapshots at this scale")


def _protocol_claim(results: Mapping[str, object]) -> Claim:
    table = tables.protocol_scores(results)
    base = table[table.optimised_in != "normalized"]
    conditions = []
    for m in tables.models_of(results):
        for method in ("grad-cam", "score-cam"):
            one = base[(base.model == m) & (base.method == method)]
            conditions += _paired(f"{_name(m)}, {_method(method)}: pixel vs normalised",
                                  tables.pairs(one, "AG", "pixel", "normalized", by="space"),
                                  "pixel", "normalized", ABOVE, "AG (%)")
    extra = results["protocol"]["scores"]
    if len(extra):
        m = extra.model.iloc[0]
        opti = pd.concat([table[(table.model == m) & (table.method == OPTI) & (table.optimised_in == "pixel")
                                & (table.space == "pixel")].assign(setting="pixel"),
                          extra[extra.space == "normalized"].assign(setting="normalized")])
        conditions += _paired(f"{_name(m)}, Opti-CAM: pixel vs normalised",
                              tables.pairs(opti, "AG", "pixel", "normalized", by="setting"),
                              "pixel", "normalized", ABOVE, "AG (%)")
        norm = pd.concat([base[(base.model == m) & (base.space == "normalized") & (base.method != OPTI)],
                          extra[extra.space == "normalized"]])
        for method in ("grad-cam", "score-cam"):
            conditions += _paired(f"{_name(m)}, normalised: Opti-CAM vs {_method(method)}",
                                  tables.pairs(norm, "AG", OPTI, method), OPTI, method, ABOVE, "AG (%)")
    t14 = published("opticam_tableA14_no_input_normalization").set_index(["method", "model"]).AG
    return _claim(
        "protocol", "Masking the normalised image instead of the [0, 1] image lowers every method's Average Gain, "
        "and Opti-CAM stays best under both protocols",
        "ResNet50 AG: " + ", ".join(f"{k} {_t1(k, 'ResNet50', 'AG'):g} → {t14[k, 'ResNet50']:g}"
                                    for k in ("Grad-CAM", "Score-CAM", "Opti-CAM")) + " (Table 1 → Table A.14)",
        "Table 1, Table A.14",
        "per photo, AG with pixel-space masking minus AG with normalised-space masking for Grad-CAM, Score-CAM "
        "(same maps) and Opti-CAM (optimised in each space), holds above 0; and, in normalised space, AG of "
        "Opti-CAM (optimised there) minus AG of Grad-CAM and of Score-CAM, holds above 0", conditions,
        "the protocol study was not run at this scale")


def _speed_claim(results: Mapping[str, object], params: Mapping[str, object]) -> Claim:
    rounds = tables.round_ratios(results)
    model = _name(params["timing"]["model"])
    conditions = [] if rounds.empty else [condition(
        f"{model}, Opti-CAM / Score-CAM", rounds["round"], rounds[OPTI], rounds["score-cam"],
        rule=Rule(1.0, "below"), measure="seconds per photo", statistic="geometric mean ratio",
        a_label=OPTI, b_label="score-cam")]
    return _claim(
        "speed", "Opti-CAM takes less time per photo than Score-CAM at a layer with many channels",
        f"ResNet50 (2048 channels): {_t1('Opti-CAM', 'ResNet50', 'T_seconds'):g} s vs "
        f"{_t1('Score-CAM', 'ResNet50', 'T_seconds'):g} s; VGG16 (512 channels): "
        f"{_t1('Opti-CAM', 'VGG16', 'T_seconds'):g} s vs {_t1('Score-CAM', 'VGG16', 'T_seconds'):g} s (GPU)",
        "Table 1",
        "Opti-CAM (the main run's iterations) and Score-CAM timed interleaved on one photo, call by call; the "
        "per-round ratio of their seconds; holds when the 95 % bootstrap interval of the geometric-mean ratio "
        "lies below 1 (the layers explained here have 1280 channels, between VGG16's and ResNet50's)",
        conditions, "Score-CAM was not timed at this scale")


def claims(results: Mapping[str, object], params: Mapping[str, object]) -> list[Claim]:
    """The chapter's claims, decided on its units' results."""
    return [*_fake_claims(results), *_opti_claims(results), *_ablation_claims(results, params),
            _iteration_claim(results, params), _protocol_claim(results), _speed_claim(results, params)]
