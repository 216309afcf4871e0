#!/usr/bin/env python3
"""PyTorch reference of OTCE (arXiv 2406.16495): the authors' forward made runnable.

The authors' code is LoserCheems/OTCE @ 4abf186 (2024-07-03), files
configuration_cheems_OTCE.py and modeling_cheems_OTCE.py ("the code" below;
line numbers refer to modeling_cheems_OTCE.py at that commit).  It cannot run
as published (spec 6 item 14), so this file is a line-by-line
reimplementation of its *slow* (non-CUDA-kernel) path with the same module
tree, hence the same state_dict names and shapes (spec 3.5).  What follows
the code, and what was patched:

  config            CheemsOTCEConfig (configuration_cheems_OTCE.py): same keys
                    and defaults; num_hidden_layers is a property (sum of the
                    four stage counts) and is NOT written to config.json;
                    mamba_dt_rank "auto" -> ceil(d/16) is resolved in __init__,
                    so the authors' config.json holds the integer.
  RMSNorm           l.335-382: x*rsqrt(mean(x^2)+eps), then *weight, +bias.
                    Every RMSNorm has a bias (default True).
  RotaryEmbedding   l.296-332: inv_freq and cos/sin computed in float32, cast
                    to the activation dtype.  PATCH 1: the code slices the
                    cos/sin cache to the *call length* (cos_cached[:seq_len])
                    and then indexes it with absolute position_ids, which
                    crashes for any position >= call length (every decode step
                    t >= 1).  Here cos/sin are built for the positions used.
  attention         l.479-620 (eager) / l.939-1036 (sdpa, the config default):
                    GQA via repeat_kv, RoPE (rotate_half) on Q/K when
                    attention_rope, scale P^-1/2, causal.  The "logn" factor
                    (l.588-595) multiplies Q by max(1, ln(65+i)/ln 4096) with i
                    running over query_states.size(1) = the HEAD axis after
                    the transpose: a no-op for < 4031 heads, so it is omitted.
                    PATCH 2: eager reads `key_states.size[-2]` (size is a
                    method: TypeError); the sdpa path has `.shape[-2]`.
  Mamba mixer       CheemsMambaMixer.slow_forward, l.1273-1378: in_proj ->
                    (u, z); causal depthwise conv1d (+bias iff mamba_conv_bias)
                    + SiLU; x_proj -> (dt, B, C); dt/B/C RMSNorms (always: the
                    config's mamba_inner_layernorms is never read); RoPE on B,C
                    (dim N) when mamba_rope; C *= max(1, ln(65+i)/ln 4096),
                    i = index within the call (l.1341-1349, a no-op below 4031
                    tokens per call); delta = softplus(dt_proj(dt)) (+dt_proj
                    bias iff mamba_proj_bias); A = -exp(A_log); selective scan;
                    + D*u; * SiLU(z); out_proj.  Decode (one token, cache
                    filled) rolls the conv state as l.1297-1306.
  MLP               CheemsMLP l.1397-1430: down(tanh(up x) * act(gate x)).
  MoE               CheemsSharedMoeLayer l.1521-1625: softmax(router x) in
                    float, top-k, NO renormalisation; experts "expansive"
                    (l.1433-1485: s = shared MLP(x); s = sigmoid(gate_e s)*s;
                    private MLP(s)), "cohesive" (l.1487-1519: down(tanh(
                    shared_up x) * act(gate x))), None (plain CheemsMLP).
                    The shared modules are attributes of every expert, so the
                    state_dict repeats them as experts.{e}.shared_*.
  layers            l.1628-2058 and CheemsOTCEModel.__init__ l.2127-2190:
                    observation (mamba; layer 0 FFN = MLP), thinking
                    (attention `self_attn`), conseption (mamba; its LAST layer
                    FFN = MLP), expression (attention `self_attention`, MLP,
                    then pre_dense_layernorm(h) + layer input -> dense -> act
                    -> projection, which replaces the residual stream).  A
                    stage FFN is an MLP whenever num_experts <= 1.
  embedding         Embedding l.2083-2123: word embedding + token-type
                    embedding row 0 when type_vocab_size is set (type ids are
                    never passed by the LM, so they default to zeros).
  head              final_layernorm, lm_head (no tie by default).

Other patches (not needed here because this file does not import the code,
listed so the reference can be reproduced with the authors' module):
  PATCH 3: `from transformers.utils.import_utils import is_torch_fx_available`
           (l.47) and `is_torch_greater_or_equal_than_1_13` no longer exist in
           transformers 5 (ImportError); the fx wrap is not needed.
  PATCH 4: `if past_key_values and not past_key_values.has_previous_state`
           (l.2305) truth-tests the cache, which transformers 5's Cache base
           class does not support; test `is not None` instead.
  PATCH 5: load_balancing_loss_func (l.83-185) has its attention_mask branch
           inverted (`if attention_mask is not None:` takes the mask-less
           path and the else branch calls attention_mask.shape on None): with
           the config default output_router_logits=True and no mask, the
           forward crashes.  Inference here never computes the aux loss.
  float64: the code casts to float32 in RMSNorm's variance, the MoE softmax,
           A_log.float(), the scan's B/deltaB_u, and logits.float(); those
           casts are dropped so `model.double()` runs in float64 throughout.

Known behaviour kept: a multi-token call AFTER cached state restarts the
conv1d from zero padding (l.1307-1313) while the SSM state continues; the C
runtime continues the conv state instead (= token-by-token decode).  The
fixtures only use prefill-from-empty and one-token decode, where both agree.

Usage:
    cfg = OTCEConfig(vocab_size=..., ...)
    m = OTCEForCausalLM(cfg)
    logits = m(tokens)                      # full prefill, tokens: 1-D LongTensor
    cache = m.new_cache(); m(tokens[:1], cache=cache); m(tokens[1:2], cache=cache) ...
    save_pretrained(m, out_dir, safetensors=True, bin=True)
"""
import json
import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

