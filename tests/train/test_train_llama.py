"""ripkit.train on a tiny random Llama with SmolLM2's tokenizer: every method on both tasks, the
answer-only loss mask, the exact-match score, resume on the lm task, Hugging Face Trainer, real SmolLM2."""
import csv
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from ripkit.adapters import adapter_modules, inject
from ripkit.adapters.inject import LLAMA_TARGETS
from ripkit.data import LABEL_NAMES, TextSplit
from ripkit.train import main
from ripkit.train.tasks import IGNORE, encode_lm, exact_match
from conftest import build_tiny_llama

METHODS = {"cosa": ["--a", "8", "--b", "8"], "lora": ["--r", "4"], "pissa": ["--r", "4"],
           "block-lora": ["--r", "4", "--k", "2", "--partition", "random"],
           "cps-lora": ["--r", "4", "--k", "2", "--repartition-every", "2", "--partitioner", "random"],
           "full": ["--lr", "1e-3"]}
QUICK = ["--steps", "3", "--batch-size", "4", "--max-length", "24", "--eval-size", "8", "--eval-every", "3",
         "--ckpt-every", "2", "--threads", "1", "--quiet", "--lr", "1e-2"]


def train(folder, out, task, method, *extra):
    code = main(["--model", str(folder), "--task", task, "--method", method, *METHODS[method], *QUICK, *extra,
                 "--out", str(out)])
    assert code == 0
    return json.loads((out / "ripkit_adapter.json").read_text())


@pytest.mark.parametrize("task", ["lm", "classify"])
@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_trains_the_seven_projections(tiny_llama_dir, tmp_path, task, method):
    meta = train(tiny_llama_dir, tmp_path, task, method)
    assert meta["targets"] == list(LLAMA_TARGETS) and meta["task"] == task
    tensors = load_file(str(tmp_path / "adapter_model.safetensors"))
    if method == "full":
        assert len(meta["layers"]) == 5 and all(n.startswith("model.layers.") for n in meta["layers"])
    else:
        assert sorted(meta["layers"]) == sorted(f"model.layers.{i}.{part}.{proj}" for i in (0, 1) for part, proj in
                                                [("self_attn", p) for p in LLAMA_TARGETS[:4]]
                                                + [("mlp", p) for p in LLAMA_TARGETS[4:]])
        key = "core" if method == "cosa" else "lora_B"
        assert all(tensors[f"{n}.{key}"].abs().max() > 0 for n in meta["layers"])  # every layer trained
    if task == "classify":
        assert meta["head_modules"] == ["score"]
        if method != "full":
            assert meta["parameters"]["head_modules"] == ["score"] and "head.score.weight" in tensors
    else:
        assert meta["head_modules"] == [] and not any(k.startswith("head.") for k in tensors)
        assert meta["dataset"]["template"] == "Review: <text>\nSentiment: <answer>"
    if method == "cps-lora":
        assert all(l["n_repartitions"] == 1 and l["partitioner"] == "random" for l in meta["layers"].values())
    if method == "pissa":
        assert all(l["init"] == "pissa" and l["method"] == "lora" for l in meta["layers"].values())
    assert (tmp_path / "peft").is_dir() == (method in ("lora", "pissa", "block-lora", "cps-lora"))
    with open(tmp_path / "log.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["step"]) for r in rows] == [0, 1, 2, 3] and all(float(r["tokens_per_s"]) > 0 for r in rows[1:])


def test_trec_lm_and_choice_accuracy(tiny_llama_dir, tmp_path):
    meta = train(tiny_llama_dir, tmp_path, "lm", "lora", "--data", "trec")
    assert meta["dataset"]["labels"] == list(LABEL_NAMES["trec"]) and meta["dataset"]["n_train"] == 4305
    with open(tmp_path / "log.csv") as fh:
        first = next(csv.DictReader(fh))
    assert 0 <= float(first["eval_choice_accuracy"]) <= 1
    assert meta["metrics"]["baseline_choice_accuracy"] == float(first["eval_choice_accuracy"])


def test_answer_only_loss_mask(smollm2_tokenizer):
    tok = smollm2_tokenizer
    split = TextSplit(("A fine film.", "word " * 50, "Bad."), np.array([1, 0, 0]))
    enc = encode_lm(tok, split, "rotten-tomatoes", max_length=16)
    for i, c in enumerate(split.labels):
        answer = tok(" " + LABEL_NAMES["rotten-tomatoes"][c], add_special_tokens=False)["input_ids"]
        at = torch.nonzero(enc.labels[i] != IGNORE).flatten().tolist()
        n = int(enc.attention_mask[i].sum())
        assert at == list(range(n - len(answer), n))  # the answer's tokens, last of the row, nothing else
        assert enc.labels[i, at].tolist() == answer == enc.input_ids[i, at].tolist()
        assert (enc.labels[i, n:] == IGNORE).all() and (enc.input_ids[i, n:] == tok.pad_token_id).all()
        assert (enc.attention_mask[i, :n] == 1).all() and (enc.attention_mask[i, n:] == 0).all()
        prompt = tok.decode(enc.input_ids[i, :n - len(answer)])
        assert prompt.startswith("Review:") and prompt.endswith("\nSentiment:")
    assert int(enc.attention_mask[1].sum()) == 16  # the long review was cut, its answer kept


def test_exact_match_equals_greedy_decoding(smollm2_tokenizer):
    """The teacher-forced score against model.generate: answers = the model's own greedy tokens → all
    right; the last answer token changed → all wrong."""
    tok, model = smollm2_tokenizer, build_tiny_llama(smollm2_tokenizer, seed=3)
    prompts = [tok("Review: a good film\nSentiment:")["input_ids"], tok("Question: who ?\nType:")["input_ids"]]
    for prompt in prompts:
        ids = torch.tensor([prompt])
        greedy = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=3, do_sample=False,
                                pad_token_id=tok.pad_token_id)[0, len(prompt):].tolist()
        row = torch.tensor([prompt + greedy])
        labels = torch.full_like(row, IGNORE)
        labels[0, len(prompt):] = torch.tensor(greedy)
        with torch.no_grad():
            logits = model(input_ids=row).logits
        assert exact_match(logits, labels).tolist() == [True]
        labels[0, -1] = (greedy[-1] + 1) % len(tok)
        assert exact_match(logits, labels).tolist() == [False]


