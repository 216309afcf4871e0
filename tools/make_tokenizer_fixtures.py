#!/usr/bin/env python3
"""Builds the tokenizer fixtures read by tests/test_tokenizer.c.

Trains three small BPE tokenizers with HF `tokenizers` on Python's own
documentation (deterministic input), derives variants by editing their
tokenizer.json (other pre-tokenizer behaviours, legacy merges format,
post-processors, unk instead of byte fallback, Metaspace), and records the ids
`tokenizers` produces for short edge cases, a Unicode stress file, a prose
file and (when present) data/eval.txt — plus the bundled model's tokenizer
(models/cheems-tiny/tokenizer.json) on the stress and eval texts.

Outputs (tests/fixtures/tokenizer/):
  stress.txt, prose.txt      input texts (bytes, read by the C test as is)
  <name>.json                tokenizer.json of each trained/derived tokenizer
  <name>.expected.json       {"tokenizer": path, "vocab_size", "bytelevel",
                              "strip_first_space", "cases": [{text,
                              add_special, ids, decoded (HF decode with
                              special tokens, add_special false only)}],
                              "files": [{path, add_special, ids, decoded_hex
                              (only where it differs from the file)}]}

Rerun: python3 tools/make_tokenizer_fixtures.py   (needs `tokenizers`)
"""
import copy
import glob
import json
import os
import sys

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "tokenizer")
REL = "tests/fixtures/tokenizer"
DOCS = "/usr/share/doc/python3.11/html/_sources"

LLAMA3_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
             r"\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_RE = LLAMA3_RE.replace(r"\p{N}{1,3}", r"\p{N}")
GPT2_RE = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"

# One line per theme; every line is also a separate short case.
STRESS_LINES = [
    "Hello, world! The quick brown fox jumps over the lazy dog.",
    "漢字かなカナ한국어 中文测试，标点。「引用」【括弧】",
    "مرحبا بالعالم ١٢٣٤٥ — السَّلَامُ عَلَيْكُمْ",
    "नमस्ते दुनिया क़ि ज़्यादा हिन्दी",
    "emoji: 👩‍👩‍👧‍👦 👍🏽 👍🏿 🏳️‍🌈 ❤️ 🇩🇪 🧑🏻‍💻 ☕",
    "Greek ΑΒΓ αβγ ΣΊΣΥΦΟΣ σίσυφος, Cyrillic Привет МИР ёЁ ǅ ǈ",
    "numbers 1 12 123 1234 12345 123456789 3.14159 1,000,000 -42 +7e10",
    "digits ١٢٣ ۱۲۳ ४२ ๓๔ ½ ² ⅻ Ⅻ 𝟙𝟚𝟛 ①②",
    "I'm you'RE they'Ve it'S we'LL he'd she'D don't DON'T 'ſ 'st ''s '' 's",
    "a  b   c\t\td\r\ne\n\n\nf \n g\u00a0h\u3000i\u2028j\u2029k\u0085l\u000bm\u000cn    \n   ",
    "ctl \x01\x02\x1b[31mred\x1b[0m \x7f\u200b\u200c\u200d\ufeff end",
    "special <|endoftext|> <s>x</s> <|begin_of_text|>hi<|eot_id|> a<|sep|>b  <|sep|>  c <|im_start|>",
    "added hyquant xhyquanty foo foobar (foo) _foo foo_ Foo ▁foo",
    "sentencepiece ▁▁x ▁ <0x41> <unk> ▁hyquant",
    "newer Unicode: \u1c89\u1c8a \U00031350\U00031351 \U0001fae8 \ua7cb",
    "odd \ufffd \ue000 \U0010fffd \U000e0041 \u0301a\u0301 e\u0301 \u00e9 \u2126 \u212b",
    "code: def f(x):\n    return x**2  # comment\n\tif a!=b: pass\r\n",
    "url https://example.com/a_b-c?d=1&e=%20 mail a.b@c.de path C:\\Users\\x",
    "long " + "a" * 300 + " " + "ab" * 150 + " " + "7" * 40 + " " + "-" * 50 + "\n",
    "spaces end" + " " * 40,
]