# ---------------------------------------------------------------- config

CONFIG_DEFAULTS = {  # configuration_cheems_OTCE.py __init__ signature, in order
    "vocab_size": 65536, "type_vocab_size": None, "hidden_size": 1024, "intermediate_size": 1024 * 4,
    "hidden_bias": False, "hidden_dropout": 0.0, "hidden_act": "silu", "max_position_embeddings": 65536,
    "rope_theta": 10000.0, "initializer_range": 0.02, "rms_norm_eps": 1e-06, "use_cache": False,
    "num_logits_to_keep": None, "output_router_logits": True, "router_aux_loss_coef": 0.001,
    "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2, "tie_word_embeddings": False,
    "use_mamba_kernels": True, "mamba_act": "silu", "mamba_d_state": 64, "mamba_d_conv": 4, "mamba_expand": 1,
    "mamba_dt_rank": "auto", "mamba_conv_bias": False, "mamba_proj_bias": False, "mamba_inner_layernorms": True,
    "mamba_rope": True, "num_attention_heads": 16, "num_key_value_heads": 8, "attn_implementation": "sdpa",
    "sliding_window": None, "n_ctx": 262144, "attention_dropout": 0.0, "attention_rope": True,
    "num_observation_layers": 12, "num_thinking_layers": 2, "num_conseption_layers": 9,
    "num_expression_layers": 1, "expert_type": "expansive", "num_experts": 4, "num_experts_per_tok": 1,
}


class OTCEConfig:
    def __init__(self, **kw):
        unknown = set(kw) - set(CONFIG_DEFAULTS)
        if unknown:
            raise ValueError("unknown OTCE config keys: %s" % sorted(unknown))
        for k, v in CONFIG_DEFAULTS.items():
            setattr(self, k, kw.get(k, v))
        # the config resolves "auto" at construction, so config.json stores the integer
        self.mamba_dt_rank_raw = self.mamba_dt_rank
        if self.mamba_dt_rank == "auto":
            self.mamba_dt_rank = math.ceil(self.hidden_size / 16)

    @property
    def num_hidden_layers(self):
        return (self.num_observation_layers + self.num_thinking_layers + self.num_conseption_layers
                + self.num_expression_layers)

    @property
    def layers_block_type(self):
        o, t, c = self.num_observation_layers, self.num_thinking_layers, self.num_conseption_layers
        return ["mamba" if i < o or o + t <= i < o + t + c else "attention" for i in range(self.num_hidden_layers)]

    @property
    def shared_expert_intermediate_size(self):
        return self.intermediate_size if self.expert_type == "expansive" else self.intermediate_size // 2

    @property
    def private_expert_intermediate_size(self):
        return self.intermediate_size // 2

    def to_json_dict(self, dt_rank_as_auto=False, torch_dtype="float32"):
        """What the authors' save_pretrained writes: every __init__ key, no num_hidden_layers."""
        d = {k: getattr(self, k) for k in CONFIG_DEFAULTS}
        if dt_rank_as_auto:
            d["mamba_dt_rank"] = "auto"  # a hand-written config; the converter resolves it the same way
        d["architectures"] = ["CheemsOTCEForCausalLM"]
        d["model_type"] = "cheems"
        d["torch_dtype"] = torch_dtype
        return d

    @classmethod
    def from_dict(cls, d):
        return cls(**{k: v for k, v in d.items() if k in CONFIG_DEFAULTS})


