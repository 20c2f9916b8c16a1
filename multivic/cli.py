"""The ``multivic`` command.

    multivic train RECIPE [--output-dir DIR] [key=value ...]   train, export, evaluate (resumes DIR)
    multivic config RECIPE [--explain KEY] [key=value ...]     every key of the resolved recipe
    multivic eval RUN_DIR [--trust-imports] [--trust-commands] [key=value ...]
                                                               re-evaluate a run's exported branches
    multivic eval --recipe RECIPE --encoder NAME --weights FILE [--encoder-kwargs K=V] [--branch a|b]
                  [--out FILE] [key=value ...]
                                                               an encoder's weights from any toolkit, on a recipe's data
    multivic encoders [--modality M]                           list the encoder registry
    multivic plugins                                           list objectives, modalities, data formats
    multivic embed RUN_OR_EXPORT_DIR --branch B --input PATH --out FILE   embeddings of inputs
    multivic compare RUN_DIR RUN_DIR [...] [--csv OUT.csv]     settings that differ and final metrics
    multivic report RUN_DIR [--out DIR]                        figures and an HTML page of a run
    multivic sweep RECIPE|SWEEP.yaml [--output-dir DIR] [--dry-run] key=v1,v2 ... [key=value ...]
                                                               a grid of train runs, then compare (resumes DIR)
    multivic shard SRC OUT [--format NAME] [--shard-size N|256MB] [key=value ...]
                                                               a data set as tar shards + shards.json

User mistakes print one line ``error: ...`` and exit 2, without a traceback unless ``--debug``
(accepted before or after the subcommand);
a run stopped by SIGTERM or SIGUSR1 checkpoints and exits 75 (see multivic.errors.Preempted).
"""

from __future__ import annotations

import argparse
import logging
import sys
import typing
from pathlib import Path

from multivic.errors import ConfigError, MultivicError
from multivic.trust import terminal_safe


class _SafeFormatter(logging.Formatter):
    """Log lines with control characters escaped (see :func:`multivic.trust.terminal_safe`)."""

    def format(self, record: logging.LogRecord) -> str:
        return terminal_safe(super().format(record), keep_newlines=True)


def _one_line(exc: BaseException) -> str:
    """The user-facing line of an error, also when a DataLoader worker re-raised it.

    Worker errors arrive as "Caught DataError in DataLoader worker process 0.\\nOriginal
    Traceback ...\\nmultivic.errors.DataError: <message>"; the message is the last line.
    """
    text = str(exc).strip()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if len(lines) > 1 and "Original Traceback" in text:
        last = lines[-1]
        return last.split(": ", 1)[1] if ": " in last else last
    return lines[0] if lines else exc.__class__.__name__


OVERRIDE_HINT = "settings are key=value overrides, e.g. train.epochs=5 (multivic config RECIPE lists every key)"


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors show this (sub)command's usage and the key=value form."""

    def error(self, message: str) -> typing.NoReturn:
        self.print_usage(sys.stderr)
        hint = f"; {OVERRIDE_HINT}" if "overrides" in {a.dest for a in self._actions} else ""
        self.exit(2, f"{self.prog}: error: {message}{hint}\n")


