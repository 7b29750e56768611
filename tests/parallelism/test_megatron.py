"""Megatron-LM command lines of published runs read back into the scenario they describe."""

from __future__ import annotations

import pytest

from superscale import load_scenario
from superscale.errors import SpecError
from superscale.models.catalog import models
from superscale.parallelism.megatron import parse_megatron, scenario_from_megatron

# Megatron-LM examples/gpt3/train_gpt3_175b_distributed.sh (plan as in Narayanan et al. 2021).
GPT3_175B = r"""
torchrun --nproc_per_node 8 --nnodes 128 --node_rank 0 --master_addr localhost \
    --master_port 6000 pretrain_gpt.py \
    --num-layers 96 --hidden-size 12288 --num-attention-heads 96 --seq-length 2048 \
    --max-position-embeddings 2048 --attention-backend auto \
    --micro-batch-size 1 --global-batch-size 1536 --rampup-batch-size 16 16 5859375 \
    --train-iters 500000 --weight-decay 0.1 --adam-beta1 0.9 --adam-beta2 0.95 \
    --init-method-std 0.006 --clip-grad 1.0 --fp16 --lr 6.0e-5 --lr-decay-style cosine \
    --min-lr 6.0e-6 --lr-warmup-fraction .001 --lr-decay-iters 430000 \
    --tensor-model-parallel-size 8 --pipeline-model-parallel-size 8 \
    --data-path $DATA_PATH --vocab-file $VOCAB_FILE --merge-file $MERGE_FILE \
    --split 949,50,1 --log-interval 100 --save-interval 10000 --eval-interval 1000 \
    --save $CHECKPOINT_PATH --load $CHECKPOINT_PATH --eval-iters 10  # GPT-3 175B
"""

# Megatron-Core Llama-3-8B recipe style: GQA, SwiGLU, RoPE, RMSNorm, untied, no biases.
LLAMA3_8B = """
--num-layers 32 --hidden-size 4096 --ffn-hidden-size 14336 --num-attention-heads 32
--group-query-attention --num-query-groups 8 --kv-channels 128 --seq-length 8192
--max-position-embeddings 8192 --position-embedding-type rope --rotary-base 500000
--normalization RMSNorm --swiglu --untie-embeddings-and-output-weights --disable-bias-linear
--attention-dropout 0.0 --hidden-dropout 0.0 --tokenizer-type HuggingFaceTokenizer
--tokenizer-model meta-llama/Meta-Llama-3-8B --vocab-size 128256 --bf16
--tensor-model-parallel-size 2 --pipeline-model-parallel-size 1 --context-parallel-size 2
--micro-batch-size 1 --global-batch-size 4096 --use-distributed-optimizer
--overlap-grad-reduce --overlap-param-gather --sequence-parallel
--recompute-activations --use-flash-attn
"""

# Megatron-LM examples/mixtral style: 8 experts, top-2, expert parallel, interleaved pipeline.
MIXTRAL_8X7B = """
torchrun --nproc_per_node=8 --nnodes=8 pretrain_gpt.py
--num-layers 32 --hidden-size 4096 --ffn-hidden-size 14336 --num-attention-heads 32
--group-query-attention --num-query-groups 8 --seq-length 4096
--max-position-embeddings 32768 --position-embedding-type rope --normalization RMSNorm
--swiglu --untie-embeddings-and-output-weights --disable-bias-linear --vocab-size 32000
--bf16 --num-experts 8 --moe-router-topk 2 --moe-aux-loss-coeff 1e-2 --moe-grouped-gemm
--moe-token-dispatcher-type alltoall --expert-model-parallel-size 8
--tensor-model-parallel-size 1 --pipeline-model-parallel-size 4
--num-layers-per-virtual-pipeline-stage 4 --sequence-parallel --micro-batch-size 1
--global-batch-size 256 --use-distributed-optimizer --recompute-granularity full
--recompute-method uniform --recompute-num-layers 1
"""

