"""The cooperative game of a layer's channels: the players are the activation maps; a coalition keeps its
own maps and the others take the reference.

LIFT-CAM (Jung & Oh, ICCV 2021, Sec. 3.2) defines the ideal CAM coefficients as the SHAP values of this game:
for one image with activations A [K, h, w], a target class c and the tail F after the layer,

    v(S) = F_c(A_S),   (A_S)_k = A_k if k ∈ S else A₀_k   (A₀: the reference, all zeros in the paper).

:class:`ChannelGame` evaluates v on many coalitions at once (``batch_size`` tail evaluations per call of the
tail). Along a permutation the coalitions grow one channel at a time; when the tail starts with linear
operations (a convolution, batch-norm, …) before its first non-linearity, their output is affine in the
activations, so the pre-activations of every prefix of the permutation are a cumulative sum of per-channel
terms computed once (``fold``): each prefix then costs only the rest of the tail. A linear tail makes the
whole game additive, and the fold evaluates it exactly from K per-channel terms.
"""

from __future__ import annotations

import copy

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from camrepro.methods.deeplift_rules import TailPlan, as_graph_module, broadcast_reference, plan_tail
from camrepro.methods.validation import check_positive_int
from camrepro.progress import progress

DEFAULT_BATCH_SIZE = 128
# The fold stores K per-channel terms of the linear prefix's output; above this many elements it is not used.
FOLD_MAX_ELEMENTS = 1 << 26
ACCUMULATE_FLOAT64_ELEMENTS = 1 << 22


def _ancestors(node: fx.Node) -> set[fx.Node]:
    seen: set[fx.Node] = set()
    stack = list(node.all_input_nodes)
    while stack:
        current = stack.pop()
        if current not in seen:
            seen.add(current)
            stack.extend(current.all_input_nodes)
    return seen


def _sub_module(tail: fx.GraphModule, start: fx.Node | None, stop: fx.Node,
                keep: set[fx.Node]) -> fx.GraphModule:
    """A GraphModule x → value of ``stop``, where x replaces ``start`` (the tail's placeholder when None) and
    ``keep`` are the nodes to copy (in the tail's order)."""
    graph = fx.Graph()
    env: dict[fx.Node, fx.Node] = {}
    placeholder = next(n for n in tail.graph.nodes if n.op == "placeholder")
    env[start if start is not None else placeholder] = graph.placeholder("x")
    for node in tail.graph.nodes:
        if node in keep and node not in env:
            env[node] = graph.node_copy(node, lambda n: env[n])
    graph.output(env[stop])
    module = fx.GraphModule(tail, graph)
    module.graph.eliminate_dead_code()  # parameters only the other part reads
    module.graph.lint()
    module.recompile()
    return module


def restrict_to_target(plan: TailPlan, target: int) -> tuple[TailPlan, int]:
    """(plan of a tail computing only logit ``target``, its index) when the tail ends with an ``nn.Linear``
    module: that layer is replaced by its row ``target``, saving (classes − 1) dot products per evaluation.
    Otherwise the plan itself and ``target``."""
    output = next(n for n in plan.tail.graph.nodes if n.op == "output")
    final = output.args[0]
    if not (isinstance(final, fx.Node) and final.op == "call_module" and final in plan.steps
            and type(plan.tail.get_submodule(final.target)) is nn.Linear
            and len(final.args) == 1 and not final.kwargs):
        return plan, target
    linear = plan.tail.get_submodule(final.target)
    if not 0 <= target < linear.out_features:
        raise ValueError(f"target {target} is out of range for a tail with {linear.out_features} outputs")
    graph = copy.deepcopy(plan.tail.graph)
    module = fx.GraphModule(plan.tail, graph)
    module.register_buffer("target_row_weight", linear.weight.detach()[target:target + 1].clone())
    bias = linear.bias.detach()[target:target + 1] if linear.bias is not None else linear.weight.new_zeros(1)
    module.register_buffer("target_row_bias", bias.clone())
    copied = next(n for n in graph.nodes if n.op == "output").args[0]
    with graph.inserting_before(copied):
        weight = graph.get_attr("target_row_weight")
        bias_node = graph.get_attr("target_row_bias")
        row = graph.call_function(F.linear, (copied.args[0], weight, bias_node))
    copied.replace_all_uses_with(row)
    graph.erase_node(copied)
    graph.eliminate_dead_code()
    graph.lint()
    module.recompile()
    return plan_tail(module), 0