def _version() -> str:
    import torch

    from multivic.version import __version__

    return f"multivic {__version__} (torch {torch.__version__}, Python {sys.version.split()[0]})"


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="multivic", description="VICReg joint-embedding training with any two encoders.")
    p.add_argument("--debug", action="store_true", help="show full tracebacks instead of one-line errors")
    p.add_argument("--version", action="store_true", help="print the versions of multivic and torch, and exit")
    # --debug after the subcommand too (SUPPRESS: an absent one keeps the top level's value).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show full tracebacks")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)
    add = sub.add_parser

    def add_parser(name: str, **kwargs: typing.Any) -> argparse.ArgumentParser:
        return add(name, parents=[common], **kwargs)

    sub.add_parser = add_parser  # type: ignore[method-assign]

    t = sub.add_parser("train", help="train a recipe; running it again on the same --output-dir resumes")
    t.add_argument("recipe", help="path of a YAML recipe, e.g. recipes/quickstart/image_image.yaml")
    t.add_argument("--output-dir", default=None, help="run directory (default: runs/<recipe name>)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument(
        "overrides", nargs="*", default=[], help="config overrides such as train.epochs=5 data.root=/data/imagenet"
    )

    e = sub.add_parser(
        "eval",
        help="evaluate the exported branches of a run directory, or an encoder's weights file on a recipe's data",
    )
    e.add_argument(
        "run_dir", nargs="?", default=None, help="a run directory (or give --recipe, --encoder and --weights)"
    )
    e.add_argument(
        "--trust-imports",
        action="store_true",
        help="import the modules the run directory's config and exports name (imports:, import paths): "
        "only for runs you trust, since importing runs their code",
    )
    e.add_argument(
        "--trust-commands",
        action="store_true",
        help="let the run directory's config name shards that run a command (data.shards=pipe:...) or "
        "live on another machine (https:, gs:, ...): only for runs you trust",
    )
    e.add_argument(
        "--recipe",
        default=None,
        help="evaluate --encoder on this recipe's data with its eval settings, instead of a run",
    )
    e.add_argument("--encoder", default=None, help="a registered encoder (multivic encoders), e.g. resnet18")
    e.add_argument(
        "--weights",
        default=None,
        help="its weights: .safetensors, or .pt/.pth/.ckpt read as tensors only (never run as code); "
        "torchvision, lightly, timm and multivic layouts are mapped; without it, a random initialisation",
    )
    e.add_argument(
        "--encoder-kwargs",
        action="append",
        default=[],
        metavar="JSON|KEY=VALUE",
        help="the encoder's arguments, as a JSON object or key=value (repeatable), e.g. small_stem=false; "
        "default: the recipe branch's when it uses the same encoder",
    )
    e.add_argument(
        "--branch",
        choices=("a", "b"),
        default="a",
        help="the recipe branch whose name labels the metrics and whose encoder_kwargs are the defaults (a)",
    )
    e.add_argument(
        "--no-strict",
        action="store_true",
        help="load the weights that match and keep the encoder's own for the rest, instead of refusing",
    )
    e.add_argument("--out", default=None, help="also write the metrics as JSON to this file")
    e.add_argument("overrides", nargs="*", default=[], help="overrides, e.g. data.root=/data/val-copy eval.knn_k=10")

    k = sub.add_parser("config", help="print every key of a resolved recipe: its value and whether it is a default")
    k.add_argument("recipe", help="path of a YAML recipe, e.g. recipes/quickstart/image_image.yaml")
    k.add_argument(
        "--explain",
        default=None,
        metavar="KEY",
        help="only this key, or the keys under this prefix (train, data.image), with type, default and meaning",
    )
    k.add_argument(
        "overrides", nargs="*", default=[], help="config overrides, as for multivic train, e.g. train.epochs=5"
    )

    r = sub.add_parser("encoders", help="list the registered encoders")
    r.add_argument("--modality", default=None, help="only the encoders of this modality (image, text, waveform, ...)")

    sub.add_parser("plugins", help="list the registered objectives, modalities and data formats")

    m = sub.add_parser("embed", help="embed a folder of inputs with a trained branch")
    m.add_argument("run_dir", help="a run directory or an export folder (a copied one is enough)")
    m.add_argument("--branch", required=True, help="branch name, as in export/<branch>.json")
    m.add_argument(
        "--input",
        required=True,
        help="a folder of images or audio files (searched recursively), or a captions file (.txt lines or COCO .json)",
    )
    m.add_argument(
        "--out",
        required=True,
        help="output file: .npy (array), .npz (embeddings + inputs) or .parquet (columns input, embedding)",
    )
    m.add_argument(
        "--output",
        choices=("representation", "embedding"),
        default="representation",
        help="encoder output (default, used downstream) or expander output",
    )
    m.add_argument("--batch-size", type=int, default=64, help="inputs per forward pass (64)")
    m.add_argument("--num-workers", type=int, default=0, help="data-loading worker processes")
    m.add_argument(
        "--trust-imports",
        action="store_true",
        help="import the modules the export names (imports:, import paths): "
        "only for exports you trust, since importing runs their code",
    )

    c = sub.add_parser("compare", help="one table of several runs: the config keys that differ and the final metrics")
    c.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="two or more run directories")
    c.add_argument("--csv", default="compare.csv", help="where to save the table as CSV (default: compare.csv)")

    rp = sub.add_parser(
        "report", help="figures (PNG) and a self-contained HTML page of a run's training and evaluation"
    )
    rp.add_argument("run_dir", help="a run directory (as written by multivic train)")
    rp.add_argument("--out", default=None, help="folder of the report (default: RUN_DIR/report)")

    sw = sub.add_parser(
        "sweep",
        help="train a grid of settings into sibling run directories, then compare them; running it again resumes",
    )
    sw.add_argument(
        "recipe",
        help="a recipe, or a sweep file (YAML with recipe:, grid: and overrides:), "
        "e.g. recipes/sweeps/loss_ablation.yaml",
    )
    sw.add_argument(
        "--output-dir",
        default=None,
        help="folder of the runs, sweep.json and compare.csv "
        "(default: runs/<sweep file name> or runs/sweep-<recipe name>)",
    )
    sw.add_argument(
        "--dry-run", action="store_true", help="print the multivic train commands (e.g. for SLURM), run nothing"
    )
    sw.add_argument("--no-progress", action="store_true", help="no progress bars")
    sw.add_argument(
        "overrides",
        nargs="*",
        default=[],
        help="key=v1,v2 (an axis of the grid) or key=value (every run), e.g. loss.std_coeff=0,25 train.epochs=4",
    )

    sh = sub.add_parser(
        "shard", help="write a data set (any data format, or a built-in set) as tar shards with an index"
    )
    sh.add_argument("src", help="a data set folder, or a built-in data set's name (shapes, sounds, captions)")
    sh.add_argument("out", help="folder to create for the shards and shards.json (must not exist)")
    sh.add_argument("--format", default=None, help="the source's data format (default: detected)")
    sh.add_argument("--shard-size", default="1000", help="samples per shard (1000), or a size per shard (256MB)")
    sh.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE_OR_FILE",
        help="a plug-in module (dotted name or .py file) whose format or modality the source needs; repeatable",
    )
    sh.add_argument(
        "overrides", nargs="*", default=[], help="the source format's data options, e.g. test_fold=5 sample_rate=16000"
    )
    return p


