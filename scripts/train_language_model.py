"""Train the small character language model (farms_viz.sources.language_model) and save its weights.

    python scripts/train_language_model.py lm.pt                  # the default model, 2-3 min on 2 cores
    python scripts/train_language_model.py lm_tiny.pt --tiny      # seconds
    python scripts/train_language_model.py lm.pt --force          # replace an existing lm.pt
    python scripts/train_language_model.py smoke.pt --tiny --steps 5   # a smoke test

An existing file is never replaced without --force; a symbolic link, a folder or a device never,
even with --force. The file is written beside its destination and moved into place, so an
interrupted run leaves nothing behind. Read it back with
``farms_viz.sources.language_model.read_language_model(path)``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
from pathlib import Path

from farms_viz.sources.language_model import (
    LanguageModelConfig,
    corpus_splits,
    perplexity,
    save_language_model,
    train_language_model,
)


def _refusal(path: Path, force: bool) -> str | None:
    if path.is_symlink():
        return f"{path} is a symbolic link; give the real path of a new file"
    if path.exists() and not path.is_file():
        return f"{path} exists and is not a regular file; give the path of a new file"
    if path.exists() and not force:
        return f"{path} exists; pass --force to replace it"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", type=Path, help="where to save the weights (a torch file, e.g. lm.pt)")
    parser.add_argument("--tiny", action="store_true", help="the tiny test configuration (seconds)")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default: the configuration's)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    parser.add_argument("--force", action="store_true", help="replace an existing regular file at PATH")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    # Checked before training too: minutes of work should not end in a refusal.
    refusal = _refusal(args.path, args.force)
    if refusal:
        print(f"train_language_model: error: {refusal}", file=sys.stderr)
        return 1
    config = LanguageModelConfig.tiny() if args.tiny else LanguageModelConfig()
    if args.steps is not None:
        if args.steps < 1:
            print("train_language_model: error: --steps must be a positive integer", file=sys.stderr)
            return 2
        config = dataclasses.replace(config, steps=args.steps)
    splits = corpus_splits()
    started = time.perf_counter()
    model = train_language_model(config, num_threads=args.threads, splits=splits)
    seconds = time.perf_counter() - started
    try:
        save_language_model(model, args.path, overwrite=args.force, splits=splits)
    except (FileExistsError, OSError) as error:
        print(f"train_language_model: error: {error}", file=sys.stderr)
        return 1
    parameters = sum(p.numel() for p in model.parameters())
    print(f"saved {args.path}: {parameters:,} parameters, trained in {seconds:.0f} s, "
          f"held-out perplexity {perplexity(model, splits.held_out):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
