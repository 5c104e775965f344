"""Training: the loop (``core.train.loop``), DDP helpers, the data bundle, model specs, the teacher-output
cache for distillation, and the ``s2kd train`` / ``s2kd predict`` commands.

Public entry points::

    from core.train import train, ModelSpec, lr_at
    result = train(load_config("configs/weather/tiny.toml"), "runs/student")
"""

from core.train.loop import ModelSpec, TrainResult, Trainer, call_model, lr_at, train

__all__ = ["ModelSpec", "TrainResult", "Trainer", "call_model", "lr_at", "train"]
