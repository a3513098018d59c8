"""dattri (explicit, CG, Arnoldi, DataInf, TracIn) as influence backends.

dattri works on `torch.func` functions of the flattened trainable parameters. Its data here is a
tuple of index tensors ``(indices, is_query)``: the loss / target functions turn indices into
batches through the problem, so one task serves a small tensor model and a fine-tuned LVLM alike.
Per-example gradients are taken one example at a time (`_LoopGradTask`) instead of with `vmap`,
which LLaVA's data-dependent image-token merge does not support; the inverse-Hessian products
(explicit, CG, Arnoldi, DataInf) and the TracIn sums are dattri's own.

dattri's raw score is positive when up-weighting the training example lowers the target; it is
negated here (see `problem.SIGN_CONVENTION`). TracIn uses the final weights only (one checkpoint,
weighted by `options["lr"]`, default 1): the gradient dot product.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from spuriverse.diagnose.influence.backends import (
    BackendSettings,
    InfluenceBackend,
    InfluenceBackendError,
)
from spuriverse.diagnose.influence.problem import InfluenceProblem


class _Functional:
    """`model(...)` with the given parameters (torch.func.functional_call), for the problem's losses."""

    def __init__(self, model: nn.Module, params: dict[str, torch.Tensor]) -> None:
        self.model, self.params = model, params

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return torch.func.functional_call(self.model, self.params, args, kwargs)


class _Prepared:
    """A batch built outside any torch.func transform (processors convert tensors to numpy, which a
    transform's wrapped tensors refuse). Passed through dattri's data tuple untouched."""

    def __init__(self, batch: Any, kind: str) -> None:
        self.batch, self.kind = batch, kind


def _prepare(problem: InfluenceProblem, data: tuple[Any, ...], *, target: bool) -> _Prepared:
    if isinstance(data[0], _Prepared):
        return data[0]
    idx = data[0].reshape(-1).tolist()
    if target and bool(data[1].reshape(-1)[0]):
        return _Prepared(problem.query_batch(idx), "query")
    return _Prepared(problem.train_batch(idx), "train")


def _functions(problem: InfluenceProblem) -> tuple[Callable, Callable]:
    """(loss_func, target_func) in dattri's form f(params, data) -> the mean over the batch. `data`
    is ``(indices, is_query)`` or, from `_loop_grad`, ``(_Prepared,)``."""

    def loss_func(params: dict[str, torch.Tensor], data: tuple[Any, ...]) -> torch.Tensor:
        batch = _prepare(problem, data, target=False).batch
        return problem.train_loss(_Functional(problem.model, params), batch).mean()  # type: ignore[arg-type]

    def target_func(params: dict[str, torch.Tensor], data: tuple[Any, ...]) -> torch.Tensor:
        prepared = _prepare(problem, data, target=True)
        model = _Functional(problem.model, params)
        if prepared.kind == "query":
            return problem.measurement(model, prepared.batch).mean()  # type: ignore[arg-type]
        return problem.train_loss(model, prepared.batch).mean()  # type: ignore[arg-type]

    return loss_func, target_func


def _loop_grad(func: Callable, in_dims: tuple[Any, ...], problem: InfluenceProblem, *, target: bool) -> Callable:
    """Per-example gradients of `func(params, data)` along `in_dims[1]` of every data tensor, one
    example at a time (what `vmap(grad(func), in_dims)` computes, without vmap); each example's
    batch is built before the gradient transform."""
    grad_fn = torch.func.grad(func)
    dim = in_dims[1]

    def per_example(params: torch.Tensor, data: tuple[torch.Tensor, ...]) -> torch.Tensor:
        n = data[0].shape[dim]
        rows = []
        for i in range(n):
            prepared = _prepare(problem, tuple(t.select(dim, i) for t in data), target=target)
            rows.append(grad_fn(params, (prepared,)))
        return torch.stack(rows)

    return per_example


def _loop_task(problem: InfluenceProblem) -> Any:
    from dattri.task import AttributionTask

    class LoopGradTask(AttributionTask):
        def get_grad_loss_func(self, in_dims: Any = (None, 1), layer_name: Any = None, ckpt_idx: Any = None) -> Callable:
            if layer_name is not None:
                raise InfluenceBackendError("layer-wise dattri gradients are not used here")
            return _loop_grad(self.loss_func, in_dims, problem, target=False)

        def get_grad_target_func(self, in_dims: Any = (None, 1), layer_name: Any = None, ckpt_idx: Any = None) -> Callable:
            if layer_name is not None:
                raise InfluenceBackendError("layer-wise dattri gradients are not used here")
            return _loop_grad(self.target_func, in_dims, problem, target=True)

    loss_func, target_func = _functions(problem)
    names = set(problem.parameter_names())
    for n, p in problem.model.named_parameters():
        p.requires_grad_(n in names)
    state = {k: v.detach() for k, v in problem.model.state_dict().items()}
    return LoopGradTask(loss_func=loss_func, model=problem.model, checkpoints=state, target_func=target_func,
                        checkpoints_load_func=lambda model, _ckpt: model)


def _loader(indices: Sequence[int], *, query: bool, batch_size: int) -> DataLoader:
    idx = torch.as_tensor(list(indices), dtype=torch.long)
    flag = torch.full_like(idx, int(query))
    return DataLoader(TensorDataset(idx, flag), batch_size=batch_size, shuffle=False)


