"""Transformer model spec and its parameter counts.

Covers dense decoders (GPT, Llama), grouped-query attention, gated MLPs, mixture-of-experts
(routed top-k experts, shared experts, leading dense layers), multi-head latent attention
(DeepSeek-V2/V3, DeepSeek-AI 2024 Sec. 2.1.1) and a ViT-style vision encoder for multimodal
models. All sizes are in elements; counts are derived from the shapes, never typed in.
"""

from __future__ import annotations

from functools import cached_property
from typing import Literal

from pydantic import Field, model_validator

from superscale.spec import MAX_COUNT, MAX_LAYERS, MAX_VOCAB, MAX_WIDTH, Spec


class MoE(Spec):
    """Mixture-of-experts feed-forward layers."""

    experts: int = Field(gt=0, le=MAX_COUNT, description="Routed experts per MoE layer.")
    top_k: int = Field(gt=0, le=MAX_COUNT, description="Routed experts each token activates.")
    expert_ffn_hidden: int = Field(
        gt=0, le=MAX_WIDTH, description="FFN width of one routed expert."
    )
    shared_experts: int = Field(0, ge=0, description="Always-active shared experts per layer.")
    shared_expert_ffn_hidden: int | None = Field(
        None, gt=0, description="FFN width of one shared expert; default expert_ffn_hidden."
    )
    dense_layers: int = Field(
        0, ge=0, description="Leading layers with a dense FFN instead of experts."
    )
    layer_frequency: int = Field(
        1, gt=0, description="Every n-th layer (after dense_layers) is MoE; others dense."
    )
    max_nodes_per_token: int | None = Field(
        None,
        gt=0,
        description="Node-limited routing: a token's experts lie on at most this many nodes "
        "(DeepSeek-V3: 4 of 8 groups, config topk_group); None = unlimited.",
    )

    @model_validator(mode="after")
    def _top_k_le_experts(self) -> MoE:
        if self.top_k > self.experts:
            raise ValueError(f"top_k ({self.top_k}) must be <= experts ({self.experts})")
        return self

    @property
    def shared_ffn(self) -> int:
        return self.shared_expert_ffn_hidden or self.expert_ffn_hidden


class MLA(Spec):
    """Multi-head latent attention: low-rank joint compression of keys and values."""

    q_lora_rank: int | None = Field(
        None, gt=0, description="Query compression rank; None = full-rank queries."
    )
    kv_lora_rank: int = Field(gt=0)
    qk_rope_head_dim: int = Field(gt=0)
    qk_nope_head_dim: int = Field(gt=0)
    v_head_dim: int = Field(gt=0)


