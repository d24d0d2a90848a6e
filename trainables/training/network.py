"""The sequence model: stacked LSTM or GRU, last step or attention pooling, one linear head.

Heads: regression predicts the scaled target column(s) (one or several outputs);
classification predicts 3 logits (down, flat, up). With ``residual`` (regression only) the
head predicts the *change* from the last input value of each target column, so "no change"
(persistence) is the zero output and any skill on top of it is learnable.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn

from trainables.errors import ConfigError
from trainables.parameters.train_config import MODEL_FIELDS, specs
from trainables.training import fast_paths

__all__ = ["ModelSpec", "SequenceModel"]


def _spec_of(cls: type, cfg: Any) -> Any:
    """The architecture part of ``cfg`` (a TrainConfig or anything with these names)."""
    if isinstance(cfg, cls):
        return cfg
    return cls(**{f.name: getattr(cfg, f.name, f.default) for f in dataclasses.fields(cls)})


# The architecture part of a config: TrainConfig's fields marked model=True, with their
# defaults (not validated again: a test may build a 6-unit network).
ModelSpec = dataclasses.make_dataclass(
    "ModelSpec",
    [(n, specs()[n].kind, dataclasses.field(default=specs()[n].default)) for n in MODEL_FIELDS],
    frozen=True,
    namespace={"of": classmethod(_spec_of)},
)
ModelSpec.__module__ = __name__  # make_dataclass's own module= needs Python 3.12


class SequenceModel(nn.Module):
    """``[B, L, F] -> [B, n_outputs]``.

    ``residual_index``: for each output, the input feature column holding the same series
    (regression with ``residual``); the output is then that column's last value plus the head.
    """

    def __init__(
        self,
        cfg: Any,
        n_features: int,
        n_outputs: int,
        *,
        residual_index: list[int] | None = None,
    ) -> None:
        super().__init__()
        spec = ModelSpec.of(cfg)
        if spec.cell not in ("lstm", "gru"):
            raise ConfigError(f"cell must be 'lstm' or 'gru', but got cell={spec.cell!r}")
        if residual_index is not None and len(residual_index) != n_outputs:
            raise ConfigError(
                f"residual_index has {len(residual_index)} entries for {n_outputs} outputs"
            )
        self.spec = spec
        self.n_features, self.n_outputs = int(n_features), int(n_outputs)
        rnn = nn.LSTM if spec.cell == "lstm" else nn.GRU
        # torch applies dropout between stacked layers only, so a 1-layer net gets none here.
        self.rnn = rnn(
            input_size=n_features,
            hidden_size=spec.hidden_size,
            num_layers=spec.num_layers,
            dropout=spec.dropout if spec.num_layers > 1 else 0.0,
            bidirectional=spec.bidirectional,
            batch_first=True,
        )
        width = spec.hidden_size * (2 if spec.bidirectional else 1)
        self.attn = None
        if spec.attention:
            if width % spec.attention_heads:
                raise ConfigError(f"attention_heads={spec.attention_heads} must divide {width}")
            # One learned query attends over all time steps: attention pooling.
            self.query = nn.Parameter(torch.zeros(1, 1, width))
            self.attn = nn.MultiheadAttention(width, spec.attention_heads, batch_first=True)
        self.drop = nn.Dropout(spec.dropout)
        self.head = nn.Linear(width, n_outputs)
        index = torch.as_tensor(
            residual_index if residual_index is not None else [], dtype=torch.long
        )
        self.register_buffer("residual_index", index, persistent=True)
        self._init_weights()

    def _init_weights(self) -> None:
        # Xavier for input weights, orthogonal recurrent weights (per gate, so each gate's
        # square block is orthogonal) and an LSTM forget-gate bias of 1: the usual recipe
        # that keeps gradients alive through long windows.
        gates = 4 if self.spec.cell == "lstm" else 3
        h = self.spec.hidden_size
        for name, p in self.rnn.named_parameters():
            if name.startswith("weight_ih"):
                nn.init.xavier_uniform_(p)
            elif name.startswith("weight_hh"):
                for k in range(gates):
                    nn.init.orthogonal_(p.data[k * h : (k + 1) * h])
            elif name.startswith("bias"):
                nn.init.zeros_(p)
                if self.spec.cell == "lstm" and name.startswith("bias_ih"):
                    p.data[h : 2 * h] = 1.0  # gate order i, f, g, o: f is the second block
        # With residual the untrained model is exactly persistence ("no change"), and
        # training moves it away from that only as far as the data supports.
        if self.residual:
            nn.init.zeros_(self.head.weight)
        else:
            nn.init.xavier_uniform_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    @property
    def residual(self) -> bool:
        return self.residual_index.numel() > 0

    def hidden_states(self, x: torch.Tensor) -> torch.Tensor:
        """Top layer's output at every step: ``[B, L, F] -> [B, L, hidden_size * directions]``."""
        if fast_paths.runs_layer_by_layer(self.rnn, x):  # CPU training: a cheaper dropout mask
            return fast_paths.rnn_layer_by_layer(self.rnn, x)
        out, _ = self.rnn(x)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.hidden_states(x)  # [B, L, F] -> [B, L, D]
        if self.attn is not None:
            query = self.query.expand(out.shape[0], -1, -1).to(out.dtype)  # [B, 1, D]
            pooled, _ = self.attn(query, out, out, need_weights=False)  # [B, 1, D]
            pooled = pooled[:, 0]  # [B, D]
        elif self.spec.bidirectional:
            # The backward direction has read the whole window at step 0, not at the last step.
            h = self.spec.hidden_size
            pooled = torch.cat([out[:, -1, :h], out[:, 0, h:]], dim=1)  # [B, 2H]
        else:
            pooled = out[:, -1]  # [B, H]
        # float32 out, also under autocast: a bf16 "last value + change" would round a price
        # to 3 significant digits and swamp the change the head predicts.
        y = self.head(self.drop(pooled)).float()  # [B, D] -> [B, n_outputs]
        if self.residual:
            y = y + x[:, -1, self.residual_index].float()  # change + last value
        return y
