"""LRP-CAM: CAM coefficients as the layer-wise relevance of each activation map (Jung & Oh, ICCV 2021)."""

from __future__ import annotations

from torch import nn

from camrepro.methods.base import ChannelCAM
from camrepro.methods.deeplift_rules import DEFAULT_LRP_EPSILON, check_reproduces, lrp, plan_for_layer


class LRPCAM(ChannelCAM):
    """LRP-CAM: φ_k = Σ_ij R_kij, the LRP-ε relevance of the activations of map A_k for the target logit,
    propagated through the tail after the layer; map = ReLU(Σ_k φ_k A_k).

    Paper: H. Jung and Y. Oh, "Towards Better Explanations of Class Activation Mapping", ICCV 2021, Sec. 4
    (the paper's second approximation of the maps' SHAP values, after LIFT-CAM; LRP from Bach et al., PLoS ONE
    2015). The official code applies captum's ``LRP`` with its defaults to the tail: the ε-rule (ε = 1e-9) on
    convolutions, linear layers, batch-norm and pooling, relevance passed unchanged through activations, and
    the relevance at the output initialised to the target logit. :func:`camrepro.methods.deeplift_rules.lrp`
    implements exactly these rules on any tail; with a linear tail φ_k = w_ck · mean(A_k) like LIFT-CAM (the
    bias's share of the logit is absorbed), with a non-linear one the two differ: LRP compares each unit with
    zero rather than with the unit's value on the reference.

    Cost: one forward pass of the network, one forward and one backward of the tail on B rows.

    Example:
        >>> maps = LRPCAM(net, layer="features.17")(images)

    Deviations from the paper: none in the rules; activations other than ReLU (which captum's LRP rejects,
    e.g. ReLU6) also pass relevance unchanged, i.e. their multiplier is (f(x) − f(0)) / x. A product of two
    activations has no LRP rule and is an error.
    """

    name = "lrp-cam"
    paper = "Jung & Oh, ICCV 2021 (LRP: Bach et al., PLoS ONE 2015)"
    needs_gradients = False
    forward_passes = "1 forward + 1 tail forward + 1 tail backward"
    range_free = True  # check_range=False accepted (see Explainer)

    def __init__(self, model: nn.Module, layer=None, *, tail: nn.Module | None = None,
                 epsilon: float = DEFAULT_LRP_EPSILON, check_range: bool = True, precision: str = "float32"):
        super().__init__(model, layer, check_range=check_range, precision=precision)
        if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not epsilon > 0:
            raise ValueError(f"epsilon must be a positive number, got {epsilon!r}")
        self.epsilon = float(epsilon)
        self.plan = plan_for_layer(self.model, self.layer_name, tail)

    def _channel_weights(self, images, acts, logits, targets):
        result = lrp(self.plan, acts.detach(), targets, self.epsilon)
        check_reproduces(result.logits, logits, self.name)
        return result.coefficients
