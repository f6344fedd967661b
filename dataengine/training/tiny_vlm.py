"""A tiny SmolVLM directory written here, with random weights and a tokenizer trained here: SmolVLA's VLM offline.

Why it exists: lerobot builds SmolVLA from its VLM's directory even when it trains from scratch
(``load_vlm_weights=false``): ``AutoConfig.from_pretrained(vlm_model_name)`` for the architecture,
``AutoProcessor.from_pretrained`` for the processor (whose tokenizer must carry the ``fake_image_token`` and
``global_image_token`` ids SmolVLA puts around each image), and its preprocessor's ``AutoTokenizer.from_pretrained``
for the task string. The default, ``HuggingFaceTB/SmolVLM2-500M-Video-Instruct``, is on the hub; this module writes a
directory those three calls accept, so the offline tests and users without hub access drive SmolVLA's real code
path (``dataengine train --policy smolvla -- --policy.vlm_model_name=DIR``, then ``dataengine rollout``). The model
learns nothing from a VLM this small and random; it is for exercising the pipeline, not for success rates.

``python -m so101_dataengine.training.tiny_vlm DIR`` writes one. Needs ``transformers`` (the ``vla`` extra, as lerobot's own
``smolvla`` extra).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from so101_dataengine.scenes.pick_place import TASK

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

IMAGE_TOKENS = {"fake_image_token": "<fake_token_around_image>", "global_image_token": "<global-img>",
                "image_token": "<image>", "end_of_utterance_token": "<end_of_utterance>"}
"""SmolVLM's named special tokens: the processor looks them up by these attribute names on the tokenizer, and
SmolVLA reads ``fake_image_token_id`` and ``global_image_token_id`` from it."""
PAD, BOS = "<|endoftext|>", "<|im_start|>"
GRID_TOKENS = [f"<row_{row}_col_{col}>" for row in range(1, 7) for col in range(1, 7)]
"""The tile markers of SmolVLM's image splitting (which is off here), so the processor's prompt expansion finds
every token it may emit."""
VOCAB_SIZE = 320
"""Bytes (256), the special tokens and a few merges of the task string."""


def build_tokenizer(corpus: list[str]) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained here on ``corpus`` (any text still encodes, byte by byte), with SmolVLM's
    special tokens as named attributes."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    specials = [PAD, BOS, *IMAGE_TOKENS.values(), *GRID_TOKENS]
    tokenizer.train_from_iterator(corpus, trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token=BOS,
                                   eos_token=IMAGE_TOKENS["end_of_utterance_token"], pad_token=PAD, unk_token=PAD,
                                   extra_special_tokens=IMAGE_TOKENS, model_input_names=["input_ids", "attention_mask"])


def write_tiny_vlm(out: Path, image_size: int = 64, patch_size: int = 16, hidden_size: int = 64,
                   layers: int = 2) -> Path:
    """Write a SmolVLM directory at ``out`` (config, processor, tokenizer; no weights: SmolVLA builds the model
    from the config with random weights) and return it. The vision encoder sees ``image_size`` pixels in
    ``patch_size`` patches; SmolVLA's ``resize_imgs_with_padding`` should be ``image_size`` (``dataengine train``
    sets it from this config). ``layers`` text layers; SmolVLA's action expert gets as many."""
    from transformers import SmolVLMConfig, SmolVLMImageProcessor, SmolVLMProcessor, SmolVLMVideoProcessor

    if image_size % (2 * patch_size):
        raise ValueError(f"image_size {image_size} must be a multiple of 2 x patch_size {patch_size} "
                         "(the connector merges 2 x 2 patches)")
    out = Path(out)
    tokenizer = build_tokenizer([TASK + "\n"])
    size = {"longest_edge": image_size}
    image_tokens = (image_size // patch_size // 2) ** 2
    processor = SmolVLMProcessor(
        image_processor=SmolVLMImageProcessor(do_image_splitting=False, size=size, max_image_size=size),
        video_processor=SmolVLMVideoProcessor(size=size, max_image_size=size),
        tokenizer=tokenizer, image_seq_len=image_tokens)
    heads = max(1, hidden_size // 16)
    config = SmolVLMConfig(
        text_config={"model_type": "llama", "vocab_size": len(tokenizer), "hidden_size": hidden_size,
                     "intermediate_size": 2 * hidden_size, "num_hidden_layers": layers,
                     "num_attention_heads": heads, "num_key_value_heads": max(1, heads // 2), "head_dim": 16,
                     "max_position_embeddings": 512, "pad_token_id": tokenizer.pad_token_id,
                     "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id},
        vision_config={"hidden_size": hidden_size // 2, "intermediate_size": hidden_size, "num_hidden_layers": 1,
                       "num_attention_heads": 2, "image_size": image_size, "patch_size": patch_size},
        scale_factor=2, image_token_id=tokenizer.convert_tokens_to_ids(IMAGE_TOKENS["image_token"]),
        pad_token_id=tokenizer.pad_token_id)
    processor.save_pretrained(out)
    config.save_pretrained(out)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m so101_dataengine.training.tiny_vlm", description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path, help="directory to write (config.json, processor, tokenizer)")
    parser.add_argument("--image-size", type=int, default=64, help="vision encoder input in pixels (%(default)s)")
    args = parser.parse_args(argv)
    print(write_tiny_vlm(args.out, image_size=args.image_size))


if __name__ == "__main__":
    main()