# DeepSeek-V3 in Megatron-Core (MLA, 256 routed + 1 shared expert, 3 leading dense layers).
DEEPSEEK_V3 = """
--num-layers 61 --hidden-size 7168 --ffn-hidden-size 18432 --num-attention-heads 128
--multi-latent-attention --q-lora-rank 1536 --kv-lora-rank 512 --qk-head-dim 128
--qk-pos-emb-head-dim 64 --v-head-dim 128 --num-experts 256 --moe-layer-freq ([0]*3+[1]*58)
--moe-ffn-hidden-size 2048 --moe-shared-expert-intermediate-size 2048 --moe-router-topk 8
--mtp-num-layers 1 --padded-vocab-size 129280 --normalization RMSNorm --swiglu
--untie-embeddings-and-output-weights --disable-bias-linear --position-embedding-type rope
--seq-length 4096 --global-batch-size 8192 --micro-batch-size 1 --bf16
--tensor-model-parallel-size 2 --pipeline-model-parallel-size 16
--expert-model-parallel-size 64 --sequence-parallel --use-distributed-optimizer
"""


def _close(a: float, b: float, rel: float = 0.01) -> bool:
    return abs(a - b) <= rel * b


def test_gpt3_175b_round_trips() -> None:
    run = parse_megatron(GPT3_175B)
    scenario = load_scenario(run.scenario)
    assert _close(scenario.model.params, 175e9)
    assert scenario.model.vocab == 51200  # GPT-2 BPE 50257 padded to 128·tp = 1024
    assert scenario.model.position_embeddings == 2048 and scenario.model.tied_embeddings
    assert scenario.model.bias and scenario.model.norm == "layernorm"
    assert scenario.cluster.gpus == 1024  # nproc_per_node 8 × nnodes 128
    p = scenario.parallel
    assert (p.tp, p.pp, p.cp, p.micro_batch, scenario.dp) == (8, 8, 1, 1, 16)
    assert (p.zero, p.recompute, p.sequence_parallel, p.dp_comm_overlap) == (
        0,
        "none",
        False,
        False,
    )
    t = scenario.require_training()
    assert (t.seq_len, t.global_batch, t.precision, t.dropout) == (2048, 1536, "fp16", True)
    assert run.ignored == ("--rampup-batch-size 16 16 5859375",)
    assert any("dgx-h100" in w for w in run.warnings)  # no cluster named: said, not silent


def test_llama3_8b_matches_catalog() -> None:
    scenario = load_scenario(scenario_from_megatron(LLAMA3_8B, cluster="h100-16k"))
    assert _close(scenario.model.params, models().get("llama3-8b").params)
    m = scenario.model
    assert (m.kv_heads, m.gated_mlp, m.tied_embeddings, m.bias) == (8, True, False, False)
    assert (m.norm, m.position_embeddings) == ("rmsnorm", 0)
    p = scenario.parallel
    assert (p.tp, p.cp, p.zero, p.recompute, p.sequence_parallel) == (2, 2, 1, "selective", True)
    assert p.dp_comm_overlap and p.flash_attention
    assert not scenario.require_training().dropout


def test_mixtral_moe() -> None:
    run = parse_megatron(MIXTRAL_8X7B)
    scenario = load_scenario(run.scenario)
    catalog = models().get("mixtral-8x7b")
    assert _close(scenario.model.params, catalog.params)
    assert _close(scenario.model.active_params, catalog.active_params)
    p = scenario.parallel
    assert (p.ep, p.pp, p.virtual_stages, p.schedule) == (8, 4, 2, "interleaved")
    assert p.recompute == "full" and scenario.cluster.gpus == 64
    assert "--moe-grouped-gemm" in run.ignored
    assert not any("aux-loss" in flag for flag in run.ignored)  # no effect on step time


