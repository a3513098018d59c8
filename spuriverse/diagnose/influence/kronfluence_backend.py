"""kronfluence (K-FAC / EK-FAC) as an influence backend.

Only the problem's tracked modules are wrapped (for a LoRA run: the `lora_A` / `lora_B` linears on
the gradient path; see `LVLMProblem.tracked_modules`). Factors are fitted stage by stage
(covariance, eigendecomposition, lambda) into `workdir`; a stage counts as done only once its
marker file is written after kronfluence saved it, so a killed fit resumes at the first unfinished
stage (its partial files are removed first). The empirical Fisher (the examples' own labels) is
used: the train stage's objectives have no sampling counterpart for naming rows.

kronfluence's raw score is positive when up-weighting the training example *lowers* the
measurement; it is negated here (see `problem.SIGN_CONVENTION`).
"""

from __future__ import annotations

import gc
import logging
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from spuriverse.diagnose.influence.backends import (
    BackendSettings,
    InfluenceBackend,
    InfluenceBackendError,
)
from spuriverse.diagnose.influence.problem import InfluenceProblem

ANALYSIS = "influence"
FACTORS = "fit"
# The files each fitting stage writes (kronfluence 1.0 names), removed when a stage did not finish.
_STAGE_FILES = {
    "covariance": ("activation_covariance", "gradient_covariance", "num_activation_covariance_processed",
                   "num_gradient_covariance_processed", "covariance_dataset_metadata"),
    "eigendecomposition": ("activation_eigenvectors", "activation_eigenvalues", "gradient_eigenvectors",
                           "gradient_eigenvalues"),
    "lambda": ("lambda_matrix", "num_lambda_processed", "lambda_dataset_metadata"),
}


class _Indices(Dataset):
    """Example indices; the collate function turns a list of them into a model batch. Query indices
    come as ("q", i): kronfluence gives the query and the training loader one collate function."""

    def __init__(self, indices: Sequence[int], *, query: bool = False) -> None:
        self.indices, self.query = list(indices), query

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> Any:
        return ("q", self.indices[i]) if self.query else self.indices[i]


@contextmanager
def _quiet() -> Iterator[None]:
    """Around every kronfluence call: its deprecated `torch.cuda.amp.GradScaler` warning is muted, and
    the objects that exist already are frozen out of the garbage collector's reach (`gc.freeze`):
    kronfluence runs a full `gc.collect()` several times per call, ~0.3 s each in a process that has
    imported transformers, which dominated the time on small problems."""
    gc.freeze()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*GradScaler.*", category=FutureWarning)
            yield
    finally:
        gc.unfreeze()


def _task(problem: InfluenceProblem, modules: list[str]) -> Any:
    from kronfluence.task import Task

    class ProblemTask(Task):
        def compute_train_loss(self, batch: Any, model: nn.Module, sample: bool = False) -> torch.Tensor:
            if sample:  # never asked for: the empirical Fisher is configured
                raise NotImplementedError("sampled labels are not supported; use_empirical_fisher is on")
            return problem.train_loss(model, batch["train"]).sum()

        def compute_measurement(self, batch: Any, model: nn.Module) -> torch.Tensor:
            if "query" in batch:
                return problem.measurement(model, batch["query"]).sum()
            return problem.train_loss(model, batch["train"]).sum()  # self-influence: the loss itself

        def get_influence_tracked_modules(self) -> list[str]:
            return modules

        def get_attention_mask(self, batch: Any) -> torch.Tensor | None:
            part = batch.get("train", batch.get("query"))
            return problem.attention_mask(part)

    return ProblemTask()


