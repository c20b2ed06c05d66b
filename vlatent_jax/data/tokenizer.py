"""A small byte-level BPE tokenizer trained locally, with Qwen2.5-VL's special tokens.

Real models use the tokenizer files in their HF directory; this one serves the
embedded benchmark and demos, which may not download anything. It is saved in
HF format (tokenizer.json + tokenizer_config.json with a chat template), so the
same `AutoTokenizer.from_pretrained(dir)` code path loads both.

`added_tokens` become single tokens that are not special: the reasoning tags
`<think>`, `</think>`, `<answer>`, `</answer>` must survive
`decode(..., skip_special_tokens=True)`, since evaluation reads the answer out
of the decoded text.
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers

from vlatent_jax.data.prompts import ANSWER_CLOSE, ANSWER_OPEN, THINK_CLOSE, THINK_OPEN

SPECIAL_TOKENS = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
    "<|image_pad|>", "<|video_pad|>", "<|latent_start|>", "<|latent_end|>", "<|latent_pad|>",
)
REASONING_TOKENS = (THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE)

# Qwen2.5-VL's template reduced to what video QA needs: user turns may hold a video.
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def train_tokenizer(texts: Iterable[str], out_dir: str, vocab_size: int = 1024,
                    special_tokens: tuple[str, ...] = SPECIAL_TOKENS, added_tokens: tuple[str, ...] = ()):
  """Trains BPE on `texts`, saves an HF tokenizer to `out_dir`, returns the HF tokenizer.

  `vocab_size` bounds the whole vocabulary, `added_tokens` (plain, non-special tokens) included.
  """
  from transformers import PreTrainedTokenizerFast

  tok = Tokenizer(models.BPE())
  tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
  tok.decoder = decoders.ByteLevel()
  trainer = trainers.BpeTrainer(vocab_size=vocab_size - len(added_tokens), special_tokens=list(special_tokens),
                                initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
  tok.train_from_iterator(texts, trainer)
  tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in added_tokens])
  hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   additional_special_tokens=list(special_tokens[1:]))
  hf_tok.chat_template = CHAT_TEMPLATE
  hf_tok.save_pretrained(out_dir)
  return hf_tok
