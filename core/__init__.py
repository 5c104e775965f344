"""s2kd core library: data, narratives, semantics, losses, training, evaluation and the CLI.

Dependency direction: ``app -> core -> models -> torch``; nothing here imports from ``app``.
"""

__version__ = "0.1.0"
