"""Branches and the joint-embedding model.

A :class:`Branch` is one side of the joint embedding: an encoder f (its output y is the
representation used downstream) followed by an expander h (used only by the loss),
z = h(f(x)). :class:`JointEmbedding` holds two branches and a loss and is what both the
trainer and users' own training loops call::

    model = JointEmbedding(build_branch("image", "resnet18"), build_branch("image", "resnet18"))
    loss, metrics = model(view_a, view_b)
    loss.backward()

Weight sharing needs no special path: pass the same Branch object twice.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from multivic.collapse import rankme
from multivic.errors import ConfigError, NonFiniteLossError
from multivic.expander import Expander
from multivic.registry import create_encoder


class Branch(nn.Module):
    """Encoder + expander. Input: the batch of the encoder's modality; output [B, expander width].

    ``encoder_name`` and ``encoder_kwargs`` record what built the encoder (a registry name and its
    keyword arguments), so an export can rebuild exactly this branch; :func:`build_branch` sets
    them. A branch around a module the registry did not build has ``encoder_name=None``.
    """

    def __init__(
        self,
        name: str,
        encoder: nn.Module,
        expander: Expander,
        encoder_name: str | None = None,
        encoder_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if getattr(encoder, "out_dim", None) != expander.in_dim:
            raise ValueError(
                f"branch {name!r}: encoder out_dim {getattr(encoder, 'out_dim', None)} "
                f"does not match expander in_dim {expander.in_dim}"
            )
        self.name = name
        self.encoder = encoder
        self.expander = expander
        self.encoder_name = encoder_name
        self.encoder_kwargs: dict[str, Any] = dict(encoder_kwargs or {})
        # The input pipeline of this branch (a multivic.modalities.Modality: file reader,
        # evaluation view, collate), set by the build layer and by load_branch.
        self.preprocess: Any = None
        # Speed options, set by use_channels_last and compile_encoder (neither is in state_dict).
        self.channels_last = False
        self.compile_mode: str | None = None

    @property
    def modality(self) -> str:
        return str(getattr(self.encoder, "modality", "unknown"))

    @property
    def representation_dim(self) -> int:
        return int(self.encoder.out_dim)

    @property
    def embedding_dim(self) -> int:
        return int(self.expander.out_dim)

    def encode(self, x: Any) -> Tensor:
        """The representation y = f(x), [B, representation_dim]."""
        if self.channels_last and isinstance(x, Tensor) and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.compile_mode is None:
            return self.encoder(x)
        try:
            return self.encoder(x)
        except RuntimeError as exc:  # compilation happens here, at the first call of each shape
            from torch._dynamo.exc import BackendCompilerFailed

            if not isinstance(exc, BackendCompilerFailed):
                raise
            inner = getattr(exc, "inner_exception", None) or exc
            reason = " ".join(str(inner).split())[:300] or type(inner).__name__
            raise ConfigError(
                f"torch.compile failed on the encoder of branch {self.name!r} ({type(inner).__name__}: {reason}): "
                "set model.compile=false to train without compiling"
            ) from None

    def forward(self, x: Any) -> Tensor:
        """The embedding z = h(f(x)), [B, embedding_dim]."""
        return self.expander(self.encode(x))

    def use_channels_last(self) -> None:
        """Keep the 4-D weights (2-D convolutions) in torch.channels_last and convert 4-D inputs
        to it in :meth:`encode`. Values are unchanged; convolutions may run faster (GPUs)."""
        self.to(memory_format=torch.channels_last)
        self.channels_last = True

    def compile_encoder(self, mode: str | None = "default", backend: Any = "inductor") -> None:
        """torch.compile the encoder in place (``nn.Module.compile``): its state-dict keys stay
        as they are, so checkpoints and exports are those of the eager encoder. Compilation
        happens at the first call; a failing compiler is a one-line ConfigError there."""
        self.encoder.compile(mode=mode, backend=backend)
        self.compile_mode = mode or "default"


def build_branch(
    name: str, encoder: str, encoder_kwargs: dict[str, Any] | None = None, expander: str = "8192-8192-8192"
) -> Branch:
    """A branch from an encoder registry name, its keyword arguments and an expander spec."""
    enc = create_encoder(encoder, **(encoder_kwargs or {}))
    return Branch(name, enc, Expander(enc.out_dim, expander), encoder_name=encoder, encoder_kwargs=encoder_kwargs)


class JointEmbedding(nn.Module):
    """Two branches and a joint-embedding objective (any registered one; VICReg by default).

    ``forward(view_a, view_b)`` returns ``(loss, metrics)``: the scalar float32 loss with its
    graph, and a dict of detached scalar tensors (the loss terms and per-side collapse
    statistics, keys such as "invariance", "a/std_mean"; "a/rankme" and "a/rankme_repr" too
    when ``record_rankme`` is set). No host synchronisation happens
    unless the loss's ``check_finite`` is on.

    ``branch_b`` may be ``branch_a`` itself (shared weights), another instance of the same
    architecture, or a different architecture and modality: one code path for all.
    """

    def __init__(self, branch_a: Branch, branch_b: Branch, loss: nn.Module | None = None) -> None:
        super().__init__()
        if branch_a.embedding_dim != branch_b.embedding_dim:
            raise ValueError(
                f"the branches' embeddings must have one width for the loss: {branch_a.name!r} gives "
                f"{branch_a.embedding_dim}, {branch_b.name!r} gives {branch_b.embedding_dim}"
            )
        if branch_a is not branch_b and branch_a.name == branch_b.name:
            raise ValueError(f"two branches with separate weights need distinct names; both are {branch_a.name!r}")
        self.branch_a = branch_a
        self.branch_b = branch_b
        if loss is None:
            from multivic.objectives import VICRegLoss

            loss = VICRegLoss()
        self.loss_fn = loss
        # When set, forward adds the RankMe (multivic.collapse) of each side's
        # embeddings and representations, on this batch, to the metrics.
        self.record_rankme = False

    @property
    def shared(self) -> bool:
        return self.branch_a is self.branch_b

    def branches(self) -> dict[str, Branch]:
        """The distinct branches by name (one entry when the weights are shared)."""
        out = {self.branch_a.name: self.branch_a}
        if not self.shared:
            out[self.branch_b.name] = self.branch_b
        return out

    def forward(self, view_a: Any, view_b: Any) -> tuple[Tensor, dict[str, Tensor]]:
        y_a = self.branch_a.encode(view_a)
        y_b = self.branch_b.encode(view_b)
        z_a, z_b = self.branch_a.expander(y_a), self.branch_b.expander(y_b)
        try:
            out = self.loss_fn(z_a, z_b)
        except NonFiniteLossError as exc:  # objectives speak of z_a and z_b; users know branch names
            text = str(exc).replace("z_a", f"z_a (branch {self.branch_a.name!r})", 1)
            raise NonFiniteLossError(text.replace("z_b", f"z_b (branch {self.branch_b.name!r})", 1)) from None
        metrics = out.metrics()
        if self.record_rankme:  # an SVD per side: only on the steps the trainer logs
            for side, y, z in (("a", y_a, z_a), ("b", y_b, z_b)):
                metrics[f"{side}/rankme"] = torch.tensor(rankme(z))
                metrics[f"{side}/rankme_repr"] = torch.tensor(rankme(y))
        return out.loss, metrics
