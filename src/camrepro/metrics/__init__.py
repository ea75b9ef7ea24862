"""Evaluation metrics, each a pure function of maps, images, targets and a model.

- :mod:`~camrepro.metrics.faithfulness`: Average Drop / Increase / Gain, insertion / deletion AUC.
- :mod:`~camrepro.metrics.localisation`: pointing game, energy and grid pointing games, IoU with a box.
- :mod:`~camrepro.metrics.stability`: thresholded maps and their mean pairwise IoU across models.
- :mod:`~camrepro.metrics.agreement`: rank correlation and top-k IoU of maps, agreement of coefficients.
"""

from camrepro.metrics.agreement import (
    coefficient_agreement,
    kendall_tau,
    map_rank_correlation,
    rankdata,
    spearman,
    topk_iou,
)
from camrepro.metrics.faithfulness import (
    PROBABILITY_EPS,
    average_drop,
    average_gain,
    average_increase,
    drop_increase_gain,
    evaluation_mode,
    gaussian_blur,
    gaussian_kernel1d,
    insertion_deletion,
    masked_probabilities,
    saliency_ranks,
)
from camrepro.metrics.localisation import (
    QUADRANTS,
    GridPointing,
    energy_pointing_game,
    grid_pointing_game,
    iou_with_box,
    pointing_game,
    quadrant_boxes,
)
from camrepro.metrics.stability import PairwiseIoU, Quantile, iou, mean_pairwise_iou, threshold_maps

__all__ = [
    "PROBABILITY_EPS",
    "QUADRANTS",
    "GridPointing",
    "PairwiseIoU",
    "Quantile",
    "average_drop",
    "average_gain",
    "average_increase",
    "coefficient_agreement",
    "drop_increase_gain",
    "energy_pointing_game",
    "evaluation_mode",
    "gaussian_blur",
    "gaussian_kernel1d",
    "grid_pointing_game",
    "insertion_deletion",
    "iou",
    "iou_with_box",
    "kendall_tau",
    "map_rank_correlation",
    "masked_probabilities",
    "mean_pairwise_iou",
    "pointing_game",
    "quadrant_boxes",
    "rankdata",
    "saliency_ranks",
    "spearman",
    "threshold_maps",
    "topk_iou",
]
