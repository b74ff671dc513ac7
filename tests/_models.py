"""Tiny seeded models shared by the adapter, checkpoint and trainer tests (no download)."""
import torch


def tiny_bert(seed=0):
    """A 2-layer, hidden-32 random BERT classifier built from a config."""
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=60, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=32, num_labels=2)
    return BertForSequenceClassification(cfg).eval()


def randomize_(module, seed=1):
    """Overwrite a module's own parameters with seeded N(0, 0.1²) values (e.g. non-zero adapter factors)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters(recurse=False):
            p.copy_(torch.randn(p.shape, generator=gen) * 0.1)


def synthetic_data(n=96, n_eval=32, length=8, seed=0):
    """Label 1 iff token 5 occurs: learnable by a tiny model in a few steps."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(6, 60, (n + n_eval, length), generator=gen)
    y = torch.randint(0, 2, (n + n_eval,), generator=gen)
    ids[y == 1, 3] = 5
    mask = torch.ones_like(ids)
    mask[::3, -2:] = 0
    return (ids[:n], mask[:n], y[:n]), (ids[n:], mask[n:], y[n:]), {"name": "synthetic", "n_train": n}