def _cmd_config(args: argparse.Namespace) -> None:
    from multivic.commands.show_config import describe, format_explained, format_table, select
    from multivic.config import load_config, near_miss

    keys = describe(load_config(args.recipe, args.overrides))
    if args.explain is None:
        print(format_table(keys))
        return
    chosen = select(keys, args.explain)
    if not chosen:
        hint = near_miss(args.explain, [k.key for k in keys])
        raise ConfigError(
            f"--explain {args.explain!r} names no key of this recipe{hint}: multivic config RECIPE lists every key"
        )
    print(format_explained(chosen))


def _cmd_train(args: argparse.Namespace) -> None:
    from multivic.commands.evaluate import format_metrics
    from multivic.commands.train import train
    from multivic.config import load_config

    cfg = load_config(args.recipe, args.overrides)
    out = Path(args.output_dir) if args.output_dir else Path("runs") / Path(args.recipe).stem
    metrics = train(cfg, out, progress=not args.no_progress)
    if metrics:
        print(terminal_safe(format_metrics(metrics), keep_newlines=True))
    print(f"run directory: {out}")


def _cmd_eval(args: argparse.Namespace) -> None:
    from multivic.commands.evaluate import evaluate, format_metrics, load_run_config
    from multivic.run_dir import RunDir, atomic_write_text, metrics_json

    backbone = [
        flag
        for flag, value in (
            ("--encoder", args.encoder),
            ("--weights", args.weights),
            ("--encoder-kwargs", args.encoder_kwargs),
            ("--no-strict", args.no_strict),
        )
        if value
    ]
    if args.recipe is None:
        if backbone:
            raise MultivicError(f"{backbone[0]} evaluates an encoder on a recipe's data: add --recipe RECIPE")
        if args.run_dir is None:
            raise MultivicError("give a RUN_DIR, or --recipe RECIPE --encoder NAME --weights FILE")
        run_dir = RunDir(args.run_dir)
        cfg = load_run_config(
            run_dir, args.overrides, trust_imports=args.trust_imports, trust_commands=args.trust_commands
        )
        with run_dir.lock("multivic eval"):  # it rewrites metrics.json: not while a run (or another eval) writes
            metrics = evaluate(cfg, run_dir, trust_imports=args.trust_imports)
    else:
        metrics = _eval_backbone(args)
    print(terminal_safe(format_metrics(metrics), keep_newlines=True))  # names from a run's metrics.json
    if args.out:
        atomic_write_text(Path(args.out), metrics_json(metrics))
        print(f"metrics saved as {args.out}", file=sys.stderr)