class KronfluenceBackend(InfluenceBackend):
    def __init__(self, settings: BackendSettings, method: str) -> None:
        super().__init__(settings, method)
        if method not in ("ekfac", "kfac"):
            raise InfluenceBackendError(f"kronfluence strategy {method!r} is not offered (ekfac, kfac)")
        self.strategy = method
        self.analyzer: Any = None
        self._wrapped: nn.Module | None = None
        self._tmp: tempfile.TemporaryDirectory | None = None

    # -- setup -------------------------------------------------------------------------------
    def _factor_args(self, problem: InfluenceProblem) -> Any:
        from kronfluence.arguments import FactorArguments

        dtype = next(problem.model.parameters()).dtype
        compute = torch.float64 if dtype == torch.float64 else torch.float32
        return FactorArguments(
            strategy=self.strategy, use_empirical_fisher=True, has_shared_parameters=problem.shares_modules(),
            activation_covariance_dtype=compute, gradient_covariance_dtype=compute, per_sample_gradient_dtype=compute,
            lambda_dtype=compute, eigendecomposition_dtype=torch.float64,
        )

    def _score_args(self, problem: InfluenceProblem) -> Any:
        from kronfluence.arguments import ScoreArguments

        dtype = next(problem.model.parameters()).dtype
        compute = torch.float64 if dtype == torch.float64 else torch.float32
        return ScoreArguments(damping_factor=self.settings.damping, per_sample_gradient_dtype=compute,
                              precondition_dtype=compute, score_dtype=compute)

    def _analyzer(self, problem: InfluenceProblem, workdir: Path | None) -> Any:
        from kronfluence.analyzer import Analyzer, prepare_model
        from kronfluence.utils.dataset import DataLoaderKwargs

        modules = problem.tracked_modules()
        if not modules:
            raise InfluenceBackendError("no trainable linear module on the loss's gradient path to track")
        if workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="spuriverse-kfac-")
            workdir = Path(self._tmp.name)
        task = _task(problem, modules)
        self._requires_grad = {n: p.requires_grad for n, p in problem.model.named_parameters()}
        self._wrapped = prepare_model(problem.model, task)
        for name in ("kronfluence", "kronfluence.analyzer"):
            logging.getLogger(name).setLevel(logging.WARNING)
        on_cpu = next(problem.model.parameters()).device.type == "cpu"
        analyzer = Analyzer(ANALYSIS, self._wrapped, task, cpu=on_cpu,
                            disable_tqdm=not self.settings.progress, output_dir=str(workdir),
                            log_level=logging.WARNING)

        def collate(kind: str) -> Any:
            return lambda idx: {kind: (problem.train_batch if kind == "train" else problem.query_batch)(idx)}

        self._collate = collate
        analyzer.set_dataloader_kwargs(DataLoaderKwargs(collate_fn=collate("train")))
        return analyzer

    # -- fitting -----------------------------------------------------------------------------
    def fit(self, problem: InfluenceProblem, workdir: Path | None = None) -> None:
        from kronfluence.utils.dataset import DataLoaderKwargs

        self.analyzer = self._analyzer(problem, workdir)
        self._factor_dir = self.analyzer.factors_output_dir(FACTORS)
        self._factor_dir.mkdir(parents=True, exist_ok=True)
        data = _Indices(range(problem.n_train))
        loader = DataLoaderKwargs(collate_fn=self._collate("train"))
        common = dict(factors_name=FACTORS, factor_args=self._factor_args(problem), overwrite_output_dir=True)
        batch = dict(dataset=data, per_device_batch_size=self.settings.batch_size, dataloader_kwargs=loader)
        self._stage("covariance", lambda: self.analyzer.fit_covariance_matrices(**common, **batch))
        if self.strategy in ("kfac", "ekfac"):
            self._stage("eigendecomposition", lambda: self.analyzer.perform_eigendecomposition(**common))
        if self.strategy == "ekfac":
            self._stage("lambda", lambda: self.analyzer.fit_lambda_matrices(**common, **batch))

    def _stage(self, stage: str, run: Any) -> None:
        marker = self._factor_dir / f".{stage}.done"
        if marker.exists():
            return
        for stem in _STAGE_FILES[stage]:
            for p in self._factor_dir.glob(f"{stem}*"):
                p.unlink()
        with _quiet():
            run()
        marker.write_text("done\n")

    # -- scoring -----------------------------------------------------------------------------
    def pairwise(self, problem: InfluenceProblem, queries: Sequence[int]) -> np.ndarray:
        from kronfluence.utils.dataset import DataLoaderKwargs

        self._need_fit()
        name = "pairwise"
        self.analyzer.disable_tqdm = True  # the caller shows progress per batch of queries
        with _quiet():
            self.analyzer.compute_pairwise_scores(
                scores_name=name, factors_name=FACTORS, query_dataset=_Indices(queries, query=True),
                train_dataset=_Indices(range(problem.n_train)),
                per_device_query_batch_size=self.settings.query_batch_size,
                per_device_train_batch_size=self.settings.batch_size, score_args=self._score_args(problem),
                dataloader_kwargs=DataLoaderKwargs(collate_fn=self._mixed_collate(problem)), overwrite_output_dir=True,
            )
        scores = self.analyzer.load_pairwise_scores(name)["all_modules"]
        shutil.rmtree(self.analyzer.scores_output_dir(name), ignore_errors=True)
        return -scores.double().cpu().numpy()

    def _mixed_collate(self, problem: InfluenceProblem) -> Any:
        """One collate function for the query and the training loader (see `_Indices`)."""
        def collate(items: list[Any]) -> Any:
            if items and isinstance(items[0], tuple):
                return {"query": problem.query_batch([i for _, i in items])}
            return {"train": problem.train_batch(items)}

        return collate

    def self_influence(self, problem: InfluenceProblem) -> np.ndarray:
        self._need_fit()
        name = "self"
        self.analyzer.disable_tqdm = not self.settings.progress
        with _quiet():
            self.analyzer.compute_self_scores(
                scores_name=name, factors_name=FACTORS, train_dataset=_Indices(range(problem.n_train)),
                per_device_train_batch_size=self.settings.batch_size, score_args=self._score_args(problem),
                overwrite_output_dir=True,
            )
        scores = self.analyzer.load_self_scores(name)["all_modules"]
        shutil.rmtree(self.analyzer.scores_output_dir(name), ignore_errors=True)
        return scores.double().cpu().numpy()

    def _need_fit(self) -> None:
        if self.analyzer is None:
            raise RuntimeError("fit() first")

    def close(self) -> None:
        """Unwrap kronfluence's TrackedModules and restore which parameters train."""
        if self._wrapped is not None:
            from kronfluence.module.tracked_module import TrackedModule

            for name, module in list(self._wrapped.named_modules()):
                if isinstance(module, TrackedModule):
                    parent = self._wrapped.get_submodule(name.rsplit(".", 1)[0]) if "." in name else self._wrapped
                    setattr(parent, name.rsplit(".", 1)[-1], module.original_module)
            for n, p in self._wrapped.named_parameters():
                p.requires_grad_(self._requires_grad.get(n, False))
            self._wrapped = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