def act_fn(name):
    if name == "silu":
        return F.silu
    raise ValueError("activation %s not supported by the reference" % name)


# ---------------------------------------------------------------- building blocks

class RMSNorm(nn.Module):
    """l.335-382: (x * rsqrt(mean(x^2) + eps)) * weight + bias."""

    def __init__(self, n, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(n))
        self.bias = nn.Parameter(torch.zeros(n))

    def forward(self, x):
        var = x.pow(2).mean(-1, keepdim=True)  # the code: x.to(float32).pow(2).mean (cast dropped)
        return x * torch.rsqrt(var + self.eps) * self.weight + self.bias


def rope_cos_sin(dim, base, positions, dtype):
    """l.296-332 with PATCH 1: float32 inv_freq/angles/cos/sin for the given positions."""
    inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
    t = positions.to(torch.float32)
    freqs = torch.outer(t, inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def logn_scale(n, dtype):
    """l.1341-1349: max(1, ln(65+i)/ln(4096)) for i = 0..n-1 (index within the call)."""
    i = torch.arange(65, 65 + n, dtype=torch.float32)
    s = torch.log(i) / torch.log(torch.tensor(4096.0))
    s[s < 1.0] = 1.0
    return s.to(dtype)


class MambaMixer(nn.Module):
    """CheemsMambaMixer (l.1045-1395), slow_forward semantics."""

    def __init__(self, cfg):
        super().__init__()
        d, E, N, R, K = (cfg.hidden_size, cfg.mamba_expand * cfg.hidden_size, cfg.mamba_d_state,
                         cfg.mamba_dt_rank, cfg.mamba_d_conv)
        self.d, self.E, self.N, self.R, self.K = d, E, N, R, K
        self.cfg = cfg
        self.conv1d = nn.Conv1d(E, E, bias=cfg.mamba_conv_bias, kernel_size=K, groups=E, padding=K - 1)
        self.in_proj = nn.Linear(d, 2 * E, bias=cfg.mamba_proj_bias)
        self.x_proj = nn.Linear(E, R + 2 * N, bias=False)
        self.dt_proj = nn.Linear(R, E, bias=cfg.mamba_proj_bias)
        A = torch.arange(1, N + 1, dtype=torch.float32)[None, :].expand(E, -1).contiguous()
        self.A_log = nn.Parameter(torch.log(A))
        self.D = nn.Parameter(torch.ones(E))
        self.out_proj = nn.Linear(E, d, bias=cfg.mamba_proj_bias)
        self.dt_layernorm = RMSNorm(R, cfg.rms_norm_eps)
        self.B_layernorm = RMSNorm(N, cfg.rms_norm_eps)
        self.C_layernorm = RMSNorm(N, cfg.rms_norm_eps)
        self.act = act_fn(cfg.mamba_act)

    def forward(self, x, positions, state=None):
        """x [n, d]; state: dict(conv [E, K], ssm [E, N], filled bool) or None. Returns [n, d]."""
        n = x.shape[0]
        proj = self.in_proj(x).transpose(0, 1)  # [2E, n]
        u, z = proj.chunk(2, dim=0)
        w = self.conv1d.weight[:, 0, :]  # [E, K]
        if state is not None and state["filled"] and n == 1:
            # l.1297-1306: roll the conv state left, append the new input, dot with the kernel
            cs = torch.roll(state["conv"], shifts=-1, dims=-1)
            cs[:, -1] = u[:, 0]
            state["conv"] = cs
            uc = (cs * w).sum(-1)
            if self.conv1d.bias is not None:
                uc = uc + self.conv1d.bias
            uc = self.act(uc).unsqueeze(-1)
        else:
            if state is not None:
                state["conv"] = F.pad(u, (self.K - n, 0))  # last K inputs (zero-padded on the left)
            uc = self.act(self.conv1d(u.unsqueeze(0))[0, :, :n])  # [E, n]
        ssm = state["ssm"] if state is not None else torch.zeros(self.E, self.N, dtype=x.dtype)
        p = self.x_proj(uc.transpose(0, 1))  # [n, R+2N]
        dt, B, C = torch.split(p, [self.R, self.N, self.N], dim=-1)
        dt = self.dt_layernorm(dt)
        B = self.B_layernorm(B)
        C = self.C_layernorm(C)
        if self.cfg.mamba_rope:
            cos, sin = rope_cos_sin(self.N, self.cfg.rope_theta, positions, x.dtype)
            B = B * cos + rotate_half(B) * sin
            C = C * cos + rotate_half(C) * sin
        C = C * logn_scale(n, x.dtype)[:, None]
        delta = F.softplus(self.dt_proj(dt)).transpose(0, 1)  # [E, n]
        A = -torch.exp(self.A_log)  # [E, N]
        dA = torch.exp(A[:, None, :] * delta[:, :, None])  # [E, n, N]
        dBu = delta[:, :, None] * B[None, :, :] * uc[:, :, None]
        ys = []
        for i in range(n):
            ssm = dA[:, i, :] * ssm + dBu[:, i, :]
            ys.append(ssm @ C[i])
        y = torch.stack(ys, dim=-1)  # [E, n]
        y = y + uc * self.D[:, None]
        y = y * self.act(z)
        if state is not None:
            state["ssm"] = ssm
        return self.out_proj(y.transpose(0, 1))


class Attention(nn.Module):
    """CheemsSdpaAttention / CheemsAttention (PATCH 2) math."""

    def __init__(self, cfg):
        super().__init__()
        d, H, KV = cfg.hidden_size, cfg.num_attention_heads, cfg.num_key_value_heads
        self.H, self.KV, self.P = H, KV, d // H
        assert self.P * H == d
        self.cfg = cfg
        b = cfg.hidden_bias
        self.q_proj = nn.Linear(d, H * self.P, bias=b)
        self.k_proj = nn.Linear(d, KV * self.P, bias=b)
        self.v_proj = nn.Linear(d, KV * self.P, bias=b)
        self.o_proj = nn.Linear(H * self.P, d, bias=b)

    def forward(self, x, positions, state=None):
        n = x.shape[0]
        q = self.q_proj(x).view(n, self.H, self.P).transpose(0, 1)
        k = self.k_proj(x).view(n, self.KV, self.P).transpose(0, 1)
        v = self.v_proj(x).view(n, self.KV, self.P).transpose(0, 1)
        if self.cfg.attention_rope:
            cos, sin = rope_cos_sin(self.P, self.cfg.rope_theta, positions, x.dtype)
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
        if state is not None:
            if state.get("k") is not None:
                k = torch.cat([state["k"], k], dim=1)
                v = torch.cat([state["v"], v], dim=1)
            state["k"], state["v"] = k, v
        G = self.H // self.KV
        k = k.repeat_interleave(G, dim=0)
        v = v.repeat_interleave(G, dim=0)
        s = q @ k.transpose(1, 2) / math.sqrt(self.P)  # [H, n, T]
        T = k.shape[1]
        allowed = torch.arange(T)[None, :] <= positions[:, None]
        s = s.masked_fill(~allowed, float("-inf"))
        p = torch.softmax(s, dim=-1)
        o = (p @ v).transpose(0, 1).reshape(n, self.H * self.P)
        return self.o_proj(o)


class MLP(nn.Module):
    """CheemsMLP: down(tanh(up x) * act(gate x))."""

    def __init__(self, cfg, inter=None):
        super().__init__()
        d, I, b = cfg.hidden_size, inter or cfg.intermediate_size, cfg.hidden_bias
        self.gate_proj = nn.Linear(d, I, bias=b)
        self.up_proj = nn.Linear(d, I, bias=b)
        self.down_proj = nn.Linear(I, d, bias=b)
        self.act = act_fn(cfg.hidden_act)

    def forward(self, x):
        return self.down_proj(torch.tanh(self.up_proj(x)) * self.act(self.gate_proj(x)))


class SharedExpansiveMLP(nn.Module):
    def __init__(self, cfg, shared_gate_proj, shared_up_proj, shared_down_proj):
        super().__init__()
        d, Ip, b = cfg.hidden_size, cfg.private_expert_intermediate_size, cfg.hidden_bias
        self.shared_gate_proj = shared_gate_proj
        self.shared_up_proj = shared_up_proj
        self.shared_down_proj = shared_down_proj
        self.gate_proj = nn.Linear(d, Ip, bias=b)
        self.up_proj = nn.Linear(d, Ip, bias=b)
        self.down_proj = nn.Linear(Ip, d, bias=b)
        self.shared_expert_gate = nn.Linear(d, 1, bias=False)
        self.act = act_fn(cfg.hidden_act)

    def forward(self, x):
        s = self.shared_down_proj(torch.tanh(self.shared_up_proj(x)) * self.act(self.shared_gate_proj(x)))
        s = torch.sigmoid(self.shared_expert_gate(s)) * s
        return self.down_proj(torch.tanh(self.up_proj(s)) * self.act(self.gate_proj(s)))


class SharedCohesiveMLP(nn.Module):
    def __init__(self, cfg, shared_up_proj):
        super().__init__()
        d, Ip, b = cfg.hidden_size, cfg.private_expert_intermediate_size, cfg.hidden_bias
        self.gate_proj = nn.Linear(d, Ip, bias=b)
        self.shared_up_proj = shared_up_proj
        self.down_proj = nn.Linear(Ip, d, bias=b)
        self.act = act_fn(cfg.hidden_act)

    def forward(self, x):
        return self.down_proj(torch.tanh(self.shared_up_proj(x)) * self.act(self.gate_proj(x)))


class SharedMoeLayer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d, b, E = cfg.hidden_size, cfg.hidden_bias, cfg.num_experts
        self.E, self.k = E, cfg.num_experts_per_tok
        self.router = nn.Linear(d, E, bias=False)
        Is = cfg.shared_expert_intermediate_size
        if cfg.expert_type == "expansive":
            self.shared_gate_proj = nn.Linear(d, Is, bias=b)
            self.shared_up_proj = nn.Linear(d, Is, bias=b)
            self.shared_down_proj = nn.Linear(Is, d, bias=b)
            self.experts = nn.ModuleList([SharedExpansiveMLP(cfg, self.shared_gate_proj, self.shared_up_proj,
                                                             self.shared_down_proj) for _ in range(E)])
        elif cfg.expert_type == "cohesive":
            self.shared_up_proj = nn.Linear(d, Is, bias=b)
            self.experts = nn.ModuleList([SharedCohesiveMLP(cfg, self.shared_up_proj) for _ in range(E)])
        else:
            self.experts = nn.ModuleList([MLP(cfg) for _ in range(E)])

    def forward(self, x):
        logits = self.router(x)
        w = F.softmax(logits, dim=1)  # the code: dtype=torch.float (cast dropped)
        w, sel = torch.topk(w, self.k, dim=-1)  # no renormalisation
        out = torch.zeros_like(x)
        for e in range(self.E):
            rows, slot = torch.where(sel == e)
            if rows.numel() == 0:
                continue
            out.index_add_(0, rows, self.experts[e](x[rows]) * w[rows, slot, None])
        return out, logits, sel, w


class Layer(nn.Module):
    def __init__(self, cfg, kind, moe, expression=False):
        super().__init__()
        d, eps = cfg.hidden_size, cfg.rms_norm_eps
        self.kind, self.expression = kind, expression
        self.input_layernorm = RMSNorm(d, eps)
        if kind == "mamba":
            self.mamba = MambaMixer(cfg)
        elif expression:
            self.self_attention = Attention(cfg)
        else:
            self.self_attn = Attention(cfg)
        self.pre_ff_layernorm = RMSNorm(d, eps)
        self.feed_forward = SharedMoeLayer(cfg) if moe else MLP(cfg)
        if expression:
            self.pre_dense_layernorm = RMSNorm(d, eps)
            self.dense = nn.Linear(d, d, bias=cfg.hidden_bias)
            self.projection = nn.Linear(d, d, bias=cfg.hidden_bias)
            self.act = act_fn(cfg.hidden_act)

    def mixer(self):
        return self.mamba if self.kind == "mamba" else self.self_attention if self.expression else self.self_attn

    def forward(self, h, positions, state, trace=None):
        x_in = h
        xn = self.input_layernorm(h)
        h = h + self.mixer()(xn, positions, state)
        f = self.feed_forward(self.pre_ff_layernorm(h))
        if isinstance(f, tuple):
            if trace is not None:
                trace.append({"router_logits": f[1], "selected": f[2], "weights": f[3]})
            f = f[0]
        h = h + f
        if self.expression:
            h = self.projection(self.act(self.dense(self.pre_dense_layernorm(h) + x_in)))
        return h


class Embedding(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.word_embeddings = nn.Embedding(cfg.vocab_size, cfg.hidden_size, padding_idx=cfg.pad_token_id)
        self.token_type_embeddings = (nn.Embedding(cfg.type_vocab_size, cfg.hidden_size)
                                      if cfg.type_vocab_size is not None else None)

    def forward(self, ids):
        e = self.word_embeddings(ids)
        if self.token_type_embeddings is not None:
            e = e + self.token_type_embeddings.weight[0]  # type ids default to zeros
        return e


class OTCEModel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.embed_tokens = Embedding(cfg)
        E = cfg.num_experts
        layers = []
        o, t, c, x = (cfg.num_observation_layers, cfg.num_thinking_layers, cfg.num_conseption_layers,
                      cfg.num_expression_layers)
        for i in range(o):
            layers.append(Layer(cfg, "mamba", moe=(i != 0 and E > 1)))
        for _ in range(t):
            layers.append(Layer(cfg, "attention", moe=E > 1))
        for i in range(c):
            layers.append(Layer(cfg, "mamba", moe=(i != c - 1 and E > 1)))
        for _ in range(x):
            layers.append(Layer(cfg, "attention", moe=False, expression=True))
        self.layers = nn.ModuleList(layers)
        self.final_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)


class OTCEForCausalLM(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.config = cfg
        self.model = OTCEModel(cfg)
        self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)

    def new_cache(self):
        cfg = self.config
        E, N, K = cfg.mamba_expand * cfg.hidden_size, cfg.mamba_d_state, cfg.mamba_d_conv
        dt = next(self.parameters()).dtype
        cache = {"pos": 0, "layers": []}
        for l in self.model.layers:
            if l.kind == "mamba":
                cache["layers"].append({"conv": torch.zeros(E, K, dtype=dt), "ssm": torch.zeros(E, N, dtype=dt),
                                        "filled": False})
            else:
                cache["layers"].append({"k": None, "v": None})
        return cache

    def forward(self, ids, cache=None, trace=None, hidden=None):
        """ids: 1-D LongTensor. With cache, positions continue from cache['pos']. Returns logits [n, V]."""
        n = ids.shape[0]
        pos0 = cache["pos"] if cache is not None else 0
        positions = torch.arange(pos0, pos0 + n)
        h = self.model.embed_tokens(ids)
        for i, l in enumerate(self.model.layers):
            if hidden is not None:
                hidden.append(h)
            h = l(h, positions, cache["layers"][i] if cache is not None else None, trace)
        if cache is not None:
            cache["pos"] = pos0 + n
            for st in cache["layers"]:
                if "filled" in st:
                    st["filled"] = True
        return self.lm_head(self.model.final_layernorm(h))


def decode_logits(model, tokens):
    """Token-by-token with the conv/SSM/KV cache (the authors' decode path)."""
    cache = model.new_cache()
    return torch.cat([model(torch.tensor([t]), cache=cache) for t in tokens])


# ---------------------------------------------------------------- save / load

def save_pretrained(model, out_dir, dtype=None, safetensors=True, bin=True, dt_rank_as_auto=False):
    """config.json as the authors' code writes it; pytorch_model.bin = torch.save(state_dict()) (the
    shared expert modules appear under every experts.{e}.shared_* name, sharing storage);
    model.safetensors = the same names, each tensor its own copy (safetensors cannot share storage)."""
    os.makedirs(out_dir, exist_ok=True)
    m = model if dtype is None else _cast_copy(model, dtype)
    sd = m.state_dict()
    tdt = str(next(iter(sd.values())).dtype).replace("torch.", "")
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(model.config.to_json_dict(dt_rank_as_auto, tdt), f, indent=2, sort_keys=True)
        f.write("\n")
    if safetensors:
        from safetensors.torch import save_file

        save_file({k: v.detach().clone().contiguous() for k, v in sd.items()},
                  os.path.join(out_dir, "model.safetensors"), metadata={"format": "pt"})
    if bin:
        torch.save(sd, os.path.join(out_dir, "pytorch_model.bin"))


def _cast_copy(model, dtype):
    import copy

    return copy.deepcopy(model).to(dtype)


def load_pretrained(path, dtype=torch.float64):
    with open(os.path.join(path, "config.json")) as f:
        cfg = OTCEConfig.from_dict(json.load(f))
    m = OTCEForCausalLM(cfg)
    st = os.path.join(path, "model.safetensors")
    if os.path.exists(st):
        from safetensors.torch import load_file

        sd = load_file(st)
    else:
        sd = torch.load(os.path.join(path, "pytorch_model.bin"), weights_only=True)
    m.load_state_dict(sd, strict=True)
    m.eval()
    return m.to(dtype)
