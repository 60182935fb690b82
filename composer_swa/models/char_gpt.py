"""A small GPT-style character language model (decoder-only transformer)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["CharGPT"]


class _Block(torch.nn.Module):
    def __init__(self, width: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = torch.nn.LayerNorm(width)
        self.qkv = torch.nn.Linear(width, 3 * width)
        self.proj = torch.nn.Linear(width, width)
        self.norm2 = torch.nn.LayerNorm(width)
        self.mlp = torch.nn.Sequential(torch.nn.Linear(width, 4 * width), torch.nn.GELU(), torch.nn.Linear(4 * width, width))
        self.heads = heads
        self.dropout = torch.nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        q, k, v = self.qkv(self.norm1(x)).split(width, dim=2)
        q, k, v = (t.view(batch, length, self.heads, width // self.heads).transpose(1, 2) for t in (q, k, v))
        drop = self.dropout.p if self.training else 0.0
        attended = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=drop)
        x = x + self.dropout(self.proj(attended.transpose(1, 2).reshape(batch, length, width)))
        return x + self.dropout(self.mlp(self.norm2(x)))


class CharGPT(torch.nn.Module):
    """Token and position embeddings, pre-norm transformer blocks, and a head tied to the embedding.

    Returns logits ``(N, T, vocab_size)``; the Trainer's default loss is the per-token cross-entropy.

    Args:
        vocab_size: Distinct characters (filled in from a ``char_text`` dataset by the config builder).
        block_size: Longest context.
        layers: Transformer blocks.
        heads: Attention heads; must divide ``width``.
        width: Embedding width.
        dropout: Dropout probability.

    Example:
        >>> CharGPT(vocab_size=30, block_size=16)(torch.zeros(2, 16, dtype=torch.long)).shape
        torch.Size([2, 16, 30])
    """

    def __init__(
        self, vocab_size: int, block_size: int, layers: int = 2, heads: int = 4, width: int = 64, dropout: float = 0.0
    ) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"heads must divide width, got heads={heads!r}, width={width!r}")
        self.block_size = block_size
        self.token_embedding = torch.nn.Embedding(vocab_size, width)
        self.position_embedding = torch.nn.Embedding(block_size, width)
        self.blocks = torch.nn.Sequential(*[_Block(width, heads, dropout) for _ in range(layers)])
        self.norm = torch.nn.LayerNorm(width)
        self.head = torch.nn.Linear(width, vocab_size, bias=False)
        self.head.weight = self.token_embedding.weight  # weight tying (Press & Wolf 2017)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        length = ids.shape[1]
        if length > self.block_size:
            raise ValueError(f"CharGPT got a sequence of {length} tokens, longer than block_size={self.block_size}")
        positions = torch.arange(length, device=ids.device)
        x = self.token_embedding(ids) + self.position_embedding(positions)
        return self.head(self.norm(self.blocks(x)))
