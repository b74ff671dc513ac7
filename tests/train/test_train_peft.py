"""The peft folder a LoRA-family run writes loads in peft onto the original base with ripkit's outputs (1e-6)."""
import pytest
import torch

from ripkit.adapters.io import apply_adapter
from ripkit.train import main

RUNS = {"lora": ["--r", "4", "--alpha", "8"],
        "pissa": ["--r", "4", "--alpha", "2"],
        "block-lora": ["--r", "4", "--k", "2", "--partition", "random"],
        "cps-lora": ["--r", "4", "--k", "2", "--repartition-every", "2"],
        "cps-lora-random": ["--method", "cps-lora", "--r", "4", "--k", "2", "--repartition-every", "2",
                            "--partitioner", "random"]}


def base(folder, task, seed=0):
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    torch.manual_seed(seed)
    if task == "lm":
        return AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()
    return AutoModelForSequenceClassification.from_pretrained(str(folder), num_labels=2, dtype=torch.float32).eval()


@pytest.mark.parametrize("task", ["lm", "classify"])
@pytest.mark.parametrize("name", list(RUNS))
def test_peft_export_matches_ripkit(tiny_llama_dir, tmp_path, name, task):
    from peft import PeftModel

    extra = RUNS[name] if name.startswith("cps-lora-") else ["--method", name, *RUNS[name]]
    assert main(["--model", str(tiny_llama_dir), "--task", task, *extra, "--steps", "5", "--batch-size", "4",
                 "--max-length", "24", "--eval-size", "4", "--lr", "2e-2", "--threads", "1", "--quiet",
                 "--out", str(tmp_path)]) == 0
    ripkit_model = base(tiny_llama_dir, task, seed=1)  # another head init: the checkpoint's head replaces it
    meta = apply_adapter(ripkit_model, tmp_path)
    if name.startswith("cps-lora"):
        assert all(l["n_repartitions"] == 2 for l in meta["layers"].values())
    peft_model = PeftModel.from_pretrained(base(tiny_llama_dir, task, seed=2), str(tmp_path / "peft")).eval()
    ids = torch.randint(3, 2000, (3, 11), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want, got = ripkit_model(input_ids=ids).logits, peft_model(input_ids=ids).logits
        plain = base(tiny_llama_dir, task, seed=1)(input_ids=ids).logits
    assert (want - plain).abs().max() > 1e-4  # the adapter changed the function
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
