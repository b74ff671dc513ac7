"""The two training tasks: what a batch is, its loss, and how a model is scored.

``classify``: a sequence classifier (BERT's ``classifier`` or a decoder's ``score`` head)
predicts the class; loss = cross-entropy; score = accuracy of the argmax logits.

``lm``: instruction-style causal-LM fine-tuning.  Each example is a prompt and the
class name as its answer, with no chat template, so every model (base or instruct)
sees the same text::

    Review: <sentence>\\nSentiment: positive          (rotten tomatoes)
    Question: <question>\\nType: location             (TREC, six coarse types)

The loss covers the answer tokens only: ``labels`` hold the answer's token ids at the
answer positions and -100 everywhere else (prompt and padding), and the loss is the
mean next-token cross-entropy over the answer tokens of the whole batch (so gradient
accumulation gives the same mean).  The score is the **exact-match accuracy of the
greedy answer**: the answer counts as right iff greedy decoding from the prompt emits
exactly its tokens.  It is computed from one teacher-forced forward pass — by
induction over the answer's tokens, greedy decoding reproduces the answer iff, at each
answer position, the argmax over the whole vocabulary given the prompt and the answer's
earlier tokens is the answer's next token (the two differ only where floating-point
rounding of a batched versus an incremental pass flips an exact tie).  The log also
gives ``eval_choice_accuracy``: the argmax restricted to the classes' first tokens, when
they are distinct (a looser score, common for LMs used as classifiers).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from ripkit.data import LABEL_NAMES, SPLIT_SEED, TextSplit, dataset_source, load_dataset

__all__ = ["Encoded", "LazyEncoded", "Task", "TASKS", "TEMPLATES", "encode_classify", "encode_lm", "evaluate",
           "exact_match", "load_task_data", "trim", "autocast_context"]

#: prompt pieces per data set: (before the text, after the text); the answer is " " + class name
TEMPLATES = {"rotten-tomatoes": ("Review:", "\nSentiment:"), "trec": ("Question:", "\nType:")}
IGNORE = -100  # label of positions outside the answer (torch's and Hugging Face's ignore_index)


@dataclass(frozen=True)
class Encoded:
    """A tokenised split: ids and mask (N, T); labels (N,) class index (classify) or
    (N, T) token ids with -100 outside the answer (lm); classes (N,) class index."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor
    classes: torch.Tensor

    def __len__(self) -> int:
        return len(self.classes)

    def rows(self, idx) -> "Encoded":
        return Encoded(self.input_ids[idx], self.attention_mask[idx], self.labels[idx], self.classes[idx])


@dataclass(frozen=True)
class LazyEncoded:
    """A split encoded a batch at a time: tokenising every training text up front costs seconds
    (≈ 3 s for rotten tomatoes) that a short run never uses.  Rows are encoded independently
    (padded to ``max_length``), so a row's tensors do not depend on its batch."""

    split: TextSplit
    encode: Callable  # TextSplit -> Encoded

    def __len__(self) -> int:
        return len(self.split)

    def rows(self, idx) -> Encoded:
        idx = [int(i) for i in idx]
        return self.encode(TextSplit(tuple(self.split.texts[i] for i in idx), self.split.labels[idx]))


def trim(ids: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor | None = None):
    """Drop the padding columns every row of the batch has (right padding; masked positions change nothing)."""
    length = max(1, int(mask.sum(1).max()))
    if labels is not None and labels.dim() == 2:
        return ids[:, :length], mask[:, :length], labels[:, :length]
    return ids[:, :length], mask[:, :length], labels


# ---- classify ---------------------------------------------------------------------------------
def encode_classify(tokenizer, split: TextSplit, max_length: int, n: int | None = None) -> Encoded:
    texts = list(split.texts[:n])
    t = tokenizer(texts, padding="max_length", truncation=True, max_length=max_length, return_tensors="pt")
    y = torch.from_numpy(split.labels[:len(texts)])
    return Encoded(t["input_ids"], t["attention_mask"], y, y)