def _eval_backbone(args: argparse.Namespace) -> dict[str, float]:
    from multivic.commands.evaluate_backbone import evaluate_backbone
    from multivic.config import load_config

    overrides = list(args.overrides)
    if args.run_dir is not None:  # argparse fills the optional RUN_DIR with the first override
        if "=" not in args.run_dir:
            raise MultivicError(f"give a RUN_DIR or --recipe, not both ({args.run_dir} and {args.recipe})")
        overrides.insert(0, args.run_dir)
    if args.encoder is None:
        raise MultivicError(
            "--recipe evaluates an encoder's weights: add --encoder NAME --weights FILE (multivic encoders lists the "
            "names)"
        )
    kwargs = _encoder_kwargs(args.encoder_kwargs)
    cfg = load_config(args.recipe, overrides)
    if args.weights is None:
        print(
            f"note: no --weights: evaluating a randomly initialised {args.encoder} (seed {cfg.seed})", file=sys.stderr
        )
    return evaluate_backbone(cfg, args.encoder, args.weights, kwargs, side=args.branch, strict=not args.no_strict)


def _encoder_kwargs(items: list[str]) -> dict:
    """--encoder-kwargs values: JSON objects or key=value (the value read as YAML: true, 3, [1, 2])."""
    import json

    import yaml

    out: dict = {}
    for item in items:
        text = item.strip()
        if text.startswith("{"):
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                raise MultivicError(f"--encoder-kwargs {item!r} is not valid JSON ({exc})") from None
            out.update(value)
            continue
        key, eq, raw = text.partition("=")
        if not eq or not key.strip():
            raise MultivicError(
                f"--encoder-kwargs {item!r} is neither a JSON object nor key=value (e.g. small_stem=false)"
            )
        try:
            out[key.strip()] = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            out[key.strip()] = raw
    return out


def _cmd_encoders(args: argparse.Namespace) -> None:
    from multivic.registry import MODALITIES, create_encoder, encoder_spec, list_encoders, plugin_errors

    if args.modality is not None and args.modality not in MODALITIES.names():
        raise MultivicError(
            f"--modality {args.modality!r} is not a registered modality; known: {', '.join(MODALITIES.names())}"
        )
    names = list_encoders(args.modality)
    print(f"{'name':<14}{'modality':<12}{'out_dim':>8}  source")
    for name in names:
        spec = encoder_spec(name)
        width = _default_width(name, create_encoder)
        print(f"{name:<14}{spec.meta['modality']:<12}{width:>8}  {spec.source}")
    print(f"{'timm:<name>':<14}{'image':<12}{'?':>8}  any model of timm.list_models(), e.g. timm:convnext_tiny")
    print(f"{'pkg.mod:fn':<14}{'(declared)':<12}{'?':>8}  an import path to your own factory")
    for name, error in plugin_errors().items():
        print(f"warning: {error}", file=sys.stderr)


def _cmd_plugins(args: argparse.Namespace) -> None:
    from multivic.registry import FORMATS, MODALITIES, OBJECTIVES, plugin_errors

    for title, registry in (("objectives", OBJECTIVES), ("modalities", MODALITIES), ("data formats", FORMATS)):
        print(f"{title}:")
        for name in registry.names():
            entry = registry.get(name)
            extra = getattr(entry.factory, "modalities", None)
            provides = f" (modalities: {', '.join(extra)}; evaluation: {entry.factory.protocol})" if extra else ""
            print(f"  {name:<14}{entry.source}{provides}  {entry.description}")
    for name, error in plugin_errors().items():
        print(f"warning: {error}", file=sys.stderr)


