"""Tiny randomly initialised reward models, built and saved to a folder by the tests.

No hub access: the tokenizer is a WordLevel vocabulary built with ``tokenizers`` from a word
list, the model a 2-layer Llama (or BERT) sequence classifier with hidden size 32 and one
logit. ``armo=True`` adds remote code (``trust_remote_code``) whose output carries an
ArmoRM-style ``score`` beside per-objective ``rewards``, so that path runs for real.
"""

from __future__ import annotations

import json
from pathlib import Path

_WORDS = ("the a is of to and in it answer question good bad detail rainbow light water sun "
         "rain tide moon explain describe why how what yes no very short long because")
WORDS = _WORDS.split()
SPECIAL = ["[PAD]", "[UNK]", "[BOS]", "[EOS]", "[CLS]", "[SEP]", "user", "assistant", ":"]
# A chat template in the usual shape: BOS, then role-tagged turns each closed by EOS.
CHAT_TEMPLATE = ("{{ bos_token }}{% for m in messages %}{{ m['role'] }}: {{ m['content'] }} "
                 "{{ eos_token }}{% endfor %}")

_ARMO_CONFIG = '''
from transformers import PretrainedConfig


class TinyArmoConfig(PretrainedConfig):
    model_type = "tiny_armo"

    def __init__(self, vocab_size=64, hidden_size=32, objectives=3, pad_token_id=0, **kw):
        self.vocab_size, self.hidden_size, self.objectives = vocab_size, hidden_size, objectives
        super().__init__(pad_token_id=pad_token_id, **kw)
'''

_ARMO_MODEL = '''
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from .configuration_tiny_armo import TinyArmoConfig


@dataclass
class ArmoOutput(ModelOutput):
    rewards: torch.FloatTensor | None = None
    score: torch.FloatTensor | None = None


class TinyArmoRM(PreTrainedModel):
    """ArmoRM's output shape: per-objective rewards, and a gated ``score`` of shape [B, 1]."""

    config_class = TinyArmoConfig

    def __init__(self, config):
        super().__init__(config)
        self.embed = torch.nn.Embedding(config.vocab_size, config.hidden_size)
        self.rewards = torch.nn.Linear(config.hidden_size, config.objectives)
        self.gate = torch.nn.Linear(config.hidden_size, config.objectives)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, **kw):
        mask = attention_mask.unsqueeze(-1).float()
        hidden = (self.embed(input_ids) * mask).sum(1) / mask.sum(1)
        rewards = self.rewards(hidden)
        weights = torch.softmax(self.gate(hidden), dim=-1)
        return ArmoOutput(rewards=rewards, score=(rewards * weights).sum(-1, keepdim=True))
'''


def _tokenizer(chat: bool, bert: bool):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate([*SPECIAL, *WORDS])}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    if bert:  # [CLS] a [SEP] (b [SEP]): what text-pair encoding gives BERT-style models
        core.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
            special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="[PAD]", unk_token="[UNK]", bos_token="[BOS]",
        eos_token="[EOS]", cls_token="[CLS]", sep_token="[SEP]", model_max_length=128)
    if chat:
        tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_tiny_reward_model(folder: Path, *, kind: str = "llama", chat: bool = True,
                            seed: int = 0) -> Path:
    """Save a random tiny reward model + tokenizer to ``folder``; ``kind``: llama | bert | armo."""
    import torch
    import transformers

    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = _tokenizer(chat=chat, bert=kind == "bert")
    tokenizer.save_pretrained(folder)
    size = len(tokenizer)
    torch.manual_seed(seed)
    if kind == "llama":
        config = transformers.LlamaConfig(
            vocab_size=size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=128,
            num_labels=1, pad_token_id=tokenizer.pad_token_id)
        model = transformers.LlamaForSequenceClassification(config)
    elif kind == "bert":
        config = transformers.BertConfig(
            vocab_size=size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=2, max_position_embeddings=128, num_labels=1,
            pad_token_id=tokenizer.pad_token_id)
        model = transformers.BertForSequenceClassification(config)
    elif kind == "armo":
        return _save_armo(folder, size, seed)
    else:
        raise ValueError(kind)
    model.eval()
    model.save_pretrained(folder)
    return folder


def _save_armo(folder: Path, vocab_size: int, seed: int) -> Path:
    import torch
    from safetensors.torch import save_file

    (folder / "configuration_tiny_armo.py").write_text(_ARMO_CONFIG)
    (folder / "modeling_tiny_armo.py").write_text(_ARMO_MODEL)
    config = {"model_type": "tiny_armo", "architectures": ["TinyArmoRM"],
              "vocab_size": vocab_size, "hidden_size": 32, "objectives": 3, "pad_token_id": 0,
              "auto_map": {"AutoConfig": "configuration_tiny_armo.TinyArmoConfig",
                           "AutoModelForSequenceClassification":
                               "modeling_tiny_armo.TinyArmoRM"}}
    (folder / "config.json").write_text(json.dumps(config))
    generator = torch.Generator().manual_seed(seed)
    weights = {"embed.weight": torch.randn(vocab_size, 32, generator=generator),
               "rewards.weight": torch.randn(3, 32, generator=generator),
               "rewards.bias": torch.zeros(3),
               "gate.weight": torch.randn(3, 32, generator=generator),
               "gate.bias": torch.zeros(3)}
    save_file(weights, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder
