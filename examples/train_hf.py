"""Train a Hugging Face causal LM from tokenlake, in process (no server).

    python examples/train_hf.py [--lake ./lake] [--recipe examples/small.toml] [--steps 40]

The model is a tiny, randomly initialised Llama (no weights are downloaded) trained on the CPU
for a few steps; the loss goes down. The dataset yields whole micro-batches, so the DataLoader
gets `batch_size=None`; `labels="unshifted"` is the Hugging Face convention (the model shifts
inside), and `position_ids` restart at each packed document.
"""

import argparse
import sys

import torch
import transformers
from torch.utils.data import DataLoader

import tokenlake


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--lake", default="./lake")
    p.add_argument("--recipe", default="examples/small.toml")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--micro-batch", type=int, default=4)
    args = p.parse_args()

    torch.manual_seed(0)
    ds = tokenlake.Dataset(
        lake=args.lake,
        recipe_path=args.recipe,
        micro_batch=args.micro_batch,
        max_steps=args.steps,
        labels="unshifted",  # Hugging Face models shift labels themselves
    )
    vocab = 8192  # tests/data/tokenizer.json
    config = transformers.LlamaConfig(
        vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=1024,
    )
    model = transformers.LlamaForCausalLM(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for step, item in enumerate(DataLoader(ds, batch_size=None, num_workers=1)):
        out = model(input_ids=item["input_ids"], position_ids=item["position_ids"], labels=item["labels"])
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(out.loss.item())
        if step % 10 == 0:
            print(f"step {step:3d}  loss {out.loss.item():.3f}")
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    print(f"{len(losses)} steps: loss {first:.3f} -> {last:.3f} (first and last five steps)")
    return 0 if last < first else 1


if __name__ == "__main__":
    sys.exit(main())
