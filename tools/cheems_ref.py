#!/usr/bin/env python3
"""PyTorch reference implementation of Cheems (SSD + DMAttn + MLP/CDMoE).

Written from /work/shared/spec/model-architecture.md (section numbers below
refer to it), not from the authors' code.  It is the reference that the C
runtime is checked against, and the model used by tools/train_tiny.py.

  * config keys: spec 2.1 (model_type "cheems")
  * state-dict names: spec 3.1 (model.word_embed.weight, model.layers.N.*,
    model.final_layernorm.weight, lm_head.weight tied to the embedding)
  * forward math: spec 4 (RMSNorm x*w, RoPE rotate-half with dynamic NTK,
    residual scale on the skip path, SSD with raw A, DMAttn additive dynamic
    bias, SwiGLU MLP, product-key CDMoE 4.8a)
  * resolutions: spec 6 (A verbatim, D/dt_bias/groups only by presence)

Everything runs in the dtype of the parameters, so `model.double()` gives a
float64 reference.  RoPE angles are computed in float32 as HF does (4.3).

Usage as a library:
    cfg = CheemsConfig(vocab_size=..., ...)
    m = CheemsForCausalLM(cfg)
    logits = m(tokens)                  # tokens: LongTensor [T] or [B, T]
    save_pretrained(m, out_dir)         # config.json, model.safetensors, pytorch_model.bin
    m2 = load_pretrained(dir)
    greedy(m2, prompt_ids, n_new)
"""
import json
import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

# ---------------------------------------------------------------- config (2.1)

CONFIG_DEFAULTS = {
    "vocab_size": 32768,
    "hidden_size": 1024,
    "intermediate_size": 2048,
    "num_hidden_layers": 32,
    "hidden_bias": False,
    "hidden_dropout": 0.0,
    "attention_dropout": 0.0,
    "hidden_act": "silu",
    "max_position_embeddings": 2048,
    "rope_theta": 10000.0,
    "rope_scaling": {"rope_type": "dynamic", "factor": 4.0, "original_max_position_embeddings": 2048},
    "rms_norm_eps": 1e-6,
    "bos_token_id": 0,
    "eos_token_id": 1,
    "pad_token_id": 2,
    "tie_word_embeddings": True,
    "ssd_chunk_size": 256,
    "num_attention_heads": 8,
    "num_key_value_heads": None,
    "dynamic_mask_ratio": 0.0,
    "attn_layer_period": 8,
    "attn_layer_offset": 7,
    "is_moe": False,
    "num_cdmoe_experts": 16348,
    "num_cdmoe_heads": 4,
    "num_cdmoe_experts_per_head": 8,
    "expert_retrieval_size": 64,
    # optional extensions (not in the authors' config; absent = off)
    "keep_window_size": None,
    "sliding_window": None,
}


class CheemsConfig:
    def __init__(self, **kw):
        d = dict(CONFIG_DEFAULTS)
        d.update(kw)
        if d["num_key_value_heads"] is None:
            d["num_key_value_heads"] = d["num_attention_heads"]
        self.__dict__.update(d)

    @property
    def head_dim(self):
        return self.hidden_size // self.num_attention_heads

    def layer_is_attn(self, i):
        return i % self.attn_layer_period == self.attn_layer_offset

    def to_dict(self):
        out = {"model_type": "cheems", "architectures": ["CheemsForCausalLM"]}
        for k in CONFIG_DEFAULTS:
            out[k] = getattr(self, k)
        for k in ("keep_window_size", "sliding_window"):
            if out[k] is None:
                del out[k]
        return out

    @classmethod
    def from_dict(cls, d):
        kw = {k: v for k, v in d.items() if k in CONFIG_DEFAULTS or k == "ssd_ngroups"}
        return cls(**kw)


def _act(name):
    if name in ("silu", "swish"):
        return F.silu
    if name == "gelu":
        return F.gelu
    if name == "relu":
        return F.relu
    raise ValueError("unsupported hidden_act %r" % name)


# ---------------------------------------------------------------- RMSNorm (4.2)

class RMSNorm(nn.Module):
    def __init__(self, n, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.eps = eps

    def forward(self, x):
        # u = float32(x); out = w * cast(u * rsqrt(mean(u^2) + eps))
        u = x if x.dtype == torch.float64 else x.float()
        u = u * torch.rsqrt(u.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * u.to(x.dtype)


class Residual(nn.Module):
    """Learned per-channel scale on the skip path (4.4): h' = w * h + branch."""

    def __init__(self, n):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))

    def forward(self, skip, branch):
        return self.weight * skip + branch