@pytest.mark.parametrize("method", ["lora", "cps-lora"])
def test_lm_resume_is_bit_identical(tiny_llama_dir, tmp_path, method):
    train(tiny_llama_dir, tmp_path / "straight", "lm", method)
    assert main(["--model", str(tiny_llama_dir), "--task", "lm", "--method", method, *METHODS[method], *QUICK,
                 "--stop-after", "2", "--out", str(tmp_path / "resumed")]) == 0
    train(tiny_llama_dir, tmp_path / "resumed", "lm", method, "--resume")
    want = load_file(str(tmp_path / "straight" / "adapter_model.safetensors"))
    got = load_file(str(tmp_path / "resumed" / "adapter_model.safetensors"))
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)
    logs = [(tmp_path / d / "log.csv").read_text().splitlines() for d in ("straight", "resumed")]
    strip = lambda lines: [",".join(l.split(",")[:4] + l.split(",")[6:7]) for l in lines]  # noqa: E731 (no timings)
    assert strip(logs[0]) == strip(logs[1])


def test_adapters_train_under_hugging_face_trainer(smollm2_tokenizer, tmp_path):
    from transformers import Trainer, TrainingArguments

    model = build_tiny_llama(smollm2_tokenizer)
    inject(model, LLAMA_TARGETS, "cps-lora", r=4, k=2)
    enc = encode_lm(smollm2_tokenizer, TextSplit(("good", "bad", "fine", "awful"), np.array([1, 0, 1, 0])),
                    "rotten-tomatoes", max_length=12)
    rows = [{"input_ids": enc.input_ids[i], "attention_mask": enc.attention_mask[i], "labels": enc.labels[i]}
            for i in range(len(enc))]
    before = {n: m.lora_B.detach().clone() for n, m in adapter_modules(model).items()}
    frozen = model.model.embed_tokens.weight.detach().clone()
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=2,
                             learning_rate=1e-2, report_to=[], use_cpu=True, save_strategy="no",
                             disable_tqdm=True, logging_steps=1)
    result = Trainer(model=model.train(), args=args, train_dataset=rows).train()
    assert result.global_step == 2 and np.isfinite(result.training_loss)
    assert all(not torch.equal(before[n], m.lora_B) for n, m in adapter_modules(model).items())
    assert torch.equal(frozen, model.model.embed_tokens.weight)


@pytest.mark.slow
def test_real_smollm2_loads_and_trains_one_step(smollm2_tokenizer, tmp_path):
    """The packaged SmolLM2-135M-Instruct (GGUF, dequantised): load, evaluate, one LoRA step (< 1 min)."""
    meta = train("smollm2", tmp_path, "lm", "lora", "--steps", "1", "--batch-size", "2", "--eval-size", "2",
                 "--max-length", "32")
    assert meta["base_model"] == "smollm2" and len(meta["base_model_hash"]) == 64
    assert meta["model"]["gguf"]["quantization"] == "Q4_1" and "(4-bit)" in meta["model"]["gguf"]["dequantized"]
    assert len(meta["layers"]) == 30 * 7 and meta["model"]["class"] == "LlamaForCausalLM"


def test_pad_token_is_set_when_missing(smollm2_tokenizer, tmp_path):
    """A decoder without a pad token (tokenizer and config): classification batches of 4 still work."""
    import copy

    folder = tmp_path / "no-pad"
    tok = copy.deepcopy(smollm2_tokenizer)
    tok.pad_token = None
    model = build_tiny_llama(smollm2_tokenizer)
    model.config.pad_token_id = None
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    assert json.loads((folder / "config.json").read_text()).get("pad_token_id") is None
    from transformers import AutoTokenizer

    assert AutoTokenizer.from_pretrained(str(folder)).pad_token is None
    meta = train(folder, tmp_path / "run", "classify", "lora")
    assert meta["model"]["pad_token"] == smollm2_tokenizer.eos_token
