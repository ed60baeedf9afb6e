"""``get_logger``: the logger SMP's modules and AWS's example scripts write to."""

from __future__ import annotations

import logging


def get_logger(name: str = "torch.sagemaker") -> logging.Logger:
    logger = logging.getLogger(name)
    if not logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("[%(asctime)s] %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    return logger