class Vision(Spec):
    """A ViT-style image encoder feeding `image_tokens` tokens per image to the LM."""

    layers: int = Field(gt=0, le=MAX_LAYERS)
    hidden: int = Field(gt=0, le=MAX_WIDTH)
    heads: int = Field(gt=0, le=MAX_WIDTH)
    ffn_hidden: int = Field(gt=0, le=MAX_WIDTH)
    patch: int = Field(gt=0, description="Patch edge, pixels.")
    image_size: int = Field(448, gt=0, description="Input image edge, pixels.")
    image_tokens: int = Field(gt=0, description="Tokens per image after the projector.")
    gated_mlp: bool = False
    bias: bool = True
    projector_hidden: int | None = Field(
        None, gt=0, description="Hidden width of the MLP projector; default: LM hidden."
    )
    pixel_shuffle: int = Field(
        1, gt=0, description="Spatial merge factor before the projector (InternVL: 2)."
    )

    @property
    def patches(self) -> int:
        return (self.image_size // self.patch) ** 2


class ModelSpec(Spec):
    """A decoder-only transformer, optionally MoE, MLA and multimodal."""

    name: str
    display_name: str | None = None
    layers: int = Field(
        gt=0, le=MAX_LAYERS, description="Transformer layers of the language model."
    )
    hidden: int = Field(gt=0, le=MAX_WIDTH, description="Model width.")
    heads: int = Field(gt=0, le=MAX_WIDTH, description="Query heads.")
    kv_heads: int | None = Field(
        None, gt=0, le=MAX_WIDTH, description="Key/value heads; default heads (MHA)."
    )
    head_dim: int | None = Field(
        None, gt=0, le=MAX_WIDTH, description="Per-head width; default hidden/heads."
    )
    ffn_hidden: int = Field(gt=0, le=MAX_WIDTH, description="Dense FFN width.")
    vocab: int = Field(gt=0, le=MAX_VOCAB)
    gated_mlp: bool = Field(True, description="SwiGLU-style MLP (3 matrices) vs plain (2).")
    tied_embeddings: bool = False
    bias: bool = Field(False, description="Linear layers carry biases (GPT-2/3, Megatron GPT).")
    norm: Literal["rmsnorm", "layernorm"] = "rmsnorm"
    qk_norm: bool = Field(False, description="Per-head RMSNorm on queries and keys (Qwen3).")
    position_embeddings: int = Field(
        0, ge=0, description="Learned absolute position table size; 0 for RoPE."
    )
    sliding_window: int | None = Field(
        None,
        gt=0,
        description="Tokens a query attends back to in windowed layers (GPT-OSS: 128, Mistral "
        "7B v0.1: 4096); None = full causal attention everywhere.",
    )
    sliding_window_every: int = Field(
        1,
        gt=0,
        description="Every n-th layer is windowed, the first included (GPT-OSS, Gemma 2: "
        "2, alternating with full attention); 1 = every layer.",
    )
    attention_sinks: bool = Field(
        False,
        description="A learned sink logit per head in every attention softmax (GPT-OSS): "
        "one parameter per head and layer; its work (one term per query and head) is under "
        "1e-4 of the attention's and is not charged.",
    )
    moe: MoE | None = None
    mla: MLA | None = None
    vision: Vision | None = None
    mtp_layers: int = Field(
        0,
        ge=0,
        description="Multi-token-prediction modules (DeepSeek-V3); not counted in "
        "the published total, counted in training compute.",
    )
    published_params_b: float | None = Field(None, description="Published total, billions.")
    published_active_params_b: float | None = Field(
        None, description="Published activated parameters per token, billions (MoE)."
    )
    source: str | None = None
    estimate: bool = False
    estimate_reason: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ModelSpec:
        if self.kv_heads is not None and self.heads % self.kv_heads:
            raise ValueError(
                f"heads ({self.heads}) must be a multiple of kv_heads ({self.kv_heads})"
            )
        if self.head_dim is None and self.mla is None and self.hidden % self.heads:
            raise ValueError(
                f"hidden ({self.hidden}) is not divisible by heads ({self.heads}); give head_dim"
            )
        if self.moe is not None and self.moe.dense_layers > self.layers:
            raise ValueError("moe.dense_layers exceeds layers")
        if self.estimate and not self.estimate_reason:
            raise ValueError("estimate: true needs an estimate_reason")
        return self

    # ---- shapes -------------------------------------------------------------------------
    @property
    def n_kv_heads(self) -> int:
        return self.kv_heads or self.heads

    @property
    def d_head(self) -> int:
        return self.head_dim or self.hidden // self.heads

    @property
    def windowed_share(self) -> float:
        """Share of the layers whose attention is windowed."""
        if self.sliding_window is None:
            return 0.0
        return -(-self.layers // self.sliding_window_every) / self.layers

    @property
    def is_moe(self) -> bool:
        return self.moe is not None

    @cached_property
    def moe_layers(self) -> int:
        """Number of layers whose FFN is a mixture of experts."""
        if self.moe is None:
            return 0
        candidates = self.layers - self.moe.dense_layers
        return (candidates + self.moe.layer_frequency - 1) // self.moe.layer_frequency

    @property
    def dense_layers(self) -> int:
        return self.layers - self.moe_layers

    # ---- parameter counts (elements) ----------------------------------------------------
    @property
    def _norm_params(self) -> int:
        return self.hidden * (2 if self.norm == "layernorm" else 1)

    @cached_property
    def attention_params(self) -> int:
        """Attention weights of one layer, including its input norm."""
        h = self.hidden
        if self.mla is not None:
            m = self.mla
            qk_head = m.qk_nope_head_dim + m.qk_rope_head_dim
            if m.q_lora_rank:
                q = h * m.q_lora_rank + m.q_lora_rank + m.q_lora_rank * self.heads * qk_head
            else:
                q = h * self.heads * qk_head
            kv = (
                h * (m.kv_lora_rank + m.qk_rope_head_dim)
                + m.kv_lora_rank
                + m.kv_lora_rank * self.heads * (m.qk_nope_head_dim + m.v_head_dim)
            )
            o = self.heads * m.v_head_dim * h
            return q + kv + o + self._norm_params
        q_out = self.heads * self.d_head
        kv_out = self.n_kv_heads * self.d_head
        weights = h * (q_out + 2 * kv_out) + q_out * h
        biases = (q_out + 2 * kv_out + h) if self.bias else 0
        qk_norm = 2 * self.d_head if self.qk_norm else 0
        sinks = self.heads if self.attention_sinks else 0
        return weights + biases + qk_norm + sinks + self._norm_params

    def _mlp_params(self, ffn: int) -> int:
        mats = 3 if self.gated_mlp else 2
        biases = ((2 if self.gated_mlp else 1) * ffn + self.hidden) if self.bias else 0
        return mats * self.hidden * ffn + biases

    @cached_property
    def dense_mlp_params(self) -> int:
        """Dense FFN of one layer, including its norm."""
        return self._mlp_params(self.ffn_hidden) + self._norm_params

    @cached_property
    def expert_params(self) -> int:
        """One routed expert."""
        assert self.moe is not None
        return self._mlp_params(self.moe.expert_ffn_hidden)

    @cached_property
    def moe_mlp_params(self) -> int:
        """All experts, shared experts, router and norm of one MoE layer."""
        assert self.moe is not None
        shared = self.moe.shared_experts * self._mlp_params(self.moe.shared_ffn)
        router = self.hidden * self.moe.experts
        return self.moe.experts * self.expert_params + shared + router + self._norm_params

    @cached_property
    def embedding_params(self) -> int:
        """Token (and learned position) embeddings, plus the output head if untied."""
        emb = self.vocab * self.hidden + self.position_embeddings * self.hidden
        head = 0 if self.tied_embeddings else self.vocab * self.hidden
        return emb + head + self._norm_params  # final norm

    @cached_property
    def vision_params(self) -> int:
        """Vision encoder and its projector into the language model."""
        v = self.vision
        if v is None:
            return 0
        mats = 3 if v.gated_mlp else 2
        per_layer = 4 * v.hidden * v.hidden + mats * v.hidden * v.ffn_hidden + 4 * v.hidden
        if v.bias:
            per_layer += 4 * v.hidden + (2 if v.gated_mlp else 1) * v.ffn_hidden + v.hidden
        patch_embed = 3 * v.patch * v.patch * v.hidden + v.hidden + (v.patches + 1) * v.hidden
        merged = v.hidden * v.pixel_shuffle**2
        proj_hidden = v.projector_hidden or self.hidden
        projector = merged * 2 + merged * proj_hidden + proj_hidden + proj_hidden * self.hidden
        return v.layers * per_layer + patch_embed + projector

    @cached_property
    def params(self) -> int:
        """Total parameters (elements), MTP modules excluded as in published totals."""
        total = self.layers * self.attention_params + self.embedding_params + self.vision_params
        total += self.dense_layers * self.dense_mlp_params
        if self.moe is not None:
            total += self.moe_layers * self.moe_mlp_params
        return total

    @cached_property
    def active_params(self) -> int:
        """Parameters a token passes through (top-k and shared experts only)."""
        if self.moe is None:
            return self.params
        inactive = (self.moe.experts - self.moe.top_k) * self.expert_params
        return self.params - self.moe_layers * inactive