def _classify_loss(logits: torch.Tensor, labels: torch.Tensor, denominator: int) -> torch.Tensor:
    loss = F.cross_entropy(logits.float(), labels)  # mean over this (micro-)batch
    # a micro-batch of a larger batch: weight by its share, so the sum is the batch mean
    return loss if len(labels) == denominator else loss * (len(labels) / denominator)


@torch.no_grad()
def evaluate(model, input_ids, attention_mask, labels, device, batch_size: int = 64, autocast=None) -> float:
    """Accuracy of argmax logits on the given (fixed) set."""
    was_training = model.training
    model.eval()
    correct = 0
    for s in range(0, len(labels), batch_size):
        ids, mask, _ = trim(input_ids[s:s + batch_size], attention_mask[s:s + batch_size])
        with autocast_context(autocast):
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
        correct += int((logits.argmax(-1).cpu() == labels[s:s + batch_size]).sum())
    model.train(was_training)
    return correct / len(labels)


def _evaluate_classify(model, data: Encoded, device, autocast=None, answers=None) -> dict:
    return {"accuracy": evaluate(model, data.input_ids, data.attention_mask, data.classes, device,
                                 autocast=autocast)}


# ---- lm -----------------------------------------------------------------------------------------
def _leading_specials(tokenizer) -> list[int]:
    """Special tokens the tokenizer puts before a text by default (a BOS for most decoders)."""
    with_specials = tokenizer("x")["input_ids"]
    plain = tokenizer("x", add_special_tokens=False)["input_ids"]
    for start in range(len(with_specials) - len(plain) + 1):
        if with_specials[start:start + len(plain)] == plain:
            return list(with_specials[:start])
    return []


def answer_ids(tokenizer, names) -> list[list[int]]:
    """Token ids of each class's answer, " " + name."""
    return [tokenizer(" " + name, add_special_tokens=False)["input_ids"] for name in names]


def encode_lm(tokenizer, split: TextSplit, data_name: str, max_length: int, n: int | None = None) -> Encoded:
    """Prompt + answer, right-padded to ``max_length``; the text is cut (never the answer) to fit."""
    before, after = TEMPLATES[data_name]
    tok = lambda s: tokenizer(s, add_special_tokens=False)["input_ids"]  # noqa: E731
    head, tail = _leading_specials(tokenizer) + tok(before), tok(after)
    answers = answer_ids(tokenizer, LABEL_NAMES[data_name])
    room = max_length - len(head) - len(tail) - max(len(a) for a in answers)
    if room < 1:
        raise ValueError(f"--max-length {max_length} leaves no room for the text: the prompt and the longest "
                         f"answer take {max_length - room} tokens")
    pad = tokenizer.pad_token_id
    texts, classes = split.texts[:n], split.labels[:n]
    ids = torch.full((len(texts), max_length), pad, dtype=torch.long)
    labels = torch.full((len(texts), max_length), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(texts), max_length), dtype=torch.long)
    bodies = tokenizer([" " + t for t in texts], add_special_tokens=False)["input_ids"] if len(texts) else []
    for i, (body, c) in enumerate(zip(bodies, classes)):
        prompt = head + body[:room] + tail
        row = prompt + answers[int(c)]
        ids[i, :len(row)] = torch.tensor(row)
        mask[i, :len(row)] = 1
        labels[i, len(prompt):len(row)] = torch.tensor(answers[int(c)])
    return Encoded(ids, mask, labels, torch.from_numpy(classes.copy()))


def _lm_loss(logits: torch.Tensor, labels: torch.Tensor, denominator: int) -> torch.Tensor:
    # position t predicts token t + 1: shift, then sum over answer tokens / answer tokens in the batch
    loss = F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), labels[:, 1:].flatten(),
                           ignore_index=IGNORE, reduction="sum")
    return loss / denominator


