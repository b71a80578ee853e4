"""The ``epee-demo`` command: ``train`` a model, ``train-exits`` its learned exit rules, ``bench`` real early exit."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


# The dataset loader's options the train command passes on, each for its one task.
DATASET_OPTIONS_OF_ARGS = {
    "real_prose_per_class": "organ-system", "real_prose_copies": "organ-system",
    "negatives_per_positive": "ddi", "negative_sample_seed": "ddi",
}


def _positive_float(text: str) -> float:
    """An argument that must be a number above 0."""
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
    return value


def _train(args) -> int:
    from epee_demo.model import folder as model_folder
    from epee_demo.model.backbones import CONV_STEM
    from epee_demo.data.tasks import TASKS
    from epee_demo.training.joint import TrainConfig, evaluate_and_write, train_model, write_task_metric

    task = TASKS[args.task]
    options = {k: v for k, v in vars(args).items() if k in DATASET_OPTIONS_OF_ARGS and v is not None}
    if wrong := sorted(k for k in options if DATASET_OPTIONS_OF_ARGS[k] != task.name):
        print("epee-demo train: " + ", ".join(f"--{k.replace('_', '-')} applies to --task {DATASET_OPTIONS_OF_ARGS[k]} only"
                                              for k in wrong), file=sys.stderr)
        return 2
    if args.layers is not None and not (task.medmnist and args.layers >= 1):
        print("epee-demo train: --layers takes 1 or more and applies to the image tasks (a ViT trained from scratch)", file=sys.stderr)
        return 2
    settings = {**task.train_defaults, "dataset_options": options, **{k: v for k, v in (
        ("epochs", args.epochs), ("batch_size", args.batch_size),
        ("learning_rate", args.learning_rate), ("max_train_examples", args.max_train_examples),
        ("seed", args.seed), ("start_from", args.start_from), ("backbone_from", args.backbone_from),
        ("keep_epoch_by", args.keep_epoch_by),
    ) if v is not None}}
    config = TrainConfig(**settings)
    dataset = task.load_dataset(**options)
    print(f"{task.name}: train {len(dataset.train)}, val {len(dataset.val)}, test {len(dataset.test)}", flush=True)
    spec = task.default_spec(dataset.label_names, **({"layers": args.layers} if args.layers is not None else {}))
    if (source := config.start_from or config.backbone_from) and (
            license := model_folder.read_spec(Path(source)).extra.get("license")):
        if config.backbone_from and spec.extra.get("license", license) != license:
            print(f"epee-demo train: --backbone-from {source} was trained on data under {license} and this task's "
                  f"model is under {spec.extra['license']}: combine the two licences by hand", file=sys.stderr)
            return 2
        spec.extra["license"] = license  # weights that start from a model trained on data under that licence
    if options.get("real_prose_per_class"):
        from epee_demo.data.distant_prose import MODEL_LICENSE
        spec.extra["license"] = MODEL_LICENSE
    if args.base:
        spec.base = args.base
    if args.stem_convs_per_stage is not None:
        if not (isinstance(spec.base, dict) and spec.base.get("patch_stem") == CONV_STEM):
            print("epee-demo train: --stem-convs-per-stage applies to a ViT with a convolutional stem "
                  "(--task pneumonia or breast)", file=sys.stderr)
            return 2
        spec.base = {**spec.base, "stem_convs_per_stage": args.stem_convs_per_stage}
    try:
        classifier, history = train_model(spec, dataset, config, augment=getattr(task, "augment", None),
                                          metric=task.metric, progress=not args.quiet)
    except ValueError as err:
        print(f"epee-demo train: {'--start-from' if config.start_from else '--backbone-from'} {err}", file=sys.stderr)
        return 2
    metrics = evaluate_and_write(classifier, dataset, Path(args.out), config, history,
                                 card_notes=getattr(task, "card_notes", ""))
    if task.metric != "accuracy":
        metrics = write_task_metric(classifier.spec, dataset, Path(args.out), task.metric, card_notes=task.card_notes)
    if task.marks is not None:
        from epee_demo.data.text_examples import EXAMPLES_PER_CLASS as TEXTS_PER_CLASS, write_text_examples
        from epee_demo.model.folder import text_examples_path

        write_text_examples(dataset, task.marks, TEXTS_PER_CLASS, text_examples_path(args.out))
    if task.medmnist:
        from epee_demo.data.medmnist import EXAMPLES_PER_CLASS, choose_examples, write_examples
        from epee_demo.model.folder import examples_dir

        examples = choose_examples(dataset.test.inputs, dataset.test.labels, dataset.label_names, EXAMPLES_PER_CLASS)
        write_examples(examples, examples_dir(args.out))
    print(json.dumps({k: metrics[k] for k in ("split_sizes", "test_accuracy_per_layer", "test_epee_default")}, indent=2))
    return 0


def _train_exits(args) -> int:
    from epee_demo.model.folder import load_classifier, read_metrics
    from epee_demo.training.joint import dataset_options_of
    from epee_demo.training.learned_exits import ExitTrainConfig, default_cache_dir, train_and_ship_exits
    from epee_demo.model.registry import ASSETS_DIR
    from epee_demo.data.tasks import TASKS

    task = TASKS[args.task]
    folder = Path(args.folder) if args.folder else ASSETS_DIR / task.name
    classifier = load_classifier(folder, learned_exits=False)
    config = ExitTrainConfig(**{k: v for k, v in (
        ("alphas", args.alphas and tuple(args.alphas)), ("lambdas", args.lambdas and tuple(args.lambdas)),
        ("epochs", args.epochs), ("max_train_examples", args.max_train_examples), ("seed", args.seed),
    ) if v is not None})
    dataset = task.load_dataset(**dataset_options_of(read_metrics(folder)))  # the split the model was trained on
    cache_dir = None if args.no_cache else Path(args.cache_dir) if args.cache_dir else default_cache_dir(task.name)
    summary = train_and_ship_exits(classifier, dataset, folder, config, cache_dir, progress=not args.quiet,
                                   card_notes=task.card_notes, metric=task.metric)
    print(json.dumps(summary, indent=2))
    return 0


def _bench(args) -> int:
    from epee_demo.tools.bench import (
        bench_classifier, bench_targets, format_table, load_for_bench, sample_test_split, write_json,
    )

    try:
        targets = bench_targets(args.models, args.assets, args.task)
    except ValueError as err:
        print(f"epee-demo bench: {err}", file=sys.stderr)
        return 2
    if not targets:
        print("epee-demo bench: no model to measure (no shipped model in assets/ and no folder given)",
              file=sys.stderr)
        return 1
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    results = []
    for name, folder, task in targets:
        try:
            inputs, labels = sample_test_split(task, args.max_examples)
        except (FileNotFoundError, OSError) as err:
            print(f"skipping {name}: its test data cannot be read ({err})", file=sys.stderr)
            continue
        classifier = load_for_bench(folder, args.device, args.dtype)
        print(f"measuring {name} ({classifier.spec.title}) on {len(inputs)} test examples ...", file=sys.stderr,
              flush=True)
        results.append(bench_classifier(classifier, inputs, labels, name=name, batch_sizes=batch_sizes))
    print(format_table(results))
    if args.out:
        print(f"wrote {write_json(results, args.out)}")
    return 0 if results else 1


def build_parser() -> argparse.ArgumentParser:
    from epee_demo.data.tasks import TASKS, VIT_LAYERS
    from epee_demo.training.joint import KEEP_EPOCH_BY

    parser = argparse.ArgumentParser(prog="epee-demo", description="Early-exit transformers for biomedicine.")
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train a multi-exit model with the joint loss and write its assets")
    train.add_argument("--task", choices=sorted(TASKS), default="organ-system")
    train.add_argument("--out", required=True, help="output folder (checkpoint, traces, metrics, model card)")
    train.add_argument("--base", help="backbone checkpoint: local path, hub id or package:all-mpnet-base-v2 "
                       "(default: the task's)")
    train.add_argument("--epochs", type=int)
    train.add_argument("--batch-size", type=int)
    train.add_argument("--learning-rate", type=float)
    train.add_argument("--max-train-examples", type=int, help="cap the training set (quick runs)")
    train.add_argument("--seed", type=int)
    train.add_argument("--keep-epoch-by", choices=sorted(KEEP_EPOCH_BY),
                       help="; ".join(f"{k}: {v}" for k, v in KEEP_EPOCH_BY.items()) + " (default: the task's, else metric)")
    train.add_argument("--stem-convs-per-stage", type=int,
                       help="3x3 convolutions per stage of a convolutional ViT stem (default: the task's)")
    train.add_argument("--layers", type=int, help=f"image tasks: layers of the ViT, an exit after each (default: {VIT_LAYERS})")
    starting_point = train.add_mutually_exclusive_group()
    starting_point.add_argument("--start-from", help="checkpoint folder of the same task to continue training from")
    starting_point.add_argument("--backbone-from", help="model folder of another task, of the same architecture, whose "
                                               "backbone (all but the exit heads) the training starts on")
    train.add_argument("--real-prose-per-class", type=int, help="organ-system: at most this many real texts per "
                       "class with distant labels join the training split (data/distant_prose.py; default: "
                       "tasks.ORGAN_SYSTEM_REAL_PROSE_PER_CLASS)")
    train.add_argument("--real-prose-copies", type=int, help="organ-system: copies of each such text in the "
                       "training split (default: tasks.ORGAN_SYSTEM_REAL_PROSE_COPIES)")
    train.add_argument("--negatives-per-positive", type=_positive_float, help="ddi: negative training pairs kept per "
                       "positive pair (default: ddi.NEGATIVES_PER_POSITIVE)")
    train.add_argument("--negative-sample-seed", type=int, help="ddi: the seed of that subsample (default: 0)")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(handler=_train)
    exits = sub.add_parser("train-exits", help="train the learned exit rules (ConsistentEE, JEI-DNN) on a "
                           "trained model, rewrite its val/test traces from its weights (current "
                           "format, with the rules' scores) and the figures of metrics.json and "
                           "the model card read off them")
    exits.add_argument("--task", choices=sorted(TASKS), default="organ-system")
    exits.add_argument("--folder", help="checkpoint folder (default: assets/<task>)")
    exits.add_argument("--alphas", type=float, nargs="+", help="ConsistentEE depth-cost weights to try")
    exits.add_argument("--lambdas", type=float, nargs="+", help="JEI-DNN depth-cost weights to try")
    exits.add_argument("--epochs", type=int)
    exits.add_argument("--max-train-examples", type=int, help="cap the training set (quick runs)")
    exits.add_argument("--seed", type=int)
    exits.add_argument("--cache-dir", help="where cached features are kept (default: the temp folder)")
    exits.add_argument("--no-cache", action="store_true", help="keep cached features in memory only")
    exits.add_argument("--quiet", action="store_true", help="no per-setting lines")
    exits.set_defaults(handler=_train_exits)
    bench = sub.add_parser("bench", help="measure real early exit against the full model: latency, "
                           "throughput, realized vs ideal speed-up, exit heads' overhead")
    bench.add_argument("models", nargs="*", help="checkpoint folders (default: every shipped model in --assets)")
    bench.add_argument("--assets", help="folder of shipped models (default: the package's assets/)")
    bench.add_argument("--task", choices=sorted(TASKS), help="task of the given folders (default: the folder's name)")
    bench.add_argument("--max-examples", type=int, default=200, help="test examples per model (default: 200)")
    bench.add_argument("--batch-sizes", default="32,64", help="comma-separated batch sizes for throughput")
    bench.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: CUDA when there is a GPU)")
    bench.add_argument("--dtype", choices=["auto", "float32", "float16", "bfloat16"], default="auto",
                       help="auto: float16 on CUDA, float32 on the CPU")
    bench.add_argument("--out", help="write the results as JSON here")
    bench.set_defaults(handler=_bench)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
