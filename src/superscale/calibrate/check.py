"""Train a small GPT on a real device and compare its step with superscale's prediction.

The model is a Llama-style decoder (RMSNorm, rotary embeddings, causal
scaled_dot_product_attention, SwiGLU MLP, untied output layer), the architecture the inline
`ModelSpec` with `gated_mlp: true` describes. It trains on synthetic token ids (fresh random
ids every step) with PyTorch's automatic mixed precision recipe: fp32 weights, bf16 autocast,
AdamW. The measured step is forward, backward and optimizer step; its median over `steps`
after `warmup_steps` is compared with `simulate` on a one-device scenario whose chip is
synthesized from the device's profile (`EfficiencyProfile.to_chip`).

Peak memory: on CUDA-API devices `torch.cuda.max_memory_allocated` (tensors only), set
beside the prediction's tensors (its peak less the workspace allowance); on the CPU the
growth of the process's resident set (ru_maxrss less the resident set at the start),
which also holds the allocator's caches, so it is a rougher figure.
"""

from __future__ import annotations

import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from superscale.hardware.profile import EfficiencyProfile, with_profile
from superscale.pipeline import simulate
from superscale.scenario import Scenario, load_scenario
from superscale.units import GIB


@dataclass(frozen=True, slots=True, kw_only=True)
class GPTConfig:
    """Shape of the check model and its batch."""

    layers: int
    hidden: int
    heads: int
    ffn_hidden: int
    vocab: int
    seq_len: int
    batch: int

    def model_dict(self) -> dict[str, Any]:
        """The same model as a superscale inline model."""
        return {
            "name": f"check-gpt-{self.layers}x{self.hidden}",
            "layers": self.layers,
            "hidden": self.hidden,
            "heads": self.heads,
            "ffn_hidden": self.ffn_hidden,
            "vocab": self.vocab,
            "gated_mlp": True,
            "tied_embeddings": False,
            "norm": "rmsnorm",
        }


# ~320 M parameters: the "few hundred million".
CHECK_GPT = GPTConfig(
    layers=20, hidden=1024, heads=16, ffn_hidden=2816, vocab=32000, seq_len=512, batch=2
)
# ~5 M parameters: the CI-sized run (--quick).
QUICK_GPT = GPTConfig(
    layers=2, hidden=384, heads=6, ffn_hidden=1024, vocab=4096, seq_len=256, batch=4
)


class _Block(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        h = cfg.hidden
        self.heads = cfg.heads
        self.attn_norm = nn.RMSNorm(h)
        self.qkv = nn.Linear(h, 3 * h, bias=False)
        self.out = nn.Linear(h, h, bias=False)
        self.mlp_norm = nn.RMSNorm(h)
        self.up = nn.Linear(h, 2 * cfg.ffn_hidden, bias=False)
        self.down = nn.Linear(cfg.ffn_hidden, h, bias=False)

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        b, s, h = x.shape
        q, k, v = self.qkv(self.attn_norm(x)).view(b, s, 3, self.heads, -1).unbind(2)
        q, k = _rotate(q, rope), _rotate(k, rope)
        y = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True
        )
        x = x + self.out(y.transpose(1, 2).reshape(b, s, h))
        gate, up = self.up(self.mlp_norm(x)).chunk(2, dim=-1)
        out: torch.Tensor = x + self.down(F.silu(gate) * up)
        return out


