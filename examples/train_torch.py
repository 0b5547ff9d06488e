"""Plain PyTorch from tokenlake, checkpointed and resumed, with DataLoader workers.

    python examples/train_torch.py [--lake ./lake] [--recipe examples/small.toml] [--steps 30]

Trains a toy next-token model with `labels="shifted"` (the Megatron, torchtitan and nanoGPT
convention: a plain cross entropy of logits[t] and labels[t]) through torchdata's
`StatefulDataLoader` with two workers. Halfway it saves a checkpoint (model, optimizer and the
loader's state, which holds the dataset's cursor), then starts again from it as a restarted
job would, and checks that the resumed run saw exactly the batches of an uninterrupted one.
"""

import argparse
import os
import sys
import tempfile

import torch
from torchdata.stateful_dataloader import StatefulDataLoader

import tokenlake

VOCAB = 8192  # tests/data/tokenizer.json


class Bigram(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(VOCAB, 64)
        self.out = torch.nn.Linear(64, VOCAB)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.out(self.embed(input_ids))


def loader(args) -> StatefulDataLoader:
    ds = tokenlake.Dataset(lake=args.lake, recipe_path=args.recipe, micro_batch=4, max_steps=args.steps,
                           labels="shifted")
    return StatefulDataLoader(ds, batch_size=None, num_workers=2)


def train(args, model, optimizer, data, steps, seen) -> None:
    for _, item in zip(range(steps), data):
        logits = model(item["input_ids"])
        loss = torch.nn.functional.cross_entropy(
            logits.flatten(0, 1), item["labels"].flatten(), ignore_index=tokenlake.IGNORE_INDEX
        )
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        seen.append(item["input_ids"][:, :8].tolist())
        if len(seen) % 10 == 0:
            print(f"step {len(seen):3d}  loss {loss.item():.3f}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--lake", default="./lake")
    p.add_argument("--recipe", default="examples/small.toml")
    p.add_argument("--steps", type=int, default=30)
    args = p.parse_args()
    torch.manual_seed(0)

    # The first job: half the steps, then a checkpoint.
    model = Bigram()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    data = loader(args)
    seen = []
    it = iter(data)
    train(args, model, optimizer, it, args.steps // 2, seen)
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = os.path.join(tmp, "checkpoint.pt")
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "data": data.state_dict(), "seen": seen}, checkpoint)
        print(f"saved a checkpoint after {len(seen)} steps")
        del it, data

        # The restarted job: everything from the checkpoint.
        saved = torch.load(checkpoint, weights_only=False)
    model = Bigram()
    model.load_state_dict(saved["model"])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    optimizer.load_state_dict(saved["optimizer"])
    data = loader(args)
    data.load_state_dict(saved["data"])
    seen = saved["seen"]
    train(args, model, optimizer, iter(data), args.steps, seen)

    # What an uninterrupted run reads, for comparison.
    whole = [item["input_ids"][:, :8].tolist() for item in loader(args)]
    ok = seen == whole
    print(f"resumed after {args.steps // 2} steps: {len(seen)} steps in all, "
          f"{'the same batches as' if ok else 'NOT the batches of'} an uninterrupted run")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
