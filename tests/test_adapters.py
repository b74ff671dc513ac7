"""ripkit.adapters against hand-computed torch expressions and peft's GraLoRA."""
import math

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose
from torch import nn

from ripkit import partition as P
from ripkit.adapters import (BlockLoRALinear, CoSALinear, LoRALinear, adapter_modules, inject,
                             parameter_report)
from ripkit.projections import layer_seed, projection_pair
from _models import randomize_, tiny_bert


@pytest.fixture
def x():
    return torch.randn(3, 5, 12, generator=torch.Generator().manual_seed(0))


def test_cosa_matches_hand_computed_eq9(x):
    base = nn.Linear(12, 10)
    mod = CoSALinear(base, 4, 3, seed=7, scaling=0.5)
    assert torch.equal(mod(x), base(x))  # Y = 0 at init
    randomize_(mod)
    left, right = projection_pair(10, 12, 4, 3, 7, scale="cosa")
    left, right = torch.tensor(left, dtype=torch.float32), torch.tensor(right, dtype=torch.float32)
    want = x @ base.weight.T + base.bias + 0.5 * x @ (left @ mod.core @ right).T
    torch.testing.assert_close(mod(x), want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(mod.delta_weight(), 0.5 * left @ mod.core @ right)
    assert [p for p in mod.parameters() if p.requires_grad] != []
    assert "left" not in mod.state_dict() and "core" in mod.state_dict()


def test_lora_matches_hand_computed(x):
    base = nn.Linear(12, 10)
    mod = LoRALinear(base, 4, alpha=8, seed=3)
    assert torch.equal(mod(x), base(x))
    assert mod.lora_A.abs().max() <= 1 / math.sqrt(12)
    randomize_(mod)
    want = base(x) + 2.0 * (x @ mod.lora_A.T) @ mod.lora_B.T
    torch.testing.assert_close(mod(x), want)


def dense_blocks(mod: BlockLoRALinear) -> torch.Tensor:
    """The block matrix written out entry by entry from the stored factors."""
    k, rb = mod.k, mod.r // mod.k
    m, n = mod.shape
    reordered = torch.zeros(m, n)
    rc, cc = mod.row_cuts, mod.col_cuts
    for i in range(k):
        for j in range(k):
            reordered[rc[i]:rc[i + 1], cc[j]:cc[j + 1]] = (
                mod.lora_B[rc[i]:rc[i + 1], j * rb:(j + 1) * rb] @ mod.lora_A[i * rb:(i + 1) * rb, cc[j]:cc[j + 1]])
    out = torch.zeros(m, n)
    rp, cp = mod.row_perm.tolist(), mod.col_perm.tolist()
    for i in range(m):
        for j in range(n):
            out[rp[i], cp[j]] = reordered[i, j]
    return mod.scaling * out


@pytest.mark.parametrize("partition", ["contiguous", "random", "clustered"])
@pytest.mark.parametrize("k", [1, 2, 3])
def test_block_lora_equals_its_dense_block_matrix(partition, k, x):
    base = nn.Linear(12, 9)
    mod = BlockLoRALinear(base, 6, k, partition=partition, alpha=3, seed=5)
    assert torch.equal(mod(x), base(x))
    randomize_(mod)
    dense = dense_blocks(mod)
    torch.testing.assert_close(mod.delta_weight(), dense, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(mod(x), base(x) + x @ dense.T, rtol=1e-5, atol=1e-6)
    assert sum(p.numel() for p in mod.parameters(recurse=False)) == (12 + 9) * 6


def test_block_lora_k1_is_lora(x):
    base = nn.Linear(12, 10)
    blk, lora = BlockLoRALinear(base, 4, 1, seed=2), LoRALinear(base, 4, seed=2)
    randomize_(blk), randomize_(lora)
    torch.testing.assert_close(blk(x), lora(x))


def test_contiguous_block_lora_equals_peft_gralora():
    from peft.tuners.gralora.config import GraloraConfig
    from peft.tuners.gralora.layer import Linear as GraloraLinear

    base = nn.Linear(12, 8)
    mod = BlockLoRALinear(base, 4, 2, partition="contiguous", alpha=6, seed=0)
    randomize_(mod)
    ref = GraloraLinear(nn.Linear(12, 8), "default", "q", GraloraConfig(r=4, gralora_k=2, alpha=6), r=4)
    with torch.no_grad():  # gralora_A[j] = lora_A[:, J_j]ᵀ, gralora_B[i] = lora_B[I_i, :]ᵀ
        ref.gralora_A["default"].copy_(torch.stack([mod.lora_A[:, :6].T, mod.lora_A[:, 6:].T]))
        ref.gralora_B["default"].copy_(torch.stack([mod.lora_B[:4].T, mod.lora_B[4:].T]))
    torch.testing.assert_close(mod.delta_weight(), ref.get_delta_weight("default"), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("partitioner", ["cosine", "spectral", "balance", "random"])
def test_repartition_keeps_function_and_merges(partitioner):
    model = tiny_bert()
    inject(model, method="cps-lora", r=4, k=2, base_seed=1)
    ids = torch.randint(0, 60, (2, 7), generator=torch.Generator().manual_seed(0))
    for mod in adapter_modules(model).values():
        randomize_(mod)
    before = model(input_ids=ids).logits
    totals = {n: m.delta_weight().clone() for n, m in adapter_modules(model).items()}
    for mod in adapter_modules(model).values():
        w_before = mod.base.weight.clone()
        block = mod.block_delta_weight()
        part = mod.repartition(partitioner, seed=0)
        assert isinstance(part, P.Partition)
        torch.testing.assert_close(mod.base.weight, w_before + block)  # Algorithm 1, line 4
        assert torch.all(mod.lora_B == 0) and mod.n_repartitions == 1
    after = model(input_ids=ids).logits
    torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-5)
    for name, mod in adapter_modules(model).items():  # recorded total ΔW is unchanged
        torch.testing.assert_close(mod.delta_weight(), totals[name], rtol=1e-5, atol=1e-6)


def test_repartition_needs_clustered():
    mod = BlockLoRALinear(nn.Linear(8, 8), 4, 2, partition="random")
    with pytest.raises(ValueError, match="partition='clustered'"):
        mod.repartition()


def test_inject_freezes_everything_but_adapters_and_head():
    model = tiny_bert()
    names = inject(model, method="cosa", a=8, b=4, base_seed=3)
    assert len(names) == 12  # 6 linear layers × 2 encoder layers
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {f"{n}.core" for n in names} | {"classifier.weight", "classifier.bias"}
    mods = adapter_modules(model)
    assert {n: m.seed for n, m in mods.items()} == {n: layer_seed(3, n) for n in names}
    report = parameter_report(model)
    assert report.adapter == 12 * 8 * 4 and report.head == 32 * 2 + 2 and report.n_layers == 12
    assert report.to_dict()["fraction"] == pytest.approx(report.trainable / report.total)


def test_inject_full_and_errors():
    model = tiny_bert()
    inject(model, method="full")
    assert all(p.requires_grad for p in model.parameters())
    with pytest.raises(ValueError, match="match no nn.Linear"):
        inject(tiny_bert(), targets=["nothing"], method="lora")
    with pytest.raises(ValueError, match="method='dora' must be one of"):
        inject(tiny_bert(), method="dora")
    with pytest.raises(ValueError, match="r=6 must be divisible by k=4"):
        BlockLoRALinear(nn.Linear(8, 8), 6, 4)
    with pytest.raises(TypeError, match="base must be an nn.Linear"):
        CoSALinear(nn.Conv1d(2, 2, 1), 2, 2, seed=0)
    with pytest.raises(ValueError, match="r=9 must be <= min"):
        LoRALinear(nn.Linear(8, 8), 9)


def test_projection_buffers_follow_base_dtype():
    base = nn.Linear(6, 5).double()
    mod = CoSALinear(base, 3, 2, seed=1)
    left, _ = projection_pair(5, 6, 3, 2, 1, scale="cosa")
    assert mod.left.dtype == torch.float64
    assert_allclose(mod.left.numpy(), left, rtol=0, atol=0)
    np.testing.assert_equal(mod.core.detach().numpy(), np.zeros((3, 2)))


@pytest.mark.parametrize("make", [lambda b: CoSALinear(b, 2, 2, seed=0), lambda b: LoRALinear(b, 2),
                                  lambda b: BlockLoRALinear(b, 2, 2)])
def test_adapters_refuse_non_linear_base(make):
    with pytest.raises(TypeError, match="base must be an nn.Linear, got Conv1d"):
        make(nn.Conv1d(3, 3, 1))


# ---- PiSSA, the random repartitioner, exact factorisations, default targets, io, peft export ----
def test_pissa_init_equals_peft_pissa(x):
    """A₀, B₀ and W_res against peft's own ``init_lora_weights='pissa'`` on the same layer."""
    import copy

    from peft import LoraConfig, get_peft_model

    holder = nn.Sequential(nn.Linear(12, 10))
    w0 = holder[0].weight.detach().clone()
    ref = get_peft_model(copy.deepcopy(holder), LoraConfig(r=4, lora_alpha=8, target_modules=["0"],
                                                           init_lora_weights="pissa")).base_model.model[0]
    mod = LoRALinear(copy.deepcopy(holder[0]), 4, alpha=8, init="pissa")
    torch.testing.assert_close(mod.lora_A, ref.lora_A["default"].weight, rtol=0, atol=0)
    torch.testing.assert_close(mod.lora_B, ref.lora_B["default"].weight, rtol=0, atol=0)
    torch.testing.assert_close(mod.base.weight, ref.base_layer.weight, rtol=0, atol=0)
    torch.testing.assert_close(mod(x), x @ w0.T + holder[0].bias, rtol=1e-5, atol=1e-6)  # function kept
    assert torch.all(mod.delta_weight() == 0)
    randomize_(mod)
    want = mod.scaling * (mod.lora_B @ mod.lora_A - mod.lora_B0 @ mod.lora_A0)
    torch.testing.assert_close(mod.delta_weight(), want)
    torch.testing.assert_close(mod.base.weight + mod.scaling * mod.lora_B @ mod.lora_A, w0 + mod.delta_weight(),
                               rtol=1e-5, atol=1e-6)  # W_res + s·BA = W₀ + ΔW
    assert mod.adapter_meta()["init"] == "pissa" and set(mod.adapter_tensors()) == {
        "lora_A", "lora_B", "lora_A0", "lora_B0"}


@pytest.mark.parametrize("make", [lambda b: LoRALinear(b, 3, alpha=6, seed=1),
                                  lambda b: LoRALinear(b, 3, alpha=6, init="pissa"),
                                  lambda b: BlockLoRALinear(b, 4, 2, partition="random", alpha=2, seed=3),
                                  lambda b: BlockLoRALinear(b, 4, 2, partition="clustered", seed=3)])
def test_delta_factors_multiply_to_delta_weight(make):
    mod = make(nn.Linear(12, 10))
    randomize_(mod)
    if getattr(mod, "kind", None) == "clustered":
        mod.repartition("random")
        randomize_(mod, seed=4)
    b, a = mod.delta_factors()
    torch.testing.assert_close(b @ a, mod.delta_weight(), rtol=1e-5, atol=1e-6)


def test_random_repartitioner_is_seeded_per_layer_and_repartition():
    def run(seed):
        model = tiny_bert()
        inject(model, method="cps-lora", r=4, k=2, base_seed=seed, partitioner="random")
        perms = {}
        for rep in range(2):
            for name, mod in adapter_modules(model).items():
                randomize_(mod, seed=rep)
                mod.repartition()  # the layer's own partitioner
                perms[name, rep] = (mod.row_perm.tolist(), mod.col_perm.tolist())
        return model, perms

    model, perms = run(0)
    assert perms == run(0)[1]  # reproducible
    assert perms != run(1)[1]  # a different base seed, different partitions
    names = list(adapter_modules(model))
    same_shape = [n for n in names if adapter_modules(model)[n].shape == adapter_modules(model)[names[0]].shape]
    assert len({str(perms[n, 0]) for n in same_shape}) == len(same_shape)  # per layer
    assert all(perms[n, 0] != perms[n, 1] for n in names)  # per repartition
    meta = adapter_modules(model)[names[0]].adapter_meta()
    assert meta["partitioner"] == "random" and meta["n_repartitions"] == 2


def test_default_targets_by_architecture():
    from transformers import LlamaConfig, LlamaForCausalLM

    from ripkit.adapters.inject import DEFAULT_TARGETS, LLAMA_TARGETS, default_targets, find_head

    assert default_targets(tiny_bert()) == DEFAULT_TARGETS and find_head(tiny_bert()) == ("classifier",)
    llama = LlamaForCausalLM(LlamaConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                         num_key_value_heads=1, intermediate_size=32))
    assert default_targets(llama) == LLAMA_TARGETS and find_head(llama) == ()
    llama.config.model_type = "something-new"  # falls back to the module names
    assert default_targets(llama) == LLAMA_TARGETS
    with pytest.raises(ValueError, match="no default targets"):
        default_targets(nn.Sequential(nn.Linear(3, 3)))


@pytest.mark.parametrize("method,config", [("pissa", {"r": 4, "alpha": 2}),
                                           ("cps-lora", {"r": 4, "k": 2, "partitioner": "random"})])
def test_io_round_trip_onto_the_original_base(tmp_path, method, config):
    from ripkit.adapters.io import apply_adapter, save_adapter

    model = tiny_bert()
    inject(model, method=method, base_seed=5, **config)
    for mod in adapter_modules(model).values():
        randomize_(mod)
        if method == "cps-lora":
            mod.repartition()
            randomize_(mod, seed=2)
    save_adapter(model, tmp_path, metadata={"method": method})
    fresh = tiny_bert()
    meta = apply_adapter(fresh, tmp_path)
    ids = torch.randint(0, 60, (2, 6), generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(fresh(input_ids=ids).logits, model(input_ids=ids).logits, rtol=0, atol=1e-6)
    for name, mod in adapter_modules(fresh).items():
        assert torch.equal(mod.base.weight, adapter_modules(model)[name].base.weight)  # same W_res / merges
    if method == "cps-lora":
        assert all(l["partitioner"] == "random" for l in meta["layers"].values())


def test_peft_export_with_layers_of_different_rank(tmp_path):
    """Layers with other (r, alpha) are padded with zeros and have their scaling folded in: still exact."""
    from peft import PeftModel

    from ripkit.adapters.to_peft import export_peft

    model = tiny_bert()
    inject(model, targets=["query", "value"], method="lora", r=4, alpha=8, base_seed=1)
    layer = model.bert.encoder.layer[0].attention.self
    layer.value = LoRALinear(layer.value.base, 2, alpha=1, seed=3)
    for mod in adapter_modules(model).values():
        randomize_(mod)
    export_peft(model, tmp_path)
    cfg = __import__("json").loads((tmp_path / "adapter_config.json").read_text())
    assert cfg["r"] == 4 and cfg["lora_alpha"] == 4 and cfg["modules_to_save"] == ["classifier"]
    base = tiny_bert()
    randomize_(base.classifier, seed=9)  # the exported head must replace this one
    peft_model = PeftModel.from_pretrained(base, str(tmp_path)).eval()
    ids = torch.randint(0, 60, (2, 6), generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(peft_model(input_ids=ids).logits, model(input_ids=ids).logits, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="no peft LoRA form"):
        m = tiny_bert()
        inject(m, method="cosa", a=4, b=4)
        export_peft(m, tmp_path / "cosa")


@pytest.mark.parametrize("order", ["eq9", "yr", "ly", "auto"])
@pytest.mark.parametrize("a, b", [(4, 3), (2, 5)])
def test_cosa_every_order_computes_eq9(order, a, b, x):
    base = nn.Linear(12, 10)
    ref = CoSALinear(base, a, b, seed=7, scaling=0.5)
    mod = CoSALinear(base, a, b, seed=7, scaling=0.5, order=order)
    randomize_(ref)
    mod.core.data.copy_(ref.core.data)
    torch.testing.assert_close(mod(x), ref(x), rtol=1e-5, atol=1e-6)
    xg = x.clone().requires_grad_(True)
    mod(xg).square().sum().backward()
    xr = x.clone().requires_grad_(True)
    ref(xr).square().sum().backward()
    torch.testing.assert_close(mod.core.grad, ref.core.grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(xg.grad, xr.grad, rtol=1e-4, atol=1e-5)


def test_cosa_default_order_is_eq9_bit_for_bit(x):
    """The default forward is eq. 9's L(Y(Rx)) exactly as before (committed runs depend on its bits)."""
    base = nn.Linear(12, 10)
    for scaling in (1.0, 0.5):
        mod = CoSALinear(base, 4, 3, seed=7, scaling=scaling)
        randomize_(mod)
        before = base(x) + scaling * (((x @ mod.right.T) @ mod.core.T) @ mod.left.T)
        assert mod.order == "eq9" and torch.equal(mod(x), before)


def test_cosa_auto_order_follows_the_costs():
    from ripkit.adapters.cosa import step_costs

    # a = b: eq. 9 is never worse; a < b: YR first; a > b: LY first (MiniLM 384x384, 1024 tokens)
    for (a, b), want in {(128, 128): "eq9", (32, 128): "yr", (128, 32): "ly"}.items():
        costs = step_costs(384, 384, a, b, 1024)
        assert min(costs, key=costs.get) == want
    with pytest.raises(ValueError, match="order='x' must be one of"):
        CoSALinear(nn.Linear(4, 4), 2, 2, seed=0, order="x")