def split_linear_prefix(plan: TailPlan) -> tuple[fx.GraphModule, fx.GraphModule] | None:
    """(L, G) with tail = G ∘ L and L affine, cut at the input of the tail's first non-linear operation; None
    when no such cut exists (the first non-linearity is a product, or another path bypasses the cut)."""
    tail = plan.tail
    nodes = list(tail.graph.nodes)
    output = next(n for n in nodes if n.op == "output")
    if len(output.all_input_nodes) != 1:
        return None
    result = output.all_input_nodes[0]
    placeholder = next(n for n in nodes if n.op == "placeholder")
    nonlinear = plan.nonlinear_nodes()
    if not nonlinear:
        cut = result
    else:
        first = nonlinear[0]
        active = [a for a in first.all_input_nodes if a in plan.steps or a is placeholder]
        if len(active) != 1:
            return None
        cut = active[0]
    if cut is placeholder:  # nothing linear to fold before the first non-linearity
        return None
    # The cut must separate the activations from the output: without it, the output must be unreachable.
    reachable = {placeholder}
    for node in nodes:
        if node is not cut and any(a in reachable for a in node.all_input_nodes):
            reachable.add(node)
    if result in reachable and result is not cut:
        return None
    prefix_nodes = (_ancestors(cut) | {cut}) - {placeholder}
    dependent = set(plan.steps) | {placeholder}
    suffix_nodes = (_ancestors(result) | {result}) - {cut} - ((_ancestors(cut) | {placeholder}) & dependent)
    return _sub_module(tail, None, cut, prefix_nodes), _sub_module(tail, cut, result, suffix_nodes)