# Extra short cases (each tokenized alone).
SHORT = [
    "", " ", "  ", "\n", "\r\n", " \n ", "a", " a", "  a", "a ", "a  ", "'s", " 's", "'S", "x's", "a'sb",
    "ab12345cd", "1234567", "٣٤٥٦", " 12 ", "..", " ...", "!!a", "a\n\nb", " \n\n a", "\t\tx", "x\u00a0\u00a0y",
    "<s>", "<s><s>", "x<s>y", " <s> ", "</s>", "<|endoftext|>", "<|endoftext|><|endoftext|>", "a<|sep|>", "<|sep|>",
    " <|sep|> ", "hyquant", " hyquant", "hyquanthyquant", "foo", " foo ", "foo.", "afoo", "▁", "▁▁", "▁a",
    "a▁b", "<0x41>", "é", "e\u0301", "👍🏽", "\u1c89", "ſ", "'ſ", "'ſt", "it'ſa", "'Ll", "'lL", "'Re", "'rE", "'Sx", "'tx", "'VEry", "'mM", "'dd", "Ǆ", "İstanbul",
]


# Random strings over the characters the matchers treat specially (seeded, so
# reruns give the same cases): differential coverage beyond hand-picked cases.
RANDOM_ATOMS = [" ", " ", " ", "  ", "\n", "\r", "\r\n", "\t", "\u00a0", "\u3000", "\u2028", "'", "'", "s", "S", "t", "T",
                "re", "RE", "ve", "m", "ll", "LL", "d", "D", "ſ", "a", "b", "Z", "hello", "World", "1", "22", "333",
                "4444", "٣", "½", "Ⅻ", ".", ",", "!?", "-", "--", "_", "(", ")", "é", "e\u0301", "\u0301", "漢字", "ひ",
                "👍", "🏽", "\u200d", "▁", "▁▁", "<s>", "</s>", "<|sep|>", "<|endoftext|>", "<|begin_of_text|>",
                "hyquant", "foo", "\x01", "\x7f", "\u1c89", "<0x41>", "ǅ", "ß", "İ"]


def random_cases(n=200, seed=1234):
    import random
    rng = random.Random(seed)
    return ["".join(rng.choice(RANDOM_ATOMS) for _ in range(rng.randint(1, 14))) for _ in range(n)]


def read_docs():
    files = sorted(glob.glob(os.path.join(DOCS, "tutorial", "*.rst.txt")))
    files += sorted(glob.glob(os.path.join(DOCS, "howto", "*.rst.txt")))[:8]
    if not files:
        sys.exit(f"no training text under {DOCS}")
    return [open(f, encoding="utf-8").read() for f in files]


def train_gpt2(texts):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=True)
    tr = trainers.BpeTrainer(vocab_size=1000, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                             special_tokens=["<|endoftext|>"], show_progress=False)
    tok.train_from_iterator(texts, tr)
    tok.add_special_tokens([AddedToken("<|sep|>", special=True, lstrip=True, rstrip=True, normalized=False)])
    tok.add_tokens([AddedToken("hyquant", special=False), AddedToken("foo", single_word=True, special=False)])
    return tok


def train_llama3(texts):
    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_RE), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    tr = trainers.BpeTrainer(vocab_size=1200, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                             special_tokens=["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"], show_progress=False)
    tok.train_from_iterator(texts, tr)
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B",
                                      special_tokens=[("<|begin_of_text|>", bos)]),
    ])
    return tok