@contextmanager
def _default_dtype(model: nn.Module) -> Iterator[None]:
    """dattri's Arnoldi iteration creates its vectors in torch's default dtype: make that the
    model's (float64 models fail with a dtype mismatch otherwise)."""
    old = torch.get_default_dtype()
    dtype = next(model.parameters()).dtype
    torch.set_default_dtype(dtype if dtype in (torch.float32, torch.float64) else old)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


@contextmanager
def _bars(show: bool) -> Iterator[None]:
    """dattri's nested per-batch progress bars, on or off (its attributors take no such option)."""
    import functools

    import dattri.algorithm.base as base
    import dattri.algorithm.tracin as tracin
    from tqdm import tqdm

    old = base.tqdm, tracin.tqdm
    base.tqdm = tracin.tqdm = functools.partial(tqdm, disable=not show)
    try:
        yield
    finally:
        base.tqdm, tracin.tqdm = old


def _finite(scores: np.ndarray, method: str) -> np.ndarray:
    if not np.isfinite(scores).all():
        raise InfluenceBackendError(f"{method}: non-finite influence scores (an ill-conditioned Hessian: "
                                    "pass a positive damping)")
    return scores


class DattriBackend(InfluenceBackend):
    def __init__(self, settings: BackendSettings, method: str) -> None:
        super().__init__(settings, method)
        if method not in ("explicit", "cg", "arnoldi", "datainf", "tracin"):
            raise InfluenceBackendError(f"dattri method {method!r} is not offered")
        self.attributor: Any = None

    def _attributor(self, task: Any, problem: InfluenceProblem) -> Any:
        from dattri.algorithm import (
            IFAttributorArnoldi,
            IFAttributorCG,
            IFAttributorDataInf,
            IFAttributorExplicit,
            TracInAttributor,
        )

        s, opt = self.settings, self.settings.options
        device = str(next(problem.model.parameters()).device)
        if self.method == "explicit":
            return IFAttributorExplicit(task, device=device, regularization=s.damping or 0.0)
        n_params = sum(p.numel() for p in problem.model.parameters() if p.requires_grad)
        if self.method == "cg":
            # dattri's CG runs exactly max_iter steps (no residual test): past convergence it divides
            # 0 by 0, so never more steps than parameters.
            return IFAttributorCG(task, device=device, regularization=s.damping or 0.0,
                                  max_iter=int(opt.get("cg_iters", min(n_params, 100))))
        if self.method == "arnoldi":
            proj = int(opt.get("proj_dim", min(100, n_params)))
            return IFAttributorArnoldi(task, device=device, regularization=s.damping or 0.0, proj_dim=proj,
                                       max_iter=int(opt.get("arnoldi_iters", max(proj + 1, 100))), seed=s.seed)
        if self.method == "datainf":
            return IFAttributorDataInf(task, device=device, regularization=0.1 if s.damping is None else s.damping)
        attributor = TracInAttributor(task, weight_list=torch.tensor([float(opt.get("lr", 1.0))]),
                                      normalized_grad=False, device=device)
        proj_dim = opt.get("proj_dim")
        attributor.projector_kwargs = None if proj_dim is None else {
            "proj_dim": int(proj_dim), "proj_max_batch_size": 32, "proj_seed": s.seed, "device": device}
        return attributor

    def fit(self, problem: InfluenceProblem, workdir: Path | None = None) -> None:
        with _default_dtype(problem.model), _bars(self.settings.progress):
            self._fit(problem)

    def _fit(self, problem: InfluenceProblem) -> None:
        task = _loop_task(problem)
        self.attributor = self._attributor(task, problem)
        if self.method == "tracin":
            self.attributor.cache()
            return
        # explicit / CG / Arnoldi take the Hessian of the mean loss over each cached batch and sum
        # them: one batch holding every example gives the Hessian of the mean training loss.
        full = self.method in ("explicit", "cg", "arnoldi")
        size = problem.n_train if full else self.settings.batch_size
        self.attributor.cache(_loader(range(problem.n_train), query=False, batch_size=size))

    def pairwise(self, problem: InfluenceProblem, queries: Sequence[int]) -> np.ndarray:
        if self.attributor is None:
            raise RuntimeError("fit() first")
        # explicit / CG / Arnoldi transform every (train batch, query batch) pair anew: one batch each.
        full = self.method in ("explicit", "cg", "arnoldi")
        train = _loader(range(problem.n_train), query=False,
                        batch_size=problem.n_train if full else self.settings.batch_size)
        test = _loader(queries, query=True, batch_size=len(queries) if full else self.settings.query_batch_size)
        with _default_dtype(problem.model), _bars(False):
            raw = self.attributor.attribute(train, test)  # [n_train, n_query]
        return _finite(-raw.T.detach().double().cpu().numpy(), self.method)

    def self_influence(self, problem: InfluenceProblem) -> np.ndarray:
        if self.attributor is None:
            raise RuntimeError("fit() first")
        # dattri 0.3's self_attribute is right for a loader of ONE batch only: one call per chunk.
        size, out = self.settings.batch_size, []
        for start in range(0, problem.n_train, size):
            chunk = range(start, min(start + size, problem.n_train))
            with _default_dtype(problem.model), _bars(self.settings.progress):
                out.append(self.attributor.self_attribute(_loader(chunk, query=False, batch_size=len(chunk))))
        return _finite(torch.cat(out).detach().double().cpu().numpy(), self.method)

