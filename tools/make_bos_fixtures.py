#!/usr/bin/env python3
"""BOS as HF tokenizers adds it (issue 12 item 5; run by `make fixtures`).

transformers 5 no longer writes add_bos_token to tokenizer_config.json: the
post_processor of tokenizer.json decides what tokenizer(text) puts before the
text, and (checked with the pinned transformers) the config key is ignored
when a post_processor exists. For each case below this script writes
tests/fixtures/tokenizer/bos/<case>/{tokenizer.json, tokenizer_config.json,
expected.json}: the tokenizer of tests/fixtures/models/doge-dense with its
post_processor / config changed, and what the pinned transformers returns for
tokenizer(TEXT) and for the same text without special tokens. The test
(tests/t_bos.sh) converts a model with each tokenizer and checks
tokenizer.ggml.add_bos_token and bos_token_id against expected.json.
"""
import copy
import json
import os
import shutil
import tempfile

from transformers import AutoTokenizer

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
SRC = os.path.join(ROOT, "tests/fixtures/models/doge-dense")
OUT = os.path.join(ROOT, "tests/fixtures/tokenizer/bos")
TEXT = "def greet(name):\n    return name"


def template(first):
    return {"type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": first, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": first, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {first: {"id": first, "ids": [VOCAB[first]], "tokens": [first]}}}


BYTELEVEL = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}


def cases():
    # name: (post_processor or None for null, tokenizer_config changes)
    return {
        "tf5_template": (template("<s>"), {"drop": ["add_bos_token", "add_eos_token"]}),
        "template_cfg_false": (template("<s>"), {"set": {"add_bos_token": False}}),
        "bytelevel_cfg_true": (BYTELEVEL, {"set": {"add_bos_token": True}}),
        "sequence_template": ({"type": "Sequence", "processors": [BYTELEVEL, template("<s>")]},
                              {"drop": ["add_bos_token"]}),
        "template_other_token": (template("</s>"), {"drop": ["add_bos_token"]}),
    }


def main():
    global VOCAB
    tok_json = json.load(open(os.path.join(SRC, "tokenizer.json")))
    cfg_json = json.load(open(os.path.join(SRC, "tokenizer_config.json")))
    VOCAB = {t["content"]: t["id"] for t in tok_json["added_tokens"]}
    shutil.rmtree(OUT, ignore_errors=True)
    for name, (pp, change) in cases().items():
        d = os.path.join(OUT, name)
        os.makedirs(d)
        t = copy.deepcopy(tok_json)
        t["post_processor"] = pp
        c = copy.deepcopy(cfg_json)
        for k in change.get("drop", []):
            c.pop(k, None)
        c.update(change.get("set", {}))
        json.dump(t, open(os.path.join(d, "tokenizer.json"), "w"), indent=1)
        json.dump(c, open(os.path.join(d, "tokenizer_config.json"), "w"), indent=1)
        with tempfile.TemporaryDirectory() as tmp:
            shutil.copy(os.path.join(d, "tokenizer.json"), tmp)
            shutil.copy(os.path.join(d, "tokenizer_config.json"), tmp)
            hf = AutoTokenizer.from_pretrained(tmp)
            ids = hf(TEXT)["input_ids"]
            plain = hf(TEXT, add_special_tokens=False)["input_ids"]
        added = ids[:len(ids) - len(plain)] if ids[len(ids) - len(plain):] == plain else None
        assert added is not None and len(added) <= 1, (name, ids, plain)  # only prefixes are cases here
        exp = {"text": TEXT, "ids": ids, "plain_ids": plain, "add_bos": len(added) == 1,
               "bos_id": added[0] if added else None, "tokenizer_class": type(hf).__name__}
        json.dump(exp, open(os.path.join(d, "expected.json"), "w"), indent=1)
        print(f"{name}: tokenizer(text) adds {added}")


if __name__ == "__main__":
    main()
