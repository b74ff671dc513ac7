"""ripkit.formats.adalora against peft's own merge (float64 copy, merge_and_unload, minus the float64 base)."""
import json
import warnings

import pytest

from ripkit.formats import load_adapter

from ._builders import merged_deltas, tiny_gpt2, tiny_llama
from ._family import builder, check_corruption, check_exact, check_low_rank, check_without_base, refuses_edited_config


def adalora(**kw):
    from peft import AdaLoraConfig

    return AdaLoraConfig(**{"total_step": 10, **kw})


CASES = {
    "llama": (tiny_llama, dict(init_r=6, target_r=2, lora_alpha=16, target_modules=["q_proj", "v_proj", "down_proj"])),
    "gpt2-fan-in-fan-out": (tiny_gpt2, dict(init_r=4, target_modules=["c_attn"], fan_in_fan_out=True)),
}


def budget_checkpoint(folder):
    """AdaLoRA trained through its budget allocation: rank_pattern prunes triplets, down to rank 0 in some layers."""
    import torch
    from peft import get_peft_model

    base = tiny_llama()
    base.save_pretrained(folder / "base")
    w0 = {k: v.detach().double().clone() for k, v in base.state_dict().items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = get_peft_model(base, adalora(init_r=6, target_r=2, tinit=2, tfinal=3, total_step=12, lora_alpha=16,
                                             target_modules=["q_proj", "v_proj"]))
        opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
        gen = torch.Generator().manual_seed(0)
        for step in range(12):
            loss = model(input_ids=torch.randint(0, 60, (2, 8), generator=gen)).logits.pow(2).mean()
            loss.backward()
            opt.step()
            model.base_model.update_and_allocate(step)
            opt.zero_grad()
        model.save_pretrained(folder / "adapter")
    return merged_deltas(model, w0)


@pytest.fixture(scope="module")
def budget(tmp_path_factory):
    folder = tmp_path_factory.mktemp("budget")
    return folder, budget_checkpoint(folder)


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    return builder(tmp_path_factory, CASES, adalora)  # a case of its own, as "budget" joins the parameters


@pytest.fixture(params=sorted(CASES) + ["budget"])
def case(request, build):
    if request.param == "budget":
        return request.param, *request.getfixturevalue("budget")
    return request.param, *build(request.param)


def test_exact_against_peft_merge(case):
    _, folder, reference = case
    assert check_exact(folder, reference) < 1e-10


def test_needs_no_base(case):
    _, folder, reference = case
    check_without_base(folder, reference, needs_base=False)


def test_low_rank(case):
    check_low_rank(case[1])


def test_budget_allocation_is_read_from_rank_pattern(budget):
    folder, _ = budget
    pattern = json.loads((folder / "adapter" / "adapter_config.json").read_text())["rank_pattern"]
    layers = {l.name: l for l in load_adapter(folder / "adapter")}
    assert set(pattern) == {f"{n}.lora_E" for n in layers}
    for name, layer in layers.items():
        assert layer.meta["r"] == sum(pattern[f"{name}.lora_E"]) and layer.meta["init_r"] == 6
        assert layer.scaling == 16 / (6 + 1e-5)  # ranknum stays init_r after pruning
    assert min(l.meta["r"] for l in layers.values()) < 6


@pytest.mark.parametrize("edit,match", [
    ({"init_r": 5}, r"expected \(5, in\), \(5, 1\), \(out, 5\) with r = init_r = 5"),
    ({"rank_pattern": {"model.layers.0.self_attn.q_proj.lora_E": [True] * 5 + [False]}},
     r"expected \(5, in\).* \(the True entries of rank_pattern\)"),
    ({"rank_pattern": {"model.layers.9.self_attn.q_proj.lora_E": [True] * 6}}, "names no AdaLoRA layer"),
    ({"rank_pattern": {"model.layers.0.self_attn.q_proj.lora_E": [True] * 4}}, "expected a list of init_r=6 booleans"),
    ({"use_dora": True}, "use_dora=true with AdaLoRA is not supported"),
])
def test_inconsistent_configs_are_refused(tmp_path, edit, match):
    refuses_edited_config(tmp_path, tiny_llama(), adalora(init_r=6, target_modules=["q_proj"]), edit, match)


@pytest.mark.parametrize("suffix,how,match", [
    ("lora_E", "drop", r"missing \['lora_E'\]"),
    ("lora_A", "shape", r"factors give ΔW of shape \(16, 33\) \(out, in\), the base weight has shape \(16, 32\)"),
    ("lora_E", "shape", r"lora_E \((\d), 2\).* expected \(\1, in\), \(\1, 1\)"),
    ("lora_B", "nan", "contains NaN or infinite values"),
    ("lora_A", "extra", "belongs to no ADALORA layer"),
])
def test_corrupt_files_are_refused(budget, tmp_path, suffix, how, match):
    check_corruption(budget[0], tmp_path, suffix, how, match)