def _rotate(x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    cos, sin = rope  # (s, d/2) each; Su et al. 2021 rotary embedding
    x1, x2 = x.float().chunk(2, dim=-1)
    c, s_ = cos[None, :, None, :], sin[None, :, None, :]
    return torch.cat((x1 * c - x2 * s_, x1 * s_ + x2 * c), dim=-1).type_as(x)


class GPT(nn.Module):
    """A Llama-style decoder-only transformer."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.embed = nn.Embedding(cfg.vocab, cfg.hidden)
        self.blocks = nn.ModuleList(_Block(cfg) for _ in range(cfg.layers))
        self.norm = nn.RMSNorm(cfg.hidden)
        self.head = nn.Linear(cfg.hidden, cfg.vocab, bias=False)
        d = cfg.hidden // cfg.heads
        freqs = 1.0 / (10000 ** (torch.arange(0, d, 2).float() / d))
        angles = torch.outer(torch.arange(cfg.seq_len).float(), freqs)
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def forward(self, ids: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        x = self.embed(ids)
        rope = (self.cos, self.sin)
        for block in self.blocks:
            x = block(x, rope)
        logits = self.head(self.norm(x))
        return F.cross_entropy(logits.float().flatten(0, 1), targets.reshape(-1))


@dataclass(frozen=True, slots=True, kw_only=True)
class Measurement:
    """What one training run on the device gave."""

    step_s: float
    steps: int
    peak_gib: float
    params: int
    loss: float


def _rss_bytes() -> float:
    try:
        with open("/proc/self/statm", encoding="utf-8") as statm:
            pages = int(statm.read().split()[1])
        return float(pages * resource.getpagesize())
    except (OSError, ValueError, IndexError):  # pragma: no cover - not Linux
        return 0.0


def train(
    cfg: GPTConfig,
    device: torch.device,
    *,
    steps: int,
    warmup_steps: int = 1,
    seed: int = 0,
    progress: Callable[[int, int, str], None] | None = None,
) -> Measurement:
    """Train `cfg` on synthetic data for `warmup_steps + steps` steps; median step time."""
    torch.manual_seed(seed)
    gen = torch.Generator(device=device).manual_seed(seed)
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    rss0 = _rss_bytes()
    model = GPT(cfg).to(device)
    params = sum(p.numel() for p in model.parameters())
    options: dict[str, Any] = {"fused": True} if cuda else {"foreach": True}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, **options)
    times: list[float] = []
    loss = torch.zeros(())
    total = warmup_steps + steps
    for i in range(total):
        ids = torch.randint(cfg.vocab, (cfg.batch, cfg.seq_len + 1), device=device, generator=gen)
        if cuda:
            torch.cuda.synchronize(device)
        begin = time.perf_counter()
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
            loss = model(ids[:, :-1], ids[:, 1:])
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if cuda:
            torch.cuda.synchronize(device)
        elapsed = time.perf_counter() - begin
        if i >= warmup_steps:
            times.append(elapsed)
        if progress is not None:
            progress(i + 1, total, f"train step {i + 1}/{total}")
    if cuda:
        peak = float(torch.cuda.max_memory_allocated(device))
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024.0 - rss0
    return Measurement(
        step_s=statistics.median(times),
        steps=steps,
        peak_gib=max(peak, 0.0) / GIB,
        params=params,
        loss=float(loss.detach().float().item()),
    )


def scenario_for(cfg: GPTConfig, profile: EfficiencyProfile) -> Scenario:
    """A one-device scenario of `cfg` on the device `profile` describes."""
    chip = profile.to_chip()
    system = {
        "name": f"{chip.name}-1x",
        "display_name": f"one {chip.display_name}",
        "kind": "board",
        "chip": chip.model_dump(exclude={"profile"}),
        "gpus": 1,
        # A single device: these links carry no traffic (tp = pp = dp = 1).
        "scale_up": {
            "link": "pcie5-x16",
            "topology": "switch",
            "gpus": 1,
            "bandwidth_gb_per_s": 64,
        },
        "nics": {"link": "roce-200g", "count": 1},
        "cooling": "air",
        "source": chip.source,
    }
    scenario = load_scenario(
        {
            "model": cfg.model_dict(),
            "cluster": {"system": system, "count": 1},
            "training": {"seq_len": cfg.seq_len, "global_batch": cfg.batch, "precision": "bf16"},
            "parallel": {"micro_batch": cfg.batch, "zero": 0, "sequence_parallel": False},
        }
    )
    return apply_profile(scenario, profile)


def _error_pct(predicted: float, measured: float) -> float:
    return 100.0 * (predicted - measured) / measured if measured > 0 else float("nan")


def check(
    profile: EfficiencyProfile,
    device: torch.device,
    *,
    cfg: GPTConfig = CHECK_GPT,
    steps: int = 3,
    warmup_steps: int = 1,
    seed: int = 0,
    progress: Callable[[int, int, str], None] | None = None,
) -> dict[str, Any]:
    """Measured and predicted step time and peak memory of `cfg` on `device`, with errors."""
    result = simulate(scenario_for(cfg, profile), name="calibrate-check")
    measured = train(
        cfg, device, steps=steps, warmup_steps=warmup_steps, seed=seed, progress=progress
    )
    data = result.to_json()
    mem = data["memory"]
    predicted_tensors = mem["peak_gib_per_gpu"] - mem["workspace_gib"]
    return {
        "device": profile.device.name,
        "model": {**asdict(cfg), "params": measured.params},
        "measured_step_s": measured.step_s,
        "predicted_step_s": result.step_time_s,
        "error_pct": _error_pct(result.step_time_s, measured.step_s),
        "measured_peak_gib": measured.peak_gib,
        "predicted_peak_gib": predicted_tensors,
        "memory_error_pct": _error_pct(predicted_tensors, measured.peak_gib),
        "predicted_breakdown_s": data["breakdown_s"],
        "steps": measured.steps,
        "final_loss": measured.loss,
    }


def apply_profile(scenario: Scenario, profile: EfficiencyProfile) -> Scenario:
    """`scenario` with its cluster's chip reading compute times from `profile` (lives here,
    above the scenario, so hardware/ never imports it)."""
    cluster = scenario.cluster
    system = cluster.system.model_copy(update={"chip": with_profile(cluster.chip, profile)})
    return scenario.model_copy(update={"cluster": cluster.model_copy(update={"system": system})})