def test_deepseek_v3_mla_and_layer_pattern() -> None:
    scenario = load_scenario(
        scenario_from_megatron(DEEPSEEK_V3, cluster={"system": "hgx-h800", "count": 256})
    )
    catalog = models().get("deepseek-v3")
    assert _close(scenario.model.params, catalog.params)
    moe = scenario.model.moe
    assert moe is not None and (moe.dense_layers, moe.layer_frequency) == (3, 1)
    assert scenario.model.mla is not None and scenario.model.mtp_layers == 1


def test_equals_form_and_space_form_agree() -> None:
    spaced = scenario_from_megatron(LLAMA3_8B, cluster="h100-16k")
    tokens = LLAMA3_8B.split()
    joined: list[str] = []
    for token in tokens:  # "--flag value" → "--flag=value"
        if (
            joined
            and joined[-1].startswith("--")
            and "=" not in joined[-1]
            and not token.startswith("--")
        ):
            joined[-1] += "=" + token
        else:
            joined.append(token)
    assert any("=" in t for t in joined)
    assert scenario_from_megatron(joined, cluster="h100-16k") == spaced


def test_integer_moe_layer_freq_and_vocab_padding() -> None:
    args = (
        "--num-layers 8 --hidden-size 512 --num-attention-heads 8 --seq-length 1024 "
        "--vocab-size 1000 --tensor-model-parallel-size 2 --num-experts 4 --moe-layer-freq 2 "
        "--sequence-parallel --bf16 --global-batch-size 32"
    )
    run = parse_megatron(args, cluster={"system": "dgx-h100", "count": 1})
    scenario = load_scenario(run.scenario)
    assert scenario.model.vocab == 1024  # 1000 padded to a multiple of 128·2
    assert scenario.model.moe is not None and scenario.model.moe.layer_frequency == 2
    assert scenario.model.moe_layers == 4
    assert scenario.model.ffn_hidden == 4 * 512


def test_unknown_flags_are_listed() -> None:
    run = parse_megatron(LLAMA3_8B + " --made-up-flag 3 --another-one stray", cluster="h100-16k")
    assert "--made-up-flag 3" in run.ignored and "--another-one stray" in run.ignored
    assert not any(flag.startswith("--lr") or "tokenizer" in flag for flag in run.ignored)


def test_base_model_must_agree() -> None:
    base = {"model": "llama3-8b", "training": {"seq_len": 4096, "global_batch": 512}}
    run = parse_megatron(
        "--num-layers 32 --hidden-size 4096 --tensor-model-parallel-size 4 --bf16",
        cluster={"system": "dgx-h100", "count": 8},
        base=base,
    )
    scenario = load_scenario(run.scenario)
    assert scenario.model.name == "llama3-8b" and scenario.parallel.tp == 4
    assert scenario.require_training().seq_len == 4096
    with pytest.raises(SpecError, match="--num-layers 40 vs 32"):
        parse_megatron("--num-layers 40 --hidden-size 4096", cluster="h100-16k", base=base)


SMALL = "--num-layers 2 --hidden-size 64 --num-attention-heads 4 --seq-length 128 --vocab-size 64"


@pytest.mark.parametrize(
    ("args", "cluster", "needle"),
    [
        (SMALL, None, "no GPU count"),
        (SMALL.replace("--num-layers 2", ""), "h100-16k", "--num-layers"),
        (SMALL.replace("--seq-length 128", ""), "h100-16k", "--seq-length"),
        (SMALL.replace("--vocab-size 64", ""), "h100-16k", "vocabulary"),
        (SMALL + " --tensor-model-parallel-size eight", "h100-16k", "--tensor-model-parallel-size"),
        (SMALL + " --num-layers", "h100-16k", "needs a value"),
        (SMALL + " --bf16=yes", "h100-16k", "takes no value"),
        (SMALL + " --bf16 --fp16", "h100-16k", "exclusive"),
        (SMALL + " --recompute-granularity most", "h100-16k", "allowed: full, selective"),
        (SMALL + " --num-experts 2 --moe-layer-freq __import__('os')", "h100-16k", "0/1 list"),
        (SMALL + " --num-experts 2 --moe-layer-freq [0]*3+[1]", "h100-16k", "has 4 entries"),
        (SMALL + " 'unclosed", "h100-16k", "cannot split"),
        (SMALL, {"system": "dgx-h100"}, "--count"),
    ],
)
def test_missing_or_bad_pieces_are_spec_errors(
    args: str, cluster: str | dict[str, str] | None, needle: str
) -> None:
    with pytest.raises(SpecError) as info:
        parse_megatron(args, cluster=cluster)
    assert needle in str(info.value)


