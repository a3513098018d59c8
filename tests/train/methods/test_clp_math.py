"""CLP's math on small float64 models: delta's shape and projection, the no-op of a constant offset,
the meta-gradient through one virtual step against central finite differences, and the CF loss."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from spuriverse.train.batching import NEG
from spuriverse.train.methods.clp import (
    ClassStats, PerturbationNet, characteristics, meta_gradient, project, role_slots, slot_delta,
)
from spuriverse.train.methods.meta import cf_loss, meta_objective

torch.set_num_threads(1)
K, S = 4, 6  # options per item, letter slots


def _mask(b: int, k: int = K) -> torch.Tensor:
    m = torch.zeros(b, S, dtype=torch.bool)
    m[:, :k] = True
    return m


def test_delta_has_one_value_per_option_and_zero_mean():
    torch.manual_seed(0)
    net = PerturbationNet(K, hidden=100).train()
    torch.nn.init.normal_(net.net[-1].weight)  # the output layer starts at zero; make delta non-trivial
    g = torch.randn(5, 10)
    raw = net(g)
    assert raw.shape == (5, K)
    u = torch.randn(5, S).masked_fill(~_mask(5), NEG)
    answer = torch.tensor([0, 3, 1, 2, 0])
    slots = role_slots(u, answer, _mask(5), K)
    delta = slot_delta(raw, slots, _mask(5), bound=2.0)
    assert delta.shape == (5, S) and torch.all(delta[:, K:] == 0)
    assert delta[:, :K].shape == (5, K)
    assert torch.allclose(delta[:, :K].mean(1), torch.zeros(5), atol=1e-6)
    assert float(delta[:, :K].detach().std(1).min()) > 1e-3  # varies across options
    assert float(delta.detach().abs().max()) <= 4.0  # bound before centring: |delta| <= 2 x bound
    # role order: the answer's slot first, then the others by descending logit
    assert slots[:, 0].tolist() == answer.tolist()
    for row in range(5):
        rest = slots[row, 1:].tolist()
        assert [float(u[row, s]) for s in rest] == sorted((float(u[row, s]) for s in rest), reverse=True)


def test_a_constant_offset_is_a_no_op_and_is_projected_away():
    torch.manual_seed(1)
    u = torch.randn(8, S, dtype=torch.float64).masked_fill(~_mask(8, 3), NEG)
    y = torch.randint(0, 3, (8,))
    c = torch.randn(8, 1, dtype=torch.float64) * 10
    const = c.expand(8, S) * _mask(8, 3)
    assert torch.allclose(F.cross_entropy(u + const, y, reduction="none"), F.cross_entropy(u, y, reduction="none"),
                          atol=1e-6)
    assert float(project(const, _mask(8, 3)).abs().max()) < 1e-12
    # a network that outputs the same value for every option yields delta = 0, so the loss is plain CE
    net = PerturbationNet(3, hidden=4).double().train()
    with torch.no_grad():
        net.net[-1].weight.zero_()
        net.net[-1].bias.fill_(1.7)
    raw = net(torch.randn(8, 10, dtype=torch.float64))
    delta = slot_delta(raw, role_slots(u, y, _mask(8, 3), 3), _mask(8, 3), bound=2.0)
    assert float(delta.detach().abs().max()) < 1e-12


def test_cf_loss_is_finite_as_p_y_goes_to_one_and_pushes_p_y_down():
    for big in (5.0, 50.0, 500.0):
        u = torch.tensor([[big, 0.0, -1.0, 0.5, NEG, NEG]], requires_grad=True)
        y = torch.tensor([0])
        loss = cf_loss(u, y)
        naive = -torch.log(1 - torch.softmax(u.detach(), 1)[0, 0])
        assert torch.isfinite(loss).all() and float(loss.detach()) > 0
        if big >= 50:
            assert not torch.isfinite(naive)  # the naive formula overflows; ours does not
        (grad,) = torch.autograd.grad(loss.sum(), u)
        assert torch.isfinite(grad).all() and float(grad[0, 0]) > 0  # descent lowers u_y
        stepped = u.detach() - 0.5 * grad
        assert float(cf_loss(stepped, y)) < float(loss)  # -log(1 - p_y) falls, i.e. p_y falls
        if big < 10:  # (at larger logits p_y rounds to 1 in float32; the CF loss still falls, above)
            assert float(torch.softmax(stepped, 1)[0, 0]) < float(torch.softmax(u.detach(), 1)[0, 0])
    assert float(cf_loss(torch.tensor([[0.0, 0.0, NEG]]), torch.tensor([1]))) == pytest.approx(torch.log(torch.tensor(2.0)).item())


def test_class_statistics_accumulate_and_roll_per_epoch():
    stats = ClassStats(2, torch.tensor([0.5, 0.5]))
    stats.update(torch.tensor([0, 0, 1]), torch.tensor([1.0, 3.0, 5.0]), torch.tensor([0.1, 0.3, -0.5]))
    assert stats.current()[0].tolist() == pytest.approx([2.0, 0.2])  # running means within the first epoch
    stats.roll(1)
    stats.update(torch.tensor([0]), torch.tensor([10.0]), torch.tensor([0.9]))
    assert stats.current()[0].tolist() == pytest.approx([2.0, 0.2])  # the last finished epoch's means
    assert stats.current()[1].tolist() == pytest.approx([5.0, -0.5])
    stats.roll(2)
    assert stats.current()[0].tolist() == pytest.approx([10.0, 0.9])


def _problem():
    """A float64 model, a training batch with characteristics, and a meta batch of three kinds."""
    torch.manual_seed(3)
    model = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, K)).double()
    net = PerturbationNet(K, hidden=6).double().train()
    torch.nn.init.normal_(net.net[-1].weight, std=0.5)

    def part(b: int) -> dict:
        return {"x": torch.randn(b, 5, dtype=torch.float64), "answer_index": torch.randint(0, K, (b,)),
                "letter_mask": torch.ones(b, K, dtype=torch.bool)}

    def logits_of(params, p):
        return model(p["x"]) if params is None else functional_call(model, params, (p["x"],))

    train = part(6)
    meta = {"clean": part(4), "factual": part(4), "counterfactual": part(3)}
    g = torch.randn(6, 10, dtype=torch.float64)
    return model, net, train, meta, g, logits_of


WEIGHTS = {"clean": 1.0, "factual": 0.7, "counterfactual": 1.3}
LR = 0.5


def _meta_loss_at(model, net, train, meta, g, logits_of) -> float:
    """The meta loss after one virtual step, recomputed from scratch (for finite differences)."""
    params = {n: p for n, p in model.named_parameters()}
    u = logits_of(None, train)
    slots = role_slots(u, train["answer_index"], train["letter_mask"], K)
    delta = slot_delta(net(g), slots, train["letter_mask"], 2.0)
    grads = torch.autograd.grad(F.cross_entropy(u + delta, train["answer_index"]), list(params.values()))
    hat = {n: p - LR * gr for (n, p), gr in zip(params.items(), grads)}
    return float(meta_objective(lambda p: logits_of(hat, p), meta, WEIGHTS).detach())


@pytest.mark.parametrize("first_order", [False, True])
def test_meta_gradient_matches_central_finite_differences(first_order):
    model, net, train, meta, g, logits_of = _problem()
    params = {n: p for n, p in model.named_parameters()}
    u = logits_of(None, train)
    slots = role_slots(u, train["answer_index"], train["letter_mask"], K)
    delta = slot_delta(net(g), slots, train["letter_mask"], 2.0)
    omega = list(net.parameters())
    _, grads = meta_gradient(logits_of, params, train, u, delta, omega, meta, WEIGHTS, LR, first_order=first_order,
                             fd_eps=1e-5)
    assert all(p.grad is None for p in [*omega, *params.values()])  # .grad untouched
    analytic, numeric = torch.cat([gr.flatten() for gr in grads]), []
    h = 1e-6
    for w in omega:
        flat = w.data.view(-1)
        for i in range(flat.numel()):
            old = float(flat[i])
            flat[i] = old + h
            up = _meta_loss_at(model, net, train, meta, g, logits_of)
            flat[i] = old - h
            down = _meta_loss_at(model, net, train, meta, g, logits_of)
            flat[i] = old
            numeric.append((up - down) / (2 * h))
    numeric_t = torch.tensor(numeric, dtype=torch.float64)
    assert float(numeric_t.norm()) > 1e-4  # the meta loss really depends on Omega
    rel = float((analytic - numeric_t).norm() / numeric_t.norm())
    assert rel < 1e-4, rel


def test_characteristics_are_ten_finite_numbers_per_item():
    torch.manual_seed(4)
    u = torch.randn(5, S).masked_fill(~_mask(5), NEG)
    y = torch.tensor([0, 1, 2, 3, 0])
    stats = ClassStats(3, torch.tensor([0.2, 0.3, 0.5]))
    g = characteristics(u, y, torch.randn(5, 8), torch.randn(5, 8), torch.tensor([0, 1, 2, 0, 1]), stats)
    assert g.shape == (5, 10) and torch.isfinite(g).all()
    p = torch.softmax(u, 1)
    assert g[:, 0].tolist() == pytest.approx((-torch.log(p[torch.arange(5), y])).tolist(), abs=1e-5)
    assert g[:, 5].tolist() == pytest.approx([0.2, 0.3, 0.5, 0.2, 0.3])  # the class prior
    assert float(stats.sums[:, 2].sum()) == 5  # the batch was accumulated
