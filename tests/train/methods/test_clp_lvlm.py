"""CLP steps on a tiny LLaVA with LoRA, through the real Trainer: only LoRA weights change, losses are
finite, the perturbation network learns, a resume continues exactly, and the trained model predicts
without the network, the same after save and load."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from transformers import TrainingArguments

from spuriverse.models.hf import HFBackend
from spuriverse.schema.train import TrainDataSpec
from spuriverse.train.batching import ExampleDataset
from spuriverse.train.data import load_examples
from spuriverse.train.lora import apply_lora, target_regex
from spuriverse.train.methods import MethodOptions
from spuriverse.train.methods.clp_trainer import ClpTrainer
from spuriverse.train.methods.plan import plan_method, trainer_kwargs
from spuriverse.train.methods.predict import load_scorer, predict_letters
from spuriverse.train.methods.trainers import STATE_FILE, MethodBatcher

torch.set_num_threads(1)
LR = 5e-3


def _trainer(tiny_llava: Path, world: Path, ckpt: Path, *, first_order: bool) -> tuple[ClpTrainer, HFBackend, list]:
    backend = HFBackend(str(tiny_llava), device="cpu")
    torch.manual_seed(0)
    model = apply_lora(backend.model, r=4, alpha=8, dropout=0.0, target_modules=target_regex(backend.model, "both"))
    train = load_examples([TrainDataSpec(source=str(world / "train"), config="biased")])
    options = MethodOptions(meta_data=TrainDataSpec(source=str(world / "train"), config="balanced", split="validation"),
                            meta_size=8, meta_batch=3, first_order=first_order, saliency_lambda=0.5)
    plan = plan_method("clp", options, train)
    config = SimpleNamespace(**plan.settings(LR))
    batcher_kw, kw = trainer_kwargs(plan, config, backend, "direct")
    batcher = MethodBatcher(backend, **batcher_kw)
    args = TrainingArguments(output_dir=str(ckpt), max_steps=2, per_device_train_batch_size=4, learning_rate=LR,
                             save_strategy="steps", save_steps=1, logging_steps=1, report_to=[], use_cpu=True, seed=0,
                             data_seed=0, remove_unused_columns=False, disable_tqdm=True, save_only_model=False)
    trainer = ClpTrainer(model=model, args=args, data_collator=batcher, train_dataset=ExampleDataset(train, seed=0,
                         shuffle=True), processing_class=backend.processor, eval_collator=batcher.eval_batch, **kw)
    return trainer, backend, train


@pytest.fixture(scope="module")
def trained(tiny_llava, tiny_world, tmp_path_factory):
    ckpt = tmp_path_factory.mktemp("clp-ckpt")
    trainer, backend, train = _trainer(tiny_llava, tiny_world, ckpt, first_order=False)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    net_before = [p.detach().clone() for p in trainer.net.parameters()]
    trainer.train()
    return trainer, backend, train, before, net_before, ckpt


def test_clp_steps_change_only_lora_weights_with_finite_losses(trained):
    trainer, _, _, before, net_before, ckpt = trained
    changed = [n for n, p in trainer.model.named_parameters() if not torch.equal(p.detach(), before[n])]
    assert changed and all("lora_" in n for n in changed)
    assert any("lora_B" in n for n in changed)
    losses = [r["loss"] for r in trainer.state.log_history if "loss" in r]
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(x)) for x in losses)
    summary = trainer.method_summary()
    assert summary["clp_meta_steps"] == 2 and torch.isfinite(torch.tensor(summary["clp_last_meta_loss"]))
    assert summary["clp_last_saliency"] > 0  # the background-saliency term was on (world items have masks)
    assert any(not torch.equal(p.detach(), q) for p, q in zip(trainer.net.parameters(), net_before))  # Omega learnt
    assert (ckpt / "checkpoint-1" / STATE_FILE).is_file()  # the method's state is checkpointed


def test_a_resumed_clp_run_continues_exactly(trained, tiny_llava, tiny_world, tmp_path):
    trainer, _, _, _, _, ckpt = trained
    again, _, _ = _trainer(tiny_llava, tiny_world, tmp_path / "ck", first_order=False)
    again.train(resume_from_checkpoint=str(ckpt / "checkpoint-1"))
    a = dict(trainer.model.named_parameters())
    for n, p in again.model.named_parameters():
        assert torch.allclose(p, a[n], atol=1e-6), n
    for p, q in zip(again.net.parameters(), trainer.net.parameters()):
        assert torch.allclose(p, q, atol=1e-6)


def test_background_masks_line_up_with_pixel_values(trained):
    trainer, backend, train, *_ = trained
    items = [ex for ex in train if ex.kind == "choice"][:3]
    part = trainer.data_collator.choice_batch(items)
    bg, pixels = part["background"], part["inputs"]["pixel_values"]
    assert bg.shape == pixels.shape and set(bg.unique().tolist()) == {0.0, 1.0}
    from spuriverse.data.edits import decode_mask

    core = torch.from_numpy(decode_mask(items[0].core_mask))  # 32 x 32, the processor's size here
    assert torch.equal(bg[0, 0].bool(), ~core) and torch.equal(bg[0, 1], bg[0, 0])


def test_predictions_need_no_perturbation_network_and_survive_save_load(trained, tmp_path):
    trainer, backend, train, _, _, _ = trained
    items = [ex for ex in train if ex.kind == "choice"][:8]
    requests = [MethodBatcher(backend).request(ex) for ex in items]
    backend.model.eval()
    live = dict(backend.score_options(requests))  # the in-memory trained model, scored like eval
    out = tmp_path / "model"
    trainer.save_model(str(out))
    backend.processor.save_pretrained(str(out))
    assert not any("perturb" in p.name or p.name == STATE_FILE for p in out.rglob("*"))
    loaded = load_scorer(str(out), device="cpu")  # base + adapter, no trainer, no network
    reloaded = dict(loaded.score_options(requests))
    for i in range(len(items)):
        for letter, lp in live[i].logprobs.items():
            assert reloaded[i].logprobs[letter] == pytest.approx(lp, abs=1e-5)
    assert predict_letters(loaded, items) == [max(s.logprobs, key=lambda k: (s.logprobs[k], -ord(k)))
                                              for s in (live[i] for i in range(len(items)))]


def test_first_order_step_runs_and_agrees_with_second_order(trained, tiny_llava, tiny_world, tmp_path):
    trainer, _, _, _, _, _ = trained
    fo, _, _ = _trainer(tiny_llava, tiny_world, tmp_path / "fo", first_order=True)
    fo.train()
    assert fo.method_summary()["clp_meta_steps"] == 2
    # Adam normalises the meta-gradient, so equal gradients give (nearly) equal networks
    for p, q in zip(fo.net.parameters(), trainer.net.parameters()):
        assert torch.allclose(p, q, atol=1e-4)
