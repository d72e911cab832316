"""A character-level tokenizer for the tiny models, built locally (no download).

Vocabulary: <pad>, <bos>, <eos>, <unk>, then newline and every printable ASCII character
(space .. ~), one token each. It is a `tokenizers` BPE model with no merges (so every character is
its own token) and a Fuse decoder (tokens are joined without spaces), wrapped in transformers'
PreTrainedTokenizerFast and saved with save_pretrained; reload with AutoTokenizer.from_pretrained.

No chat template: prompts go in as plain text (ilr.prompts.encode_prompt). No special token is
added on encode (no post-processor): the study encodes prompts with add_special_tokens=False and
the warm-up appends <eos> to every target. Padding side is left, for batched generation.
"""

from __future__ import annotations

import string

SPECIALS = ["<pad>", "<bos>", "<eos>", "<unk>"]
CHARS = ["\n"] + [chr(c) for c in range(32, 127)]


def vocab() -> dict[str, int]:
    return {t: i for i, t in enumerate(SPECIALS + CHARS)}


def build_tokenizer(model_max_length: int = 512):
    from tokenizers import Tokenizer, decoders, models
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(vocab=vocab(), merges=[], unk_token="<unk>"))
    tok.decoder = decoders.Fuse()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", bos_token="<bos>", eos_token="<eos>", unk_token="<unk>",
        padding_side="left", truncation_side="left", model_max_length=model_max_length,
        clean_up_tokenization_spaces=False)
    return fast


assert set(string.printable) - set(CHARS) == set("\t\r\x0b\x0c")
