"""Does fine-tuning cost the sentence model its reading of prose? Linear probes on frozen pretrained states.

For the organ-system task: the pretrained MiniLM-L6 (or ``--base``, e.g. ``package:all-mpnet-base-v2``, the
12-layer sentence model) with no adapters trained (the task's spec, fresh),
the mean-pooled state of every layer for 6,000 seeded texts of the training split, its test split and the
Medical Abstracts dev half (four mappable classes; evaluation only, never trained on), a softmax
regression per layer (L2 1e-3 on the weights, LBFGS, features standardized on the training texts), and
its accuracy on own test and on the dev half per layer. No library fits a multinomial regression on
torch tensors here (scikit-learn is not a dependency), hence the few lines below. It also prints how
long the backbone took to read each set (batches of 32, shortest first) and one dev abstract of median
length through the full model (``trace.timing.measure_one``: batch 1, the median of 5 runs).

    EPEE_DATA_DIR=../shared/data OMP_NUM_THREADS=1 python scripts/probe_frozen_features.py --max-length 256
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_real_prose import load_dev  # noqa: E402

from epee_demo.data.tasks import TASKS, preprocessor_for  # noqa: E402
from epee_demo.model.multi_exit import MultiExitClassifier, build_model  # noqa: E402
from epee_demo.trace.timing import device_name, measure_one, stopwatch  # noqa: E402


def pooled_states(model, preprocessor, texts: list[str], batch_size: int = 32) -> np.ndarray:
    """[N, L, H]: every layer's pooled state of each text (run shortest first, returned in order)."""
    order, out = np.argsort([len(t) for t in texts]), [None] * len(texts)
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            index = order[start:start + batch_size]
            pooled = model(preprocessor([texts[i] for i in index])).pooled.float().numpy()
            for row, i in enumerate(index):
                out[i] = pooled[row]
    return np.stack(out)


def timed_states(model, preprocessor, texts: list[str], name: str) -> np.ndarray:
    """``pooled_states`` of ``texts``, printing how long the backbone took."""
    states = []
    seconds = stopwatch(torch.device("cpu"))(lambda: states.append(pooled_states(model, preprocessor, texts)))
    print(f"{name}: {len(texts)} texts in {seconds:.1f} s ({1000 * seconds / len(texts):.1f} ms a text)", flush=True)
    return states[0]


def probe_accuracy(train_x, train_y, evaluations, classes: int) -> list[float]:
    """Fit a softmax regression on ``train_x`` [N, H]; its accuracy on each (x, y) of ``evaluations``."""
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    scaled = lambda x: torch.tensor((x - mean) / std, dtype=torch.float32)  # noqa: E731
    linear = torch.nn.Linear(train_x.shape[1], classes)
    optimizer = torch.optim.LBFGS(linear.parameters(), max_iter=300)
    inputs, targets = scaled(train_x), torch.tensor(train_y)

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(linear(inputs), targets) + 1e-3 * linear.weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        return [float((linear(scaled(x)).argmax(1).numpy() == y).mean()) for x, y in evaluations]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-length", type=int, default=256, help="window in tokens (texts past it are cut)")
    parser.add_argument("--train-texts", type=int, default=6000)
    parser.add_argument("--base", help="backbone checkpoint (default: the task's, MiniLM-L6)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(13)
    task = TASKS["organ-system"]
    data = task.load_dataset()
    spec = task.default_spec(data.label_names)
    spec.preprocess = {**spec.preprocess, "max_length": args.max_length}
    spec.base = args.base or spec.base
    model, preprocessor = build_model(spec).eval(), preprocessor_for(spec)
    chosen = np.random.default_rng(0).permutation(len(data.train))[:args.train_texts]
    print(f"{spec.base}, {model.backbone.num_layers} layers, window {args.max_length} tokens, {device_name('cpu')}")
    train_x = timed_states(model, preprocessor, [data.train.inputs[i] for i in chosen], "training texts")
    train_y = np.array([data.train.labels[i] for i in chosen])
    test_x, test_y = timed_states(model, preprocessor, list(data.test.inputs), "own test"), np.array(data.test.labels)
    dev_texts, dev_y = load_dev(spec.label_names)
    dev_x = timed_states(model, preprocessor, dev_texts, "dev half")
    median = sorted(dev_texts, key=len)[len(dev_texts) // 2]
    timing = measure_one(MultiExitClassifier(model, spec, preprocessor), median)
    tokens = int(preprocessor([median])["attention_mask"].sum())
    print(f"one dev abstract of median length ({tokens} tokens), full model: {1000 * timing.seconds_full:.1f} ms", flush=True)
    for layer in range(train_x.shape[1]):
        test, dev = probe_accuracy(train_x[:, layer], train_y, [(test_x[:, layer], test_y), (dev_x[:, layer], dev_y)],
                                   len(spec.label_names))
        print(f"layer {layer + 1}: own test {test:.3f}, dev half {dev:.3f}", flush=True)


if __name__ == "__main__":
    main()
