"""The lficam chapter's tables and figure data, each a plain function of the units' results.

Per-seed tables are the units of the accuracy and attention-quality claims (one trained network per seed);
per-image tables are the units of the stability claim (one set of models per network, many test images).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from camrepro.experiments.chapter import Results
from camrepro.experiments.lficam.params import KINDS, LABELS
from camrepro.reference import published

ORDER = [LABELS[k] for k in KINDS]
# measures of the quality table, the direction that is better, and the factor that puts them in percent
QUALITY_MEASURES = {"AD": ("lower", 1.0), "AI": ("higher", 1.0), "AG": ("higher", 1.0),
                    "energy_pointing": ("higher", 100.0), "pointing": ("higher", 100.0),
                    "mask_iou": ("higher", 100.0)}
QUALITY_NAMES = {"AD": "AD ↓ (%)", "AI": "AI ↑ (%)", "AG": "AG ↑ (%)", "energy_pointing": "energy pointing ↑ (%)",
                 "pointing": "pointing game ↑ (%)", "mask_iou": "mask IoU ↑ (%)"}


def accuracy(results: Results) -> pd.DataFrame:
    """One row per network and seed: test accuracy (%) on the whole test set after the last epoch."""
    table = results["training"].tables["accuracy"].copy()
    table["test_accuracy"] *= 100
    table["train_accuracy"] *= 100
    return table


def accuracy_summary(results: Results) -> pd.DataFrame:
    """Per network: mean and standard deviation over seeds of the test accuracy (%), and the seeds."""
    summary = accuracy(results).groupby("label").test_accuracy.agg(["mean", "std", "count"]).reindex(ORDER)
    return summary.rename(columns={"mean": "test accuracy (%)", "std": "std over seeds", "count": "seeds"})


def accuracy_per_seed(results: Results) -> pd.DataFrame:
    """Seed × network test accuracy (%): the paired values of the accuracy claims."""
    return accuracy(results).pivot(index="seed", columns="label", values="test_accuracy")[ORDER]


def curves(results: Results) -> pd.DataFrame:
    """The per-epoch history of every training (``group``: seeds or hyper-parameters)."""
    return results["training"].tables["curves"]


def classes(results: Results) -> list[str]:
    return list(results["training"].tables["classes"].name)


def runs(results: Results) -> pd.DataFrame:
    """Every distinct training of the build, with its accuracies (%), wall time and cache entry."""
    table = results["training"].tables["runs"].copy()
    table[["test_accuracy", "train_accuracy"]] *= 100
    return table


def settings(results: Results) -> pd.DataFrame:
    """The stability settings, each one's hyper-parameters and the test accuracy (%) of both networks."""
    table = results["training"].tables["settings"].copy()
    for kind in ("abn", "lficam"):
        table[f"{LABELS[kind]} accuracy (%)"] = 100 * table.pop(f"{kind}_test_accuracy")
    return table


def quality(results: Results) -> pd.DataFrame:
    """The per-image quality rows (network, seed, image, every measure; percent where it is a fraction)."""
    table = results["quality"].tables["quality"].copy()
    for column, (_, factor) in QUALITY_MEASURES.items():
        if column in table and factor != 1.0:
            table[column] = table[column] * factor
    return table


def measures(results: Results) -> list[str]:
    """The quality measures this build computed (the localisation ones need the canvas masks)."""
    table = results["quality"].tables["quality"]
    return [m for m in QUALITY_MEASURES if m in table and table[m].notna().all()]


def quality_per_seed(results: Results) -> pd.DataFrame:
    """One row per network and seed: the mean of each measure over the test images (the claim's units),
    the images scored, the all-zero maps and the accuracy on those images."""
    table = quality(results)
    present = measures(results)
    grouped = table.groupby(["network", "label", "seed"])
    out = grouped[present].mean()
    out["images"] = grouped.size()
    out["all_zero_maps"] = grouped.all_zero.sum().astype(int)
    out["accuracy_on_images"] = 100 * grouped.correct.mean()
    return out.reset_index()


def quality_summary(results: Results) -> pd.DataFrame:
    """Per network: mean ± std over seeds of each seed's mean measure, with the all-zero maps counted."""
    per_seed = quality_per_seed(results)
    present = measures(results)
    grouped = per_seed.groupby("label")
    mean, std = grouped[present].mean().reindex(ORDER), grouped[present].std(ddof=1).reindex(ORDER)
    text = mean.map(lambda v: f"{v:.2f}")
    if len(per_seed.seed.unique()) > 1:
        text = text + " ± " + std.map(lambda v: f"{v:.2f}")
    text = text.rename(columns=QUALITY_NAMES)
    text["all-zero maps"] = grouped.all_zero_maps.sum().reindex(ORDER).astype(int)
    text["maps scored"] = grouped.images.sum().reindex(ORDER).astype(int)
    return text


def mask_chance(results: Results) -> float:
    """The share of a flat map's mass inside the item's mask (the energy pointing game's chance level, %);
    NaN without masks."""
    table = results["quality"].tables["quality"]
    if "mask_fraction" not in table:
        return float("nan")
    first = table[(table.network == table.network.iloc[0]) & (table.seed == table.seed.iloc[0])]
    return float(100 * first.mask_fraction.mean())


def examples(results: Results) -> dict[str, np.ndarray]:
    """Example test canvases with every network's seed-0 map and prediction (empty with ``examples: 0``)."""
    return results["quality"].arrays.get("examples", {})


def stability(results: Results) -> pd.DataFrame:
    """The per-image rows: network, varied (hyper-parameters or seeds), image, mean pairwise IoU."""
    return results["stability"].tables["stability"]


def stability_summary(results: Results) -> pd.DataFrame:
    """Per network and what was varied: the mean pairwise IoU over images, the share of pixels above the
    threshold, models and images compared, and the all-zero maps among them."""
    table = stability(results)
    grouped = table.groupby(["varied", "label"])
    out = pd.DataFrame({"mean pairwise IoU": grouped.iou.mean(), "pixels above threshold": grouped.foreground.mean(),
                        "models": grouped.models.first(), "images": grouped.size(),
                        "all-zero maps": grouped.all_zero_models.sum()})
    return out.reset_index()


def stability_pairs(results: Results) -> pd.DataFrame:
    """The IoU of every pair of models, averaged over the images."""
    return results["stability"].tables["pairs"]


def published_stability() -> pd.DataFrame:
    """The authors' mean pairwise IoU per data set (LFI-CAM repository, asset/IOU_Test.png)."""
    return published("lficam_stability_iou").pivot(index="dataset", columns="method",
                                                   values="mean_pairwise_attention_iou")


def throughput(results: Results) -> pd.DataFrame:
    """Training and inference images per second of each network, and the overhead over the backbone."""
    table = results["throughput"].tables["throughput"]
    return table[["label", "input", "batch_size", "images_per_second", "overhead", "inference_images_per_second",
                  "parameters", "threads", "load"]].set_index("label")