def train_sp(texts):
    byte_toks = [f"<0x{b:02X}>" for b in range(256)]
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never", split=True)
    tr = trainers.BpeTrainer(vocab_size=800 + 259, special_tokens=["<unk>", "<s>", "</s>"] + byte_toks,
                             limit_alphabet=120, show_progress=False)
    tok.train_from_iterator(texts, tr)
    # Llama-2 layout: no pre-tokenizer at inference, byte tokens are plain vocab
    d = json.loads(tok.to_str())
    d["pre_tokenizer"] = None
    d["added_tokens"] = [a for a in d["added_tokens"] if a["content"] not in byte_toks]
    d["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
        {"type": "ByteFallback"}, {"type": "Fuse"},
        {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}
    tok = Tokenizer.from_str(json.dumps(d))
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", tok.token_to_id("<s>"))])
    tok.add_special_tokens([AddedToken("<|im_start|>", special=True, normalized=False)])
    tok.add_tokens([AddedToken("hyquant", special=False, normalized=True)])
    return tok


def variant(tok, edit):
    d = json.loads(tok.to_str())
    edit(d)
    return Tokenizer.from_str(json.dumps(d, ensure_ascii=False))


def legacy_merges(d):
    d["model"]["merges"] = [" ".join(m) if isinstance(m, list) else m for m in d["model"]["merges"]]


def strips_first_space(d):
    dec = d.get("decoder") or {}
    decs = dec.get("decoders", [dec]) if dec.get("type") == "Sequence" else [dec]
    for x in decs:
        if x.get("type") == "Strip" and x.get("start", 0) >= 1:
            return True
        if x.get("type") == "Metaspace" and x.get("prepend_scheme", "always") != "never":
            return True
    return False


def fnv1a64(raw):
    """FNV-1a 64 of the bytes: lets the C test name a stale fixture."""
    h = 0xcbf29ce484222325
    for b in raw:
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def expected(tok, tok_path, files):
    d = json.loads(tok.to_str())
    dec = d.get("decoder") or {}
    bytelevel = dec.get("type") == "ByteLevel"
    cases = []
    for text in SHORT + STRESS_LINES:
        if "\x00" in text:
            continue
        for add in (False, True):
            ids = tok.encode(text, add_special_tokens=add).ids
            case = {"text": text, "add_special": add, "ids": ids}
            if not add:
                case["decoded"] = tok.decode(ids, skip_special_tokens=False)
            cases.append(case)
    for text in random_cases():
        ids = tok.encode(text, add_special_tokens=False).ids
        cases.append({"text": text, "add_special": False, "ids": ids,
                      "decoded": tok.decode(ids, skip_special_tokens=False)})
    fl = []
    for path, add in files:
        raw = open(os.path.join(ROOT, path), "rb").read()
        text = raw.decode("utf-8")
        ids = tok.encode(text, add_special_tokens=add).ids
        ent = {"path": path, "add_special": add, "ids": ids, "bytes": len(raw), "fnv1a64": fnv1a64(raw)}
        dec_text = tok.decode(ids, skip_special_tokens=False)
        if not add and dec_text != text:  # absent: HF decodes back to the text itself
            ent["decoded_hex"] = dec_text.encode("utf-8").hex()  # hex: the text may hold NUL
        fl.append(ent)
    # BOS/EOS (runtime/tokenizer.h rule): ids the post-processor puts around
    # the text (found by HF encode of "a"), else the conventional special tokens
    for probe in ("a", "hyquant", "<|eot_id|>", "<|im_start|>"):  # text that survives pre-tokenization
        plain = tok.encode(probe, add_special_tokens=False).ids
        full = tok.encode(probe, add_special_tokens=True).ids
        if plain and full.count(plain[0]) == 1:
            break
    else:
        sys.exit(f"{tok_path}: no probe text to locate the post-processor's ids")
    at = next(i for i in range(len(full)) if full[i:i + len(plain)] == plain)
    pre, suf = full[:at], full[at + len(plain):]
    special = {a["content"]: a["id"] for a in d["added_tokens"] if a["special"]}
    bos = pre[-1] if pre else next((special[n] for n in ("<s>", "<|begin_of_text|>", "<|startoftext|>", "<bos>")
                                     if n in special), -1)
    eos = suf[0] if suf else next((special[n] for n in ("</s>", "<|end_of_text|>", "<|endoftext|>", "<eos>", "<|im_end|>")
                                    if n in special), -1)
    return {"tokenizer": tok_path, "tokenizer_fnv1a64": fnv1a64(open(os.path.join(ROOT, tok_path), "rb").read()),
            "vocab_size": tok.get_vocab_size(with_added_tokens=True), "bos": bos, "eos": eos,
            "bytelevel": bytelevel, "strip_first_space": strips_first_space(d), "cases": cases, "files": fl}


def main():
    os.makedirs(OUT, exist_ok=True)
    stress = "\n".join(STRESS_LINES) + "\nnul \x00 byte\n"
    with open(os.path.join(OUT, "stress.txt"), "wb") as f:
        f.write(stress.encode("utf-8"))
    prose = open(os.path.join(DOCS, "tutorial", "classes.rst.txt"), encoding="utf-8").read()[:30000]
    with open(os.path.join(OUT, "prose.txt"), "wb") as f:
        f.write(prose.encode("utf-8"))
    texts = read_docs()
    stress_f, prose_f, eval_f = f"{REL}/stress.txt", f"{REL}/prose.txt", "data/eval.txt"
    have_eval = os.path.exists(os.path.join(ROOT, eval_f))
    big = [(stress_f, False), (stress_f, True), (prose_f, False)] + ([(eval_f, False)] if have_eval else [])
    small = [(stress_f, False)]

    gpt2 = train_gpt2(texts)
    llama3 = train_llama3(texts)
    sp = train_sp(texts)

    def gpt2_prefix(d):
        d["pre_tokenizer"]["add_prefix_space"] = True
        legacy_merges(d)
        eot, sep = d["model"]["vocab"]["<|endoftext|>"], [a["id"] for a in d["added_tokens"] if a["content"] == "<|sep|>"][0]
        d["post_processor"] = {"type": "RobertaProcessing", "sep": ["<|endoftext|>", eot], "cls": ["<|sep|>", sep],
                               "trim_offsets": True, "add_prefix_space": True}

    def qwen2(d):
        d["pre_tokenizer"]["pretokenizers"][0]["pattern"] = {"Regex": QWEN2_RE}
        d["model"]["ignore_merges"] = False

    def behaviors1(d):
        d["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"String": " "}, "behavior": "MergedWithPrevious", "invert": False},
            {"type": "Split", "pattern": {"Regex": LLAMA3_RE}, "behavior": "Isolated", "invert": False},
            {"type": "Digits", "individual_digits": True},
            {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": False}]}

    def behaviors2(d):
        d["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"String": "e"}, "behavior": "Contiguous", "invert": False},
            {"type": "Split", "pattern": {"String": "-"}, "behavior": "MergedWithNext", "invert": False},
            {"type": "Split", "pattern": {"Regex": GPT2_RE}, "behavior": "Removed", "invert": True},
            {"type": "Digits", "individual_digits": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}]}

    def behaviors3(d):
        d["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": LLAMA3_RE}, "behavior": "Removed", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]}

    def sp_unk(d):
        d["model"]["byte_fallback"] = False

    def sp_meta(d):
        d["normalizer"] = None
        d["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": False}
        d["decoder"] = {"type": "Sequence", "decoders": [{"type": "ByteFallback"},
                        {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": False}]}

    def sp_meta_split(d):
        d["normalizer"] = None
        d["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": True}
        legacy_merges(d)

    toks = [
        ("gpt2", gpt2, big), ("gpt2_prefix", variant(gpt2, gpt2_prefix), small),
        ("llama3", llama3, big), ("qwen2", variant(llama3, qwen2), small),
        ("behaviors1", variant(llama3, behaviors1), small), ("behaviors2", variant(llama3, behaviors2), small),
        ("behaviors3", variant(llama3, behaviors3), small),
        ("sp", sp, big), ("sp_unk", variant(sp, sp_unk), small), ("sp_meta", variant(sp, sp_meta), small),
        ("sp_meta_split", variant(sp, sp_meta_split), small),
    ]
    for name, tok, files in toks:
        path = f"{REL}/{name}.json"
        with open(os.path.join(ROOT, path), "w", encoding="utf-8") as f:
            f.write(tok.to_str())
        exp = expected(tok, path, files)
        with open(os.path.join(OUT, f"{name}.expected.json"), "w", encoding="utf-8") as f:
            json.dump(exp, f, ensure_ascii=False, separators=(",", ":"))
        print(f"{name}: vocab {exp['vocab_size']}, {len(exp['cases'])} cases, {len(exp['files'])} files")
    model = "models/cheems-tiny/tokenizer.json"
    if os.path.exists(os.path.join(ROOT, model)):
        tok = Tokenizer.from_file(os.path.join(ROOT, model))
        exp = expected(tok, model, big)
        with open(os.path.join(OUT, "cheems_tiny.expected.json"), "w", encoding="utf-8") as f:
            json.dump(exp, f, ensure_ascii=False, separators=(",", ":"))
        print(f"cheems_tiny: vocab {exp['vocab_size']}, {len(exp['cases'])} cases, {len(exp['files'])} files")
    else:
        print(f"{model} not found: no expected ids for the bundled model")


if __name__ == "__main__":
    main()
