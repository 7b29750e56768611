"""Serving: prefill and decode, KV cache, batching, disaggregation, SLO capacity planning."""
