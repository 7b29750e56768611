"""Transformer model specs, their catalog and the Hugging Face config importer."""

from superscale.models.spec import MLA, ModelSpec, MoE, Vision

__all__ = ["MLA", "MoE", "ModelSpec", "Vision"]