def _default_width(name: str, create_encoder) -> str:
    """The encoder's output width at its default arguments, or "?" when it needs arguments."""
    import torch

    for device in ("meta", "cpu"):  # meta first: shapes only, no memory or initialisation cost
        try:
            with torch.device(device):
                return str(create_encoder(name).out_dim)
        except Exception:  # some layers cannot be built on meta; a factory may need arguments
            continue
    return "?"


def _cmd_embed(args: argparse.Namespace) -> None:
    from multivic.commands.embed import embed_inputs

    n, dim = embed_inputs(
        Path(args.run_dir),
        args.branch,
        Path(args.input),
        Path(args.out),
        output=args.output,
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        trust_imports=args.trust_imports,
    )
    print(f"wrote {n} embeddings of width {dim} to {args.out}")


def _cmd_compare(args: argparse.Namespace) -> None:
    from multivic.commands.compare import compare_runs, to_markdown, write_csv

    table = compare_runs(args.run_dirs)
    write_csv(table, Path(args.csv))
    print(to_markdown(table))  # its cells are terminal-safe
    print(f"saved as {args.csv}", file=sys.stderr)


def _cmd_report(args: argparse.Namespace) -> None:
    from multivic.report import write_report

    report = write_report(args.run_dir, args.out)
    print(f"wrote {len(report.figures)} figures and {report.html} ({report.markdown.name} beside it)")


def _cmd_sweep(args: argparse.Namespace) -> None:
    from multivic.commands.sweep import run_sweep

    run_sweep(args.recipe, args.overrides, args.output_dir, dry_run=args.dry_run, progress=not args.no_progress)


def _cmd_shard(args: argparse.Namespace) -> None:
    from multivic.commands.shard import write_shards

    options = dict(o.split("=", 1) for o in args.overrides)
    index = write_shards(
        args.src,
        args.out,
        args.format,
        args.shard_size,
        {k.removeprefix("data."): v for k, v in options.items()},
        imports=args.imports,
    )
    print(
        f"wrote {', '.join(f'{len(s)} {k} shards' for k, s in index['splits'].items())} and shards.json to {args.out}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    commands = {
        "train": _cmd_train,
        "config": _cmd_config,
        "eval": _cmd_eval,
        "encoders": _cmd_encoders,
        "plugins": _cmd_plugins,
        "embed": _cmd_embed,
        "compare": _cmd_compare,
        "report": _cmd_report,
        "sweep": _cmd_sweep,
        "shard": _cmd_shard,
    }
    # Overrides may come before or after options (argparse stops a positional list at the
    # first option), so left-over key=value tokens are collected here.
    args, extra = parser.parse_known_args(argv)
    if args.version:
        print(_version())
        return 0
    if args.command is None:
        parser.error("give a command: " + ", ".join(sorted(commands)))
    command_parser = parser._subparsers._group_actions[0].choices[args.command]  # type: ignore[union-attr]
    bad = [tok for tok in extra if "=" not in tok or tok.startswith("-")]
    if bad:
        known = "" if bad[0].startswith("-") else " (a setting needs a value: key=value)"
        command_parser.error(f"unrecognized argument {bad[0]!r}{known}")
    if extra:
        if not hasattr(args, "overrides"):
            command_parser.error(f"{args.command} takes no key=value overrides: {' '.join(extra)}")
        args.overrides = list(args.overrides) + extra
    before = list(logging.getLogger().handlers)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:  # messages may quote files from elsewhere: no control characters
        if handler not in before:
            handler.setFormatter(_SafeFormatter("%(levelname)s %(name)s: %(message)s"))
    logging.getLogger("multivic").setLevel(logging.INFO)
    try:
        commands[args.command](args)
    except MultivicError as exc:
        if args.debug:
            raise
        print(f"error: {terminal_safe(_one_line(exc))}", file=sys.stderr)
        return getattr(exc, "exit_code", 2)
    except KeyboardInterrupt:
        print("interrupted: run the same command again to resume from the last checkpoint", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
