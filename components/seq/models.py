"""The two sequence models: a last-step regressor and a character-level language model.

Both take their recurrent stack from ``make_recurrent``, so ``cell`` (lstm | gru) and ``impl``
(fused | explicit) change the kernel, never the model. Models compute outputs only; the trainer
owns the optimizer.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from components.seq.recurrent import Cell, Impl, State, make_recurrent


class LastStepRegressor(nn.Module):
    """The textbook model: read x [B, T, input_dim], predict from the last step's hidden state.

    With the defaults (``input_dim=10, hidden_dim=20, output_dim=1``) this is the example that
    tutorials write as ``out, _ = self.lstm(x); return self.fc(out[:, -1, :])``.
    """

    def __init__(
        self,
        input_dim: int = 10,
        hidden_dim: int = 20,
        output_dim: int = 1,
        cell: Cell = "lstm",
        impl: Impl = "fused",
        num_layers: int = 1,
        reset_after: bool = False,
    ) -> None:
        super().__init__()
        self.rnn = make_recurrent(cell, impl, input_dim, hidden_dim, num_layers, reset_after=reset_after)
        self.fc = nn.Linear(hidden_dim, output_dim)

    def forward(self, x: Tensor) -> Tensor:
        """x: [B, T, input_dim] → [B, output_dim]."""
        out, _ = self.rnn(x)
        return self.fc(out[:, -1, :])


class CharLM(nn.Module):
    """Embedding → stacked LSTM/GRU → linear to logits over the vocabulary (softmax in the loss).

    Dropout is applied to the embeddings, between recurrent layers and before the output layer.
    The recurrent state is passed in and out so truncated BPTT can carry it across windows.
    """

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int = 64,
        hidden_size: int = 256,
        num_layers: int = 2,
        dropout: float = 0.0,
        cell: Cell = "lstm",
        impl: Impl = "fused",
        reset_after: bool = False,
    ) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.embed = nn.Embedding(vocab_size, embed_dim)
        self.drop = nn.Dropout(dropout)
        self.rnn = make_recurrent(cell, impl, embed_dim, hidden_size, num_layers, dropout, reset_after)
        self.head = nn.Linear(hidden_size, vocab_size)

    def forward(self, tokens: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """tokens: [B, T] int64 → (logits [B, T, V], state)."""
        x = self.drop(self.embed(tokens))
        out, state = self.rnn(x, state)
        return self.head(self.drop(out)), state

    @torch.no_grad()
    def sample(
        self, prime: Tensor, length: int, temperature: float = 1.0, generator: torch.Generator | None = None
    ) -> Tensor:
        """Continue ``prime`` ([P] token ids, P ≥ 1) by ``length`` tokens drawn from softmax(logits / T).

        Temperature → 0 approaches greedy decoding; 1 samples the model's own distribution;
        above 1 flattens it. Returns the [length] new ids.
        """
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        was_training = self.training
        self.eval()
        logits, state = self(prime.view(1, -1))
        out = []
        for _ in range(length):
            probs = torch.softmax(logits[0, -1] / temperature, dim=-1)
            nxt = torch.multinomial(probs, 1, generator=generator)
            out.append(nxt)
            logits, state = self(nxt.view(1, 1), state)
        self.train(was_training)
        return torch.cat(out) if out else prime.new_zeros(0)