# ---------------------------------------------------------------- RoPE (4.3)

def rope_cos_sin(cfg, positions, dim, dtype):
    """positions: LongTensor [T] of absolute positions of this call."""
    base = float(cfg.rope_theta)
    rs = cfg.rope_scaling or {}
    rtype = rs.get("rope_type", rs.get("type"))
    max_pos = int(cfg.max_position_embeddings)
    seq_len = int(positions.max().item()) + 1 if positions.numel() else 0
    if rtype == "dynamic" and seq_len > max_pos:
        f = float(rs.get("factor", 1.0))
        # HF _compute_dynamic_ntk_parameters
        base = base * ((f * seq_len / max_pos) - (f - 1)) ** (dim / (dim - 2))
    elif rtype not in (None, "default", "dynamic"):
        raise ValueError("unsupported rope_type %r" % rtype)
    inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
    ang = positions.float()[:, None] * inv_freq[None, :]  # fp32 like HF
    emb = torch.cat([ang, ang], dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], dim=-1)


def apply_rope(x, cos, sin):
    """x [..., T, heads, P]; cos/sin [T, P]."""
    c = cos[:, None, :]
    s = sin[:, None, :]
    return x * c + rotate_half(x) * s


# ---------------------------------------------------------------- SSD (4.5)

class SSD(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d = cfg.hidden_size
        H = cfg.num_attention_heads
        P = cfg.head_dim
        b = cfg.hidden_bias
        self.cfg = cfg
        self.H, self.P = H, P
        ng = getattr(cfg, "ssd_ngroups", None)
        self.ngroups = H if ng is None else int(ng)
        self.N = P  # state size per group (spec: N = P)
        gN = self.ngroups * self.N
        self.c_proj = nn.Linear(d, gN, bias=b)
        self.b_proj = nn.Linear(d, gN, bias=b)
        self.x_proj = nn.Linear(d, H * P, bias=b)
        self.dt_proj = nn.Linear(d, H, bias=b)
        self.A = nn.Parameter(torch.ones(H))
        self.out_proj = nn.Linear(H * P, d, bias=b)
        # optional (6 item 2): registered only when enabled, so names appear only then
        self.D = None
        self.dt_bias = None

    def enable_optional(self, D=False, dt_bias=False):
        if D:
            self.D = nn.Parameter(torch.ones(self.H))
        if dt_bias:
            self.dt_bias = nn.Parameter(torch.zeros(self.H))

    def _proj(self, x, positions):
        Bsz, T, _ = x.shape
        H, P, G, N = self.H, self.P, self.ngroups, self.N
        C = self.c_proj(x).view(Bsz, T, G, N)
        Bm = self.b_proj(x).view(Bsz, T, G, N)
        X = self.x_proj(x).view(Bsz, T, H, P)
        dt = self.dt_proj(x)  # [B,T,H]
        cos, sin = rope_cos_sin(self.cfg, positions, N, x.dtype)
        C = apply_rope(C, cos, sin)
        Bm = apply_rope(Bm, cos, sin)
        if G != H:  # heads share B/C by h // (H/G)
            rep = H // G
            C = C.repeat_interleave(rep, dim=2)
            Bm = Bm.repeat_interleave(rep, dim=2)
        if self.dt_bias is not None:
            dt = dt + self.dt_bias
        delta = F.softplus(dt)  # log1p(exp(z)), identity for z > 20
        return C, Bm, X, delta

    def forward(self, x, positions, mode="chunked", state=None, return_state=False):
        C, Bm, X, delta = self._proj(x, positions)
        A = self.A  # raw, used verbatim (6 item 1)
        if mode == "recurrent":
            Y, S = ssd_recurrent(X, delta, A, Bm, C, state)
        else:
            Y, S = ssd_chunked(X, delta, A, Bm, C, self.cfg.ssd_chunk_size if mode == "chunked" else int(mode), state)
        if self.D is not None:
            Y = Y + self.D[:, None] * X
        out = self.out_proj(Y.reshape(Y.shape[0], Y.shape[1], -1))
        return (out, S) if return_state else out


def ssd_recurrent(X, delta, A, Bm, C, state=None):
    """Step recurrence. X [B,T,H,P], delta [B,T,H], A [H], Bm/C [B,T,H,N].
    S_h = exp(delta*A) S_h + delta * X (outer) B ;  Y = S C.  S: [B,H,P,N]."""
    Bsz, T, H, P = X.shape
    N = Bm.shape[-1]
    S = torch.zeros(Bsz, H, P, N, dtype=X.dtype, device=X.device) if state is None else state
    ys = []
    for t in range(T):
        dA = torch.exp(delta[:, t] * A)  # [B,H]
        S = dA[:, :, None, None] * S + (delta[:, t, :, None, None] * X[:, t, :, :, None]) * Bm[:, t, :, None, :]
        ys.append(torch.einsum("bhpn,bhn->bhp", S, C[:, t]))
    return torch.stack(ys, dim=1), S


def ssd_chunked(X, delta, A, Bm, C, chunk, state=None):
    """Chunked (quadratic within chunk) form, same result up to rounding:
    y_t = sum_{s<=t in chunk} (C_t.B_s) exp(cs_t - cs_s) delta_s X_s + exp(cs_t) S_prev C_t,
    cs = cumulative sum of delta*A within the chunk."""
    Bsz, T, H, P = X.shape
    N = Bm.shape[-1]
    S = torch.zeros(Bsz, H, P, N, dtype=X.dtype, device=X.device) if state is None else state
    ys = []
    for c0 in range(0, T, chunk):
        c1 = min(T, c0 + chunk)
        L = c1 - c0
        dl = delta[:, c0:c1]  # [B,L,H]
        a = (dl * A).transpose(1, 2)  # [B,H,L]
        cs = torch.cumsum(a, dim=-1)  # [B,H,L]
        seg = cs[:, :, :, None] - cs[:, :, None, :]  # [B,H,t,s] = cs_t - cs_s
        causal = torch.ones(L, L, dtype=torch.bool, device=X.device).tril()
        decay = torch.exp(seg.masked_fill(~causal, float("-inf")))
        Cc = C[:, c0:c1].transpose(1, 2)  # [B,H,L,N]
        Bc = Bm[:, c0:c1].transpose(1, 2)
        Xc = (X[:, c0:c1] * dl[..., None]).transpose(1, 2)  # [B,H,L,P] delta_s X_s
        G = torch.matmul(Cc, Bc.transpose(-1, -2)) * decay  # [B,H,t,s]
        y = torch.matmul(G, Xc)  # [B,H,L,P]
        # carried state: S_prev C_t scaled by exp(cs_t)
        y = y + torch.exp(cs)[..., None] * torch.einsum("bhpn,bhtn->bhtp", S, Cc)
        ys.append(y.transpose(1, 2))
        # new state: exp(cs_L) S_prev + sum_s exp(cs_L - cs_s) delta_s X_s (outer) B_s
        w = torch.exp(cs[:, :, -1:] - cs)  # [B,H,L]
        S = torch.exp(cs[:, :, -1])[..., None, None] * S + torch.einsum("bhs,bhsp,bhsn->bhpn", w, Xc, Bc)
    return torch.cat(ys, dim=1), S


# ---------------------------------------------------------------- DMAttn (4.6)

class DMAttn(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d = cfg.hidden_size
        H = cfg.num_attention_heads
        KV = cfg.num_key_value_heads
        P = cfg.head_dim
        b = cfg.hidden_bias
        self.cfg = cfg
        self.H, self.KV, self.P = H, KV, P
        self.q_proj = nn.Linear(d, H * P, bias=b)
        self.k_proj = nn.Linear(d, KV * P, bias=b)
        self.v_proj = nn.Linear(d, KV * P, bias=b)
        self.A = nn.Parameter(torch.ones(H))
        self.dt_proj = nn.Linear(KV * P, H, bias=b)
        self.o_proj = nn.Linear(H * P, d, bias=b)
        # optional (spec 3.4 / 6 item 6): per-head q/k RMSNorm, only when enabled
        self.q_norm = None
        self.k_norm = None

    def enable_qk_norm(self):
        self.q_norm = RMSNorm(self.P, self.cfg.rms_norm_eps)
        self.k_norm = RMSNorm(self.P, self.cfg.rms_norm_eps)

    def forward(self, x, positions):
        Bsz, T, _ = x.shape
        H, KV, P = self.H, self.KV, self.P
        G = H // KV
        q = self.q_proj(x).view(Bsz, T, H, P)
        k = self.k_proj(x).view(Bsz, T, KV, P)
        vflat = self.v_proj(x)
        v = vflat.view(Bsz, T, KV, P)
        if self.q_norm is not None:
            q = self.q_norm(q)
            k = self.k_norm(k)
        cos, sin = rope_cos_sin(self.cfg, positions, P, x.dtype)
        q = apply_rope(q, cos, sin)
        k = apply_rope(k, cos, sin)
        # beta_j = exp(A * softplus(W_dt V_j)), per key position j and mask head m
        M = self.A.shape[0]
        beta = torch.exp(self.A * F.softplus(self.dt_proj(vflat)))  # [B,T,M]
        kh = k.repeat_interleave(G, dim=2)  # head h uses kv head h // G
        vh = v.repeat_interleave(G, dim=2)
        if M == H:
            bh = beta
        else:
            bh = beta.repeat_interleave(G, dim=2)
        s = torch.einsum("bthp,bjhp->bhtj", q, kh) * (P ** -0.5)
        s = s + bh.permute(0, 2, 1)[:, :, None, :]  # add beta_j to every query row
        cdt = s.dtype if s.dtype == torch.float64 else torch.float32
        s = s.to(cdt)
        ti = positions[:, None]
        tj = positions[None, :]
        allowed = tj <= ti
        sw = self.cfg.sliding_window
        if sw:
            allowed = allowed & (tj > ti - sw)
        neg = torch.finfo(cdt).min
        s = s.masked_fill(~allowed, neg)
        kw = self.cfg.keep_window_size
        if kw and T > kw:
            # keep the kw allowed keys with the largest beta per (h, t)
            bb = bh.permute(0, 2, 1)[:, :, None, :].expand(Bsz, H, T, T).to(cdt).masked_fill(~allowed, neg)
            top = bb.topk(kw, dim=-1).indices
            keep = torch.zeros_like(s, dtype=torch.bool).scatter(-1, top, True)
            s = s.masked_fill(~keep, neg)
        p = torch.softmax(s, dim=-1).to(x.dtype)
        o = torch.einsum("bhtj,bjhp->bthp", p, vh).reshape(Bsz, T, H * P)
        return self.o_proj(o)


# ---------------------------------------------------------------- FFN (4.7, 4.8a)

class MLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d, I, b = cfg.hidden_size, cfg.intermediate_size, cfg.hidden_bias
        self.act = _act(cfg.hidden_act)
        self.gate_proj = nn.Linear(d, I, bias=b)
        self.up_proj = nn.Linear(d, I, bias=b)
        self.down_proj = nn.Linear(I, d, bias=b)

    def forward(self, x):
        return self.down_proj(self.act(self.gate_proj(x)) * self.up_proj(x))


class CDMoE(MLP):
    """Dense SwiGLU + product-key retrieved single-neuron experts (4.8a)."""

    def __init__(self, cfg):
        super().__init__(cfg)
        d = cfg.hidden_size
        self.E = cfg.num_cdmoe_experts
        self.Hr = cfg.num_cdmoe_heads
        self.k = cfg.num_cdmoe_experts_per_head
        self.R = cfg.expert_retrieval_size
        self.Kk = int(math.isqrt(self.E))
        self.queries = nn.Linear(d, self.Hr * self.R, bias=False)
        self.keys = nn.Parameter(torch.zeros(self.Hr, self.Kk, 2, self.R // 2))
        self.down_embed = nn.Embedding(self.E, d)
        self.up_embed = nn.Embedding(self.E, d)

    def route(self, x):
        """returns (scores [..., Hr, k] softmaxed weights, expert ids [..., Hr, k])."""
        Hr, R, k, Kk = self.Hr, self.R, self.k, self.Kk
        q = self.queries(x)
        q = q.view(*q.shape[:-1], 2, Hr, R // 2)  # flat = p*(Hr*R/2) + h*(R/2) + n
        sim = torch.einsum("...phn,hcpn->...phc", q, self.keys)  # [..., 2, Hr, Kk]
        s, i = sim.topk(k, dim=-1)  # [..., 2, Hr, k]
        s0, s1 = s[..., 0, :, :], s[..., 1, :, :]
        i0, i1 = i[..., 0, :, :], i[..., 1, :, :]
        cand = s0[..., :, None] + s1[..., None, :]  # [..., Hr, k, k]
        ids = i0[..., :, None] * Kk + i1[..., None, :]
        cand = cand.flatten(-2)
        ids = ids.flatten(-2)
        sc, pos = cand.topk(k, dim=-1)
        eid = ids.gather(-1, pos)
        w = torch.softmax(sc, dim=-1)
        return w, eid

    def forward(self, x):
        dense = super().forward(x)
        w, eid = self.route(x)
        down = self.down_embed(eid)  # [..., Hr, k, d]
        up = self.up_embed(eid)
        g = self.act(torch.einsum("...d,...hkd->...hk", x, down)) * w
        experts = torch.einsum("...hk,...hkd->...d", g, up)
        return dense + experts


# ---------------------------------------------------------------- layers / model (4.9)

class DecoderLayer(nn.Module):
    def __init__(self, cfg, idx):
        super().__init__()
        d = cfg.hidden_size
        self.is_attn = cfg.layer_is_attn(idx)
        self.pre_sequence_layernorm = RMSNorm(d, cfg.rms_norm_eps)
        if self.is_attn:
            self.attn = DMAttn(cfg)
        else:
            self.ssd = SSD(cfg)
        self.post_sequence_residual = Residual(d)
        self.pre_state_layernorm = RMSNorm(d, cfg.rms_norm_eps)
        self.feed_forward = CDMoE(cfg) if cfg.is_moe else MLP(cfg)
        self.post_state_residual = Residual(d)

    def forward(self, h, positions, ssd_mode="chunked"):
        x = self.pre_sequence_layernorm(h)
        a = self.attn(x, positions) if self.is_attn else self.ssd(x, positions, mode=ssd_mode)
        h = self.post_sequence_residual(h, a)
        m = self.feed_forward(self.pre_state_layernorm(h))
        return self.post_state_residual(h, m)


class CheemsModel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.word_embed = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList([DecoderLayer(cfg, i) for i in range(cfg.num_hidden_layers)])
        self.final_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)


class CheemsForCausalLM(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.config = cfg
        self.model = CheemsModel(cfg)
        self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        if cfg.tie_word_embeddings:
            self.lm_head.weight = self.model.word_embed.weight

    def hidden(self, tokens, ssd_mode="chunked", positions=None):
        if tokens.dim() == 1:
            tokens = tokens[None]
        T = tokens.shape[1]
        if positions is None:
            positions = torch.arange(T, device=tokens.device)
        h = self.model.word_embed(tokens)
        for layer in self.model.layers:
            h = layer(h, positions, ssd_mode)
        return self.model.final_layernorm(h)

    def forward(self, tokens, ssd_mode="chunked"):
        """tokens [T] or [B,T] -> logits [B,T,V] (dtype of the parameters).
        ssd_mode: "chunked" (ssd_chunk_size), "recurrent" (step recurrence),
        or an int string giving another chunk size."""
        return self.lm_head(self.hidden(tokens, ssd_mode))


# ---------------------------------------------------------------- init helpers

def init_weights(model, seed=0, std=0.02, ssd_A_range=(1.0, 16.0), randomize_scales=0.0, attn_A_range=None):
    """Deterministic init.  SSD A = -U(a,b) (spec 6 item 1, for models we train);
    randomize_scales > 0 puts norm weights / residual scales at 1 + U(-r, r)."""
    g = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        with torch.no_grad():
            if name.endswith("ssd.A"):
                lo, hi = ssd_A_range
                p.copy_(-(lo + (hi - lo) * torch.rand(p.shape, generator=g)))
            elif name.endswith("attn.A"):
                if attn_A_range is None:
                    p.zero_()
                else:
                    lo, hi = attn_A_range
                    p.copy_(lo + (hi - lo) * torch.rand(p.shape, generator=g))
            elif name.endswith("layernorm.weight") or name.endswith("residual.weight"):
                if randomize_scales > 0:
                    p.copy_(1 + randomize_scales * (2 * torch.rand(p.shape, generator=g) - 1))
                else:
                    p.fill_(1.0)
            elif name.endswith(".bias"):
                p.zero_()
            elif name.endswith("ssd.dt_proj.weight"):
                p.copy_(torch.randn(p.shape, generator=g) * std)
            else:
                p.copy_(torch.randn(p.shape, generator=g) * std)
    return model


# ---------------------------------------------------------------- save / load

def state_dict_for_save(model, include_tied=False):
    sd = model.state_dict()
    if model.config.tie_word_embeddings and not include_tied:
        sd.pop("lm_head.weight", None)
    return sd


def save_pretrained(model, out_dir, dtype=None, safetensors=True, bin=True, tokenizer_dir=None):
    """HF layout: config.json, model.safetensors (tied lm_head omitted, as HF
    does), pytorch_model.bin (torch.save of the state_dict; the tied lm_head
    shares storage with the embedding, as module.state_dict() gives it)."""
    from safetensors.torch import save_file

    os.makedirs(out_dir, exist_ok=True)
    cfg = model.config.to_dict()
    sd = state_dict_for_save(model, include_tied=False)
    if dtype is not None:
        sd = {k: v.to(dtype) for k, v in sd.items()}
    cfg["torch_dtype"] = str(next(iter(sd.values())).dtype).replace("torch.", "")
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")
    if safetensors:
        save_file({k: v.contiguous() for k, v in sd.items()}, os.path.join(out_dir, "model.safetensors"),
                  metadata={"format": "pt"})
    if bin:
        m = model if dtype is None else _cast_copy(model, dtype)
        sdb = m.state_dict()  # includes lm_head.weight sharing the embedding's storage
        torch.save(sdb, os.path.join(out_dir, "pytorch_model.bin"))


def _cast_copy(model, dtype):
    import copy

    m = copy.deepcopy(model)
    return m.to(dtype)


def load_pretrained(path, dtype=torch.float32):
    with open(os.path.join(path, "config.json")) as f:
        cfgd = json.load(f)
    cfg = CheemsConfig.from_dict(cfgd)
    model = CheemsForCausalLM(cfg)
    st = os.path.join(path, "model.safetensors")
    if os.path.exists(st):
        from safetensors.torch import load_file

        sd = load_file(st)
    else:
        sd = torch.load(os.path.join(path, "pytorch_model.bin"), map_location="cpu", weights_only=True)
    # optional SSD tensors by presence (6 item 2)
    for i, layer in enumerate(model.model.layers):
        if not layer.is_attn:
            pre = "model.layers.%d.ssd." % i
            layer.ssd.enable_optional(D=(pre + "D") in sd, dt_bias=(pre + "dt_bias") in sd)
    if cfg.tie_word_embeddings:
        sd.pop("lm_head.weight", None)
    missing, unexpected = model.load_state_dict(sd, strict=False)
    missing = [m for m in missing if not (cfg.tie_word_embeddings and m == "lm_head.weight")]
    if missing or unexpected:
        raise ValueError("load_pretrained: missing %s unexpected %s" % (missing, unexpected))
    return model.to(dtype)


# ---------------------------------------------------------------- generation

@torch.no_grad()
def greedy(model, prompt, n_new, ssd_mode="chunked"):
    ids = list(prompt)
    dev = next(model.parameters()).device
    for _ in range(n_new):
        logits = model(torch.tensor(ids, dtype=torch.long, device=dev), ssd_mode=ssd_mode)
        ids.append(int(logits[0, -1].argmax().item()))
    return ids[len(prompt):]


def count_params(model):
    seen = set()
    n = 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        n += p.numel()
    return n


if __name__ == "__main__":
    # self-check: chunked == recurrent, CDMoE shortcut == brute force
    torch.manual_seed(0)
    cfg = CheemsConfig(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=4,
                       num_attention_heads=4, num_key_value_heads=2, attn_layer_period=2, attn_layer_offset=1,
                       is_moe=True, num_cdmoe_experts=64, num_cdmoe_heads=2, num_cdmoe_experts_per_head=4,
                       expert_retrieval_size=16, ssd_chunk_size=5, max_position_embeddings=16,
                       rope_scaling={"rope_type": "dynamic", "factor": 4.0})
    m = init_weights(CheemsForCausalLM(cfg), seed=1, std=0.2, attn_A_range=(-1, 1), randomize_scales=0.2).double()
    toks = torch.randint(0, 64, (23,))
    a = m(toks, "chunked")
    b = m(toks, "recurrent")
    print("chunked vs recurrent max |diff|:", (a - b).abs().max().item())
    assert (a - b).abs().max().item() < 1e-10
    # brute force CDMoE
    ff = m.model.layers[0].feed_forward
    x = torch.randn(7, 32, dtype=torch.float64)
    w, eid = ff.route(x)
    q = ff.queries(x).view(7, 2, ff.Hr, ff.R // 2)
    for t in range(7):
        for h in range(ff.Hr):
            full = {}
            for i in range(ff.Kk):
                for j in range(ff.Kk):
                    full[i * ff.Kk + j] = float(q[t, 0, h] @ ff.keys[h, i, 0] + q[t, 1, h] @ ff.keys[h, j, 1])
            best = sorted(full, key=lambda e: -full[e])[: ff.k]
            assert sorted(best) == sorted(eid[t, h].tolist()), (best, eid[t, h])
    print("CDMoE product-key top-k matches brute force")
    print("params:", count_params(m))
