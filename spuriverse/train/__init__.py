"""The training stage: fine-tune a local vision-language model (LoRA or full) on multiple-choice
items with the evaluator's own prompts and scoring position (`spuriverse train`)."""

from spuriverse.train.checkpoints import weights_digest, weights_folder
from spuriverse.train.runner import TrainConfigMismatch, TrainModelError, TrainOptions, run_train

__all__ = ["TrainConfigMismatch", "TrainModelError", "TrainOptions", "run_train", "weights_digest", "weights_folder"]