def exact_match(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(B,) bool: at every answer position the vocabulary argmax is the answer's next token."""
    pred = logits[:, :-1].argmax(-1)
    target = labels[:, 1:]
    return ((pred == target) | (target == IGNORE)).all(1)


@torch.no_grad()
def _evaluate_lm(model, data: Encoded, device, autocast=None, answers=None, batch_size: int = 16) -> dict:
    """Exact-match accuracy of the greedy answer (module docstring) and, where defined, choice accuracy."""
    first = [a[0] for a in answers] if answers else []
    choices = torch.tensor(first) if first and len(set(first)) == len(first) else None
    was_training = model.training
    model.eval()
    exact = chosen = 0
    for s in range(0, len(data), batch_size):
        ids, mask, labels = trim(data.input_ids[s:s + batch_size], data.attention_mask[s:s + batch_size],
                                 data.labels[s:s + batch_size])
        with autocast_context(autocast):
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float()  # (B, T, V)
        labels = labels.to(device)
        exact += int(exact_match(logits, labels).sum())
        if choices is not None:
            at = (labels[:, 1:] != IGNORE).int().argmax(1)  # position predicting the first answer token
            pick = logits[torch.arange(len(at), device=device), at][:, choices.to(device)].argmax(-1)
            chosen += int((pick.cpu() == data.classes[s:s + batch_size]).sum())
    model.train(was_training)
    return {"accuracy": exact / len(data), "choice_accuracy": chosen / len(data) if choices is not None else None}


def _answer_tokens(labels: torch.Tensor) -> int:
    return int((labels[:, 1:] != IGNORE).sum())


# ---- registry -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Task:
    """What the loop needs from a task: the model class, encoding, loss and score."""

    name: str
    auto_class: str  # transformers Auto* class that loads the model for this task
    encode: Callable  # (tokenizer, split, data name, max_length, n) -> Encoded
    loss: Callable  # (logits, labels, denominator) -> scalar; summed over micro-batches = batch mean
    denominator: Callable  # (labels of the whole batch) -> int
    evaluate: Callable  # (model, Encoded, device, autocast, answers) -> {"accuracy": ..., ...}
    score: str  # what "accuracy" means, recorded in the run's metadata


TASKS = {
    "classify": Task("classify", "AutoModelForSequenceClassification",
                     lambda tok, split, name, max_length, n=None: encode_classify(tok, split, max_length, n),
                     _classify_loss, len, _evaluate_classify, "accuracy of the argmax class"),
    "lm": Task("lm", "AutoModelForCausalLM", encode_lm, _lm_loss, _answer_tokens, _evaluate_lm,
               "exact match of the greedy answer (teacher-forced vocabulary argmax at every answer token)"),
}


def load_task_data(task: str, data_name: str, tokenizer, max_length: int, eval_size: int):
    """(train LazyEncoded, eval Encoded, info, answers) for ``task`` on data set ``data_name``."""
    train, test = load_dataset(data_name)
    spec = TASKS[task]
    info = {"name": data_name, "source": dataset_source(data_name), "split_seed": SPLIT_SEED,
            "test_fraction": 0.2, "n_train": len(train), "n_eval": min(eval_size, len(test)),
            "max_length": max_length}
    answers = None
    if task == "lm":
        answers = answer_ids(tokenizer, LABEL_NAMES[data_name])
        before, after = TEMPLATES[data_name]
        info.update(task="lm", template=f"{before} <text>{after} <answer>", labels=list(LABEL_NAMES[data_name]),
                    answer_tokens=answers, score=spec.score)
    elif data_name != "rotten-tomatoes":
        info.update(task="classify", labels=list(LABEL_NAMES[data_name]))
    spec.encode(tokenizer, TextSplit(train.texts[:1], train.labels[:1]), data_name, max_length)  # fail early
    lazy = LazyEncoded(train, lambda split: spec.encode(tokenizer, split, data_name, max_length))
    return lazy, spec.encode(tokenizer, test, data_name, max_length, eval_size), info, answers


def autocast_context(spec):
    """``spec`` = (device type, dtype) for ``torch.autocast``, or None for no autocast."""
    import contextlib

    return torch.autocast(spec[0], dtype=spec[1]) if spec else contextlib.nullcontext()