def test_system_count_from_launcher() -> None:
    args = GPT3_175B.replace("--nnodes 128", "--nnodes 16")
    scenario = load_scenario(scenario_from_megatron(args, cluster="hgx-h200"))
    assert scenario.cluster.count == 16 and scenario.cluster.system.name == "hgx-h200"


def test_moe_recipe_flags_of_deepseek_v3() -> None:
    recipe = (
        " --moe-router-num-groups 8 --moe-router-group-topk 4 --moe-token-dispatcher-type flex"
        " --moe-enable-deepep --overlap-moe-expert-parallel-comm"
        " --recompute-granularity selective --recompute-modules layernorm mla_up_proj moe_act"
        " --use-precision-aware-optimizer --exp-avg-dtype bf16 --exp-avg-sq-dtype bf16"
        " --accumulate-allreduce-grads-in-fp32"
    )
    run = parse_megatron(DEEPSEEK_V3 + recipe, cluster={"system": "hgx-h800", "count": 256})
    assert not run.ignored
    scenario = load_scenario(run.scenario)
    moe = scenario.model.moe
    assert moe is not None and moe.max_nodes_per_token == 4
    p = scenario.parallel
    assert (p.ep_dispatch, p.ep_comm_overlap) == ("deepep", True)
    assert p.recompute_modules == ("layernorm", "mla_up_proj", "moe_act")
    assert scenario.require_training().adam_moments == "bf16"
    assert p.grad_reduce_dtype == "fp32"


def test_unknown_recompute_module_is_named() -> None:
    with pytest.raises(SpecError, match=r"--recompute-modules.*unknown module 'attn'"):
        parse_megatron(
            DEEPSEEK_V3 + " --recompute-granularity selective --recompute-modules attn",
            cluster={"system": "hgx-h800", "count": 256},
        )


def test_pipeline_layout_flags() -> None:
    cluster = {"system": "hgx-h800", "count": 256}
    run = parse_megatron(
        DEEPSEEK_V3.replace("--pipeline-model-parallel-size 16", "--pipeline-model-parallel-size 8")
        + ' --pipeline-model-parallel-layout "Et*3|(tttt|)*14ttL"',
        cluster=cluster,
    )
    scenario = load_scenario(run.scenario)
    assert (scenario.parallel.pp, scenario.parallel.virtual_stages) == (8, 2)  # 16 chunks
    assert scenario.parallel.schedule == "interleaved"