class ChannelGame:
    """v(S) = F_c(A_S) for one image (see the module docstring).

    ``tail``: a module mapping activations [N, K, …] to logits [N, classes] (or its :class:`TailPlan`);
    ``acts``: the image's activations [K, …]; ``target``: the class c; ``reference``: A₀ [K, …] (None: zeros);
    ``fold``: use the linear prefix's cumulative sums along permutations (None: when the tail has a linear
    prefix and its per-channel terms fit in ``FOLD_MAX_ELEMENTS``). Values are float64 on the CPU.
    """

    def __init__(self, tail: nn.Module | TailPlan, acts: torch.Tensor, target: int,
                 reference: torch.Tensor | None = None, *, batch_size: int = DEFAULT_BATCH_SIZE,
                 fold: bool | None = None):
        if not isinstance(acts, torch.Tensor) or not acts.is_floating_point() or acts.dim() < 1:
            raise TypeError("acts must be one image's activations, a floating-point tensor [K, ...]")
        if isinstance(target, bool) or not isinstance(target, int):
            raise TypeError(f"target must be an int class index, got {type(target).__name__}")
        plan = tail if isinstance(tail, TailPlan) else plan_tail(as_graph_module(tail))
        self.plan, self.target = restrict_to_target(plan, target)
        self.tail = self.plan.tail
        self.acts = acts.detach()
        self.reference = broadcast_reference(reference, self.acts[None])[0]
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.n_players = int(self.acts.shape[0])
        self._delta = self.acts - self.reference
        self._split = None
        if fold is None or fold:
            split = split_linear_prefix(self.plan)
            if split is None and fold:
                raise ValueError("fold=True needs a tail whose first non-linearity is preceded by a cut of "
                                 "linear operations through which every path passes; this tail has none")
            if split is not None:
                prefix, suffix = split
                with torch.no_grad():
                    size = prefix(self.reference[None]).numel()
                if fold or self.n_players * size <= FOLD_MAX_ELEMENTS:
                    self._split = (prefix, suffix)
        self._terms: torch.Tensor | None = None

    @property
    def folded(self) -> bool:
        return self._split is not None

    def _target_values(self, logits: torch.Tensor) -> torch.Tensor:
        if logits.dim() != 2 or not 0 <= self.target < logits.shape[1]:
            raise ValueError(f"the tail returns shape {tuple(logits.shape)}; the target needs logits "
                             "[N, classes] with that class")
        return logits[:, self.target].detach().to("cpu", torch.float64)

    def values(self, masks: torch.Tensor) -> torch.Tensor:
        """v of each coalition, float64 [N]: ``masks`` bool [N, K], True where the channel keeps its
        activation."""
        if not isinstance(masks, torch.Tensor) or masks.dim() != 2 or masks.shape[1] != self.n_players:
            raise ValueError(f"masks must be a tensor [N, {self.n_players}]")
        masks = masks.to(device=self.acts.device, dtype=torch.bool)
        shape = (-1, self.n_players) + (1,) * (self.acts.dim() - 1)
        out = []
        starts = range(0, masks.shape[0], self.batch_size)
        with torch.no_grad():
            for start in progress(starts, total=len(starts), desc="coalition batches", unit="batch"):
                chunk = masks[start:start + self.batch_size].view(shape)
                inputs = torch.where(chunk, self.acts[None], self.reference[None])
                out.append(self._target_values(self.tail(inputs)))
        return torch.cat(out) if out else torch.zeros(0, dtype=torch.float64)

    def _prefix_terms(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(L(A₀) flattened [D], per-channel terms [K, D] = L(A₀ with channel k from A) − L(A₀))."""
        prefix, _ = self._split
        if self._terms is None:
            with torch.no_grad():
                base = prefix(self.reference[None]).flatten(1)[0]
                terms = []
                eye = torch.eye(self.n_players, dtype=torch.bool, device=self.acts.device)
                shape = (-1, self.n_players) + (1,) * (self.acts.dim() - 1)
                for start in range(0, self.n_players, self.batch_size):
                    chunk = eye[start:start + self.batch_size].view(shape)
                    inputs = torch.where(chunk, self.acts[None], self.reference[None])
                    terms.append(prefix(inputs).flatten(1) - base)
                self._base = base
                self._terms = torch.cat(terms)
        return self._base, self._terms

    def chain_values(self, orders: torch.Tensor) -> torch.Tensor:
        """Values of the K + 1 growing coalitions of each order: ``orders`` long [P, K] (permutations of the
        channels) → float64 [P, K + 1] with column t = v({order[0], …, order[t−1]})."""
        if not isinstance(orders, torch.Tensor) or orders.dim() != 2 or orders.shape[1] != self.n_players:
            raise ValueError(f"orders must be a tensor of permutations [P, {self.n_players}]")
        orders = orders.to(self.acts.device)
        if self._split is None:
            steps = torch.arange(self.n_players + 1, device=orders.device)
            rank = torch.empty_like(orders).scatter_(1, orders, steps[:-1].expand_as(orders))
            masks = rank[:, None, :] < steps[None, :, None]          # [P, K+1, K]
            return self.values(masks.reshape(-1, self.n_players)).view(orders.shape[0], -1)
        base, terms = self._prefix_terms()
        _, suffix = self._split
        # Running sums in float64 where it is cheap (small prefix outputs, e.g. a linear tail's logits); for
        # large ones float32 keeps the memory traffic down, its rounding (~1e-7 relative) far below the
        # sampling noise.
        accumulate = torch.float64 if terms.numel() <= ACCUMULATE_FLOAT64_ELEMENTS else terms.dtype
        rows = []
        with torch.no_grad():
            for order in progress(orders, total=orders.shape[0], desc="SHAP orders", unit="order"):
                running = base.to(accumulate)
                values = [self._suffix_values(suffix, base[None])]
                for start in range(0, self.n_players, self.batch_size):
                    partial = running + torch.cumsum(terms[order[start:start + self.batch_size]], dim=0,
                                                     dtype=accumulate)
                    running = partial[-1]
                    values.append(self._suffix_values(suffix, partial.to(terms.dtype)))
                rows.append(torch.cat(values))
        return torch.stack(rows)

    def _suffix_values(self, suffix: nn.Module, flat: torch.Tensor) -> torch.Tensor:
        shape = self._base_shape()
        return self._target_values(suffix(flat.view(-1, *shape)))

    def _base_shape(self) -> tuple[int, ...]:
        if not hasattr(self, "_shape"):
            prefix, _ = self._split
            with torch.no_grad():
                self._shape = tuple(prefix(self.reference[None]).shape[1:])
        return self._shape

    def empty_value(self) -> float:
        return float(self.values(torch.zeros(1, self.n_players, dtype=torch.bool))[0])

    def full_value(self) -> float:
        return float(self.values(torch.ones(1, self.n_players, dtype=torch.bool))[0])
