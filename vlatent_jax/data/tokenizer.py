"""A small byte-level BPE tokenizer trained locally, with Qwen2.5-VL's special tokens.

Real models use the tokenizer files in their HF directory; this one serves the
embedded benchmark and demos, which may not download anything. It is saved in
HF format (tokenizer.json + tokenizer_config.json with a chat template), so the
same `AutoTokenizer.from_pretrained(dir)` code path loads both.
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

SPECIAL_TOKENS = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
    "<|image_pad|>", "<|video_pad|>", "<|latent_start|>", "<|latent_end|>", "<|latent_pad|>",
)

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
                    special_tokens: tuple[str, ...] = SPECIAL_TOKENS):
  """Trains BPE on `texts`, saves an HF tokenizer to `out_dir`, returns the HF tokenizer."""
  from transformers import PreTrainedTokenizerFast

  tok = Tokenizer(models.BPE())
  tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
  tok.decoder = decoders.ByteLevel()
  trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(special_tokens),
                                initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
  tok.train_from_iterator(texts, trainer)
  hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   additional_special_tokens=list(special_tokens[1:]))
  hf_tok.chat_template = CHAT_TEMPLATE
  hf_tok.save_pretrained(out_dir)
  return hf_tok