def test_torch_fsdp2_and_hsdp_flags() -> None:
    """--use-torch-fsdp2 is FSDP2's full sharding; --num-distributed-optimizer-instances N
    makes it hybrid: N replicas of a shard group of dp·cp/N GPUs."""
    base = LLAMA3_8B.replace("--use-distributed-optimizer", "--use-torch-fsdp2")
    scenario = load_scenario(scenario_from_megatron(base, cluster="h100-16k"))
    assert scenario.parallel.zero == 3 and scenario.parallel.fsdp is not None
    assert scenario.parallel.fsdp.shard_group is None
    hybrid = scenario_from_megatron(
        base + " --num-distributed-optimizer-instances 8", cluster="h100-16k"
    )
    dp_cp = 16384 // 2  # tp 2, pp 1
    assert hybrid["parallel"]["fsdp"] == {"shard_group": dp_cp // 8}
    assert load_scenario(hybrid).parallel.fsdp is not None
    with pytest.raises(SpecError, match="--num-distributed-optimizer-instances"):
        scenario_from_megatron(
            base + " --num-distributed-optimizer-instances 3", cluster="h100-16k"
        )
    megatron_fsdp = LLAMA3_8B.replace(
        "--use-distributed-optimizer",
        "--use-megatron-fsdp --data-parallel-sharding-strategy optim_grads_params",
    )
    assert scenario_from_megatron(megatron_fsdp, cluster="h100-16k")["parallel"]["fsdp"] == {}
    run = parse_megatron(LLAMA3_8B + " --num-distributed-optimizer-instances 2", cluster="h100-16k")
    assert "fsdp" not in run.scenario["parallel"]
    assert any("modelled as one instance" in w for w in run.warnings)


def test_fp4_and_fp8_recipe_flags() -> None:
    """--fp4-format e2m1 is NVFP4; --fp8-recipe tensorwise is current scaling."""
    base = (
        "--num-layers 32 --hidden-size 4096 --num-attention-heads 32 --seq-length 4096 "
        "--global-batch-size 64 --micro-batch-size 1 --vocab-size 32000 "
    )
    b200 = {"system": "dgx-b200", "count": 8}
    fp4 = scenario_from_megatron(base + "--fp4-format e2m1 --fp4-recipe nvfp4", cluster=b200)
    assert (fp4["training"]["precision"], fp4["training"]["fp8_recipe"]) == ("fp8", "nvfp4")
    assert load_scenario(fp4).require_training().fp8_recipe == "nvfp4"
    h100 = {"system": "dgx-h100", "count": 8}
    cs = scenario_from_megatron(base + "--fp8-format hybrid --fp8-recipe tensorwise", cluster=h100)
    assert cs["training"]["fp8_recipe"] == "current"
    with pytest.raises(SpecError, match="--fp8-recipe"):
        scenario_from_megatron(base + "--fp8-format e4m3 --fp8-recipe custom", cluster=h100)
    with pytest.raises(SpecError, match="exclusive"):
        scenario_from_megatron(base + "--fp8-format e4m3 --fp4-format e2m1", cluster=h100)


@pytest.mark.parametrize(
    ("flags", "graphs"),
    [
        ("", ()),
        (" --cuda-graph-impl none --cuda-graph-scope attn", ()),
        (" --enable-cuda-graph", ("attn", "mlp")),
        (
            " --cuda-graph-impl transformer_engine --cuda-graph-scope attn moe_router"
            " moe_preprocess",
            ("attn", "moe_router", "moe_preprocess"),
        ),
        (" --cuda-graph-impl local --cuda-graph-scope full_iteration", ("full_iteration",)),
    ],
)
def test_cuda_graph_flags(flags: str, graphs: tuple[str, ...]) -> None:
    run = parse_megatron(DEEPSEEK_V3 + flags, cluster={"system": "hgx-h800", "count": 256})
    assert not run.ignored
    assert load_scenario(run.scenario).parallel.cuda_graphs == graphs


def test_unknown_cuda_graph_scope_is_named() -> None:
    with pytest.raises(SpecError, match=r"--cuda-graph-scope.*unknown scope 'moe'"):
        parse_megatron(
            DEEPSEEK_V3 + " --cuda-graph-impl local --cuda-graph-scope moe",
            cluster={"system": "hgx-h800", "count": 256},
        )


@pytest.mark.parametrize(
    ("flags", "dtype"),
    [
        ("--bf16", "fp32"),  # Megatron forces fp32 accumulation for bf16
        ("--bf16 --grad-reduce-in-bf16", "bf16"),
        ("--fp16", "bf16"),  # 16-bit gradients unless asked for fp32
        ("--fp16 --accumulate-allreduce-grads-in-fp32", "fp32"),
    ],
)
def test_gradient_dtype_follows_megatrons_rule(flags: str, dtype: str) -> None:
    args = GPT3_175B.replace("--bf16", "").replace("--fp16", "") + " " + flags
    run = parse_megatron(args, cluster={"system": "dgx-h100", "count": 128})
    assert load_scenario(run.scenario).parallel.grad_reduce_dtype == dtype
