"""Influence on a real LoRA run of a tiny LLaVA (random weights, the real architecture, trained by the
train stage on a tiny set): kronfluence tracks only the LoRA modules on the gradient path (LLaVA's last
CLIP layer, unused with vision_feature_layer=-2, is excluded automatically instead of raising), the
scores have our sign on this model too, and the LVLM methods run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from helpers.influence_run import problem_for, train_lora_run
from spuriverse.diagnose.influence import BackendSettings, build_backend, method_names

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def lora_run(tiny_llava, tmp_path_factory) -> Path:
    return train_lora_run(tiny_llava, tmp_path_factory)


def test_unused_clip_layer_is_excluded_automatically(lora_run):
    problem = problem_for(lora_run, measurement="loss")
    tracked = problem.tracked_modules()
    last_clip = [n for n in tracked if "vision_tower.encoder.layers.1." in n]
    assert not last_clip, "the last CLIP layer has no gradient and must not be tracked"
    assert any("vision_tower.encoder.layers.0." in n for n in tracked)
    assert any("language_model" in n for n in tracked)
    assert all(".lora_A." in n or ".lora_B." in n for n in tracked)
    backend = build_backend("ekfac", BackendSettings(batch_size=4, query_batch_size=4))
    backend.fit(problem)  # tracking the unused layer raised a KeyError inside kronfluence
    scores = backend.pairwise(problem, range(problem.n_query))
    backend.close()
    assert scores.shape == (problem.n_query, problem.n_train) and np.isfinite(scores).all()
    # close() gave the model back: no kronfluence wrapper left, the adapter trainable again
    assert not any(type(m).__name__ == "TrackedModule" for m in problem.model.modules())


def test_a_training_item_opposes_its_own_loss(lora_run):
    """Measurement = the correct letter's loss: training on an item lowers its own loss, so as a
    query it must be (among) its own strongest opposers: score < 0."""
    problem = problem_for(lora_run, measurement="loss", queries_from_train=True)
    backend = build_backend("ekfac", BackendSettings(batch_size=4, query_batch_size=4))
    backend.fit(problem)
    scores = backend.pairwise(problem, range(problem.n_query))
    backend.close()
    train_ids = [ex.item_id for ex in problem.train]
    for q, query in enumerate(problem.queries):
        own = train_ids.index(query.item_id)
        assert scores[q, own] < 0
        assert own in np.argsort(scores[q])[:3]


def test_sign_matches_a_real_update(lora_run):
    """Up-weight one training example for a small gradient step: the measurement moves the way the
    (TracIn, first-order) score says: up for the top supporter, down for the top opposer."""
    problem = problem_for(lora_run, measurement="contrast")
    problem.predict(range(problem.n_query))
    backend = build_backend("tracin", BackendSettings(batch_size=4, query_batch_size=4))
    backend.fit(problem)
    scores = backend.pairwise(problem, [0])[0]
    backend.close()
    params = [p for p in problem.model.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in params]

    def f_after_step(example: int) -> float:
        loss = problem.train_loss(problem.model, problem.train_batch([example])).sum()
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        with torch.no_grad():
            for p, g in zip(params, grads):
                if g is not None:
                    p.sub_(1e-3 * g)
            value = float(problem.measurement(problem.model, problem.query_batch([0]))[0])
            for p, b in zip(params, before):
                p.copy_(b)
        return value

    with torch.no_grad():
        f0 = float(problem.measurement(problem.model, problem.query_batch([0]))[0])
    top, bottom = int(np.argmax(scores)), int(np.argmin(scores))
    assert scores[top] > 0 > scores[bottom]
    assert f_after_step(top) > f0 > f_after_step(bottom)


def test_every_lvlm_method_runs(lora_run):
    problem = problem_for(lora_run, measurement="contrast")
    problem.predict(range(problem.n_query))
    found = {}
    for method in method_names(lvlm=True):
        backend = build_backend(method, BackendSettings(batch_size=4, query_batch_size=4))
        backend.fit(problem)
        found[method] = backend.pairwise(problem, range(2))
        self_inf = backend.self_influence(problem)
        backend.close()
        assert np.isfinite(found[method]).all() and (self_inf > 0).all(), method
    assert set(found) == {"ekfac", "kfac", "datainf", "tracin"}
    r = np.corrcoef(found["ekfac"][0], found["kfac"][0])[0, 1]
    assert r > 0.5


def test_methods_that_do_not_scale_are_not_offered_for_lvlms():
    assert set(method_names(lvlm=False)) == {"explicit", "cg", "arnoldi"}
    with pytest.raises(ValueError, match="unknown influence method"):
        build_backend("lissa")


def test_a_full_fine_tune_is_diagnosed_over_its_linear_layers(tiny_llava, tmp_path):
    """`--full` runs have no adapter: every trainable linear layer on the gradient path is tracked
    (the last CLIP layer again dropped), and the weights are checked against train.json's digest."""
    from helpers.bench_data import long_rows
    from helpers.train_data import write_train_dataset
    from spuriverse.diagnose.influence.lvlm import LVLMProblem
    from spuriverse.diagnose.influence.runner import _candidates
    from spuriverse.diagnose.influence.trainrun import load_model, read_run
    from spuriverse.schema.train import TrainDataSpec
    from spuriverse.train import TrainOptions, run_train

    data = write_train_dataset(tmp_path / "data", long_rows(n_groups=2, n_spurious=2, n_counter=0, n_controls=0))
    run = tmp_path / "full"
    run_train(TrainOptions(model=str(tiny_llava), out=run, train_data=[TrainDataSpec(source=str(data))], epochs=1,
                           batch_size=3, tuning="full", learning_rate=1e-3, progress=False))
    tr = read_run(run)
    assert tr.manifest.weights_sha256 is not None
    backend, model, _, _ = load_model(tr, device="cpu", batch_size=3)
    problem = LVLMProblem(backend, model, tr.train, tr.train[:2], measurement="loss",
                          candidates=_candidates(model, None))
    tracked = problem.tracked_modules()
    assert any("language_model" in n for n in tracked) and any("vision_tower.encoder.layers.0." in n for n in tracked)
    assert not any("vision_tower.encoder.layers.1." in n for n in tracked)
    backend_ = build_backend("ekfac", BackendSettings(batch_size=3, query_batch_size=2))
    backend_.fit(problem)
    scores = backend_.pairwise(problem, [0, 1])
    backend_.close()
    assert scores.shape == (2, problem.n_train) and np.isfinite(scores).all()
    assert scores[0, [ex.item_id for ex in problem.train].index(problem.queries[0].item_id)] < 0
