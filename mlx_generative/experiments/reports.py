"""report.html and report.md for one run, several runs or a sweep: what was tried, what it scored,
what it drew.

A report holds a table of settings vs held-out metrics vs training time (the best value of
each column marked), every run's sample and reconstruction grids side by side with its
settings as caption, and the figures of `plots` (loss curves overlaid, latent maps,
interpolations, denoising strips), with each run's animations (progress.gif, denoising.gif).
The HTML needs nothing but its PNGs and GIFs, referenced by relative paths, so the folder
opens from disk. Without matplotlib the figures are left
out with a note; the table and grids remain.
"""

from __future__ import annotations

import html
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from ..errors import UsageError
from ..evaluation.evaluate import EVAL_FILE
from ..families import FAMILIES
from ..families.base import FIXED, NOT_IN_SWEEPS, Family
from ..training import checkpoint, runconfig
from ..training.options import sweep_role
from ..training.runs import output_dir, resolve_run_dir
from . import plots
from .sweep_spec import SWEEP_FILE, combinations, command_line, run_name, swept_params

REPORT_HTML, REPORT_MD, FIGURES = "report.html", "report.md", "figures"
# The held-out columns of each family are its ``heldout_metrics``; these are the sample metrics'.
SAMPLE_COLUMNS = [
    ("frechet_distance", "FD", "min"),
    ("inception_score", "IS", "max"),
    ("confidence", "confidence", "max"),
    ("precision", "precision", "max"),
    ("recall", "recall", "max"),
    # Conditional runs: how often the classifier sees the class asked for, and the
    # Frechet distance within each class (mean over classes).
    ("label_accuracy", "label accuracy", "max"),
    ("class_frechet_distance", "class FD", "min"),
]
# The grids and animations training writes into every run, and what each shows.
PICTURES = {
    "samples.png": "samples",
    "reconstructions.png": "held-out rows over their reconstructions",
    "denoising.png": "x_T ... x_0",
    "denoising.gif": "the samples, noise to image",
    "progress.gif": "the samples at each checkpoint",
}
CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1400px; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.7em; text-align: right; }
th { background: #f2f2f2; } td.setting { text-align: left; font-family: monospace; }
td.best { font-weight: bold; background: #e6f4e6; }
.runs { display: flex; flex-wrap: wrap; gap: 1.2em; }
figure { margin: 0.5em 0; } figure.run { border: 1px solid #ddd; padding: 0.5em; }
figcaption { font-family: monospace; font-size: 0.9em; margin: 0.3em 0; }
table.pictures td { border: none; padding: 0 4px 0 0; text-align: center; vertical-align: top; }
img.grid { image-rendering: pixelated; width: 280px; margin-right: 4px; }
img.figure { max-width: 100%; image-rendering: auto; }
.note { color: #666; font-size: 0.9em; }
"""


@dataclass
class RunSummary:
    run_dir: Path
    kind: str
    caption: str  # how the report names this run: its settings, or its directory
    settings: dict = field(default_factory=dict)  # the table's setting columns
    heldout: dict = field(default_factory=dict)  # final held-out metrics from training
    samples: dict | None = None  # sample metrics from eval.json, when evaluated
    seconds: float | None = None  # training time, summed over resumed parts
    task: tuple = ()  # the family's task settings (T): metrics of runs that differ there are not ranked
    conditional: bool = False
    heldout_data: str = "test split"  # what the held-out metrics were computed on

    @property
    def family(self) -> Family:
        return FAMILIES[self.kind]

    @property
    def pictures(self) -> list[Path]:
        return [self.run_dir / p for p in PICTURES if (self.run_dir / p).is_file()]


def summarize(run_dir, settings: dict | None = None, caption: str | None = None) -> RunSummary:
    """What a report shows of one run, read from its config, metrics.jsonl and eval.json."""
    run_dir = resolve_run_dir(run_dir)
    config = runconfig.read(run_dir)
    family = config.family
    records = checkpoint.read_metrics(run_dir)
    heldout = [r for r in records if r.get("split") == "test"]
    walls = [r["seconds"] for r in records if r.get("split") == "wall"]
    final = {k: v for k, v in heldout[-1].items() if k not in ("step", "split")} if heldout else {}
    samples = None
    evaluation = output_dir(run_dir) / EVAL_FILE  # where bin/eval wrote it
    if evaluation.is_file():
        evaluated = checkpoint.read_json(evaluation)
        samples = evaluated.get("samples")
        if samples and evaluated.get("conditional"):
            samples = {
                **samples,
                "label_accuracy": evaluated["conditional"]["accuracy"],
                "class_frechet_distance": evaluated["conditional"]["mean_class_frechet_distance"],
            }
    if settings is None:  # a lone run: its key settings, leaving out those it does not use
        values = {k: getattr(config.train, k) for k in family.key_settings}
        settings = {k: v for k, v in values.items() if v not in (None, False)}
    return RunSummary(
        run_dir=run_dir, kind=config.kind,
        caption=caption or " ".join(f"{k}={_fmt(v)}" for k, v in settings.items()) or run_dir.name,
        settings=settings, heldout=final, samples=samples,
        seconds=sum(walls) if walls else None,
        task=tuple(getattr(config.train, k) for k in family.task_settings),
        conditional=config.conditional, heldout_data=config.data.heldout,
    )


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


# ---- the table ------------------------------------------------------------------------


def table(summaries: list[RunSummary]) -> tuple[list[str], list[list[str]], list[list[bool]]]:
    """Headers, rows of cells and which cells are their column's best."""
    families = list(dict.fromkeys(s.family for s in summaries))
    setting_keys = list(dict.fromkeys(k for s in summaries for k in s.settings))
    # (family, metric): an AE's BCE per pixel and a VAE's in nats are different columns.
    columns = [(family, m) for family in families for m in family.heldout_metrics
               if any(s.family is family and m.key in s.heldout for s in summaries)]
    sample_columns = [c for c in SAMPLE_COLUMNS if any(c[0] in (s.samples or {}) for s in summaries)]
    headers = ["run", *setting_keys] if len(families) > 1 else [*setting_keys]
    headers += [f"held-out {m.column}" for _, m in columns] + [h for _, h, _ in sample_columns] + ["train time (s)"]

    values = []  # per row: the numbers to rank, column by column
    for s in summaries:
        row = [s.heldout.get(m.key) if s.family is family else None for family, m in columns]
        row += [(s.samples or {}).get(k) for k, _, _ in sample_columns]
        row.append(s.seconds)
        values.append(row)
    # A held-out metric measured on another task (an eps-MSE at another T) is not ranked.
    mixed = [f for f in families if len({s.task for s in summaries if s.family is f}) > 1]
    better = [None if family in mixed else m.better for family, m in columns]
    better += [b for _, _, b in sample_columns] + ["min"]
    best = _best_cells(values, better)

    rows, marks = [], []
    for s, row, row_best in zip(summaries, values, best):
        cells = ([s.kind] if len(families) > 1 else []) + [_fmt(s.settings.get(k, "")) for k in setting_keys]
        cells += ["" if v is None else (f"{v:.1f}" if i == len(row) - 1 else f"{v:.4g}") for i, v in enumerate(row)]
        rows.append(cells)
        marks.append([False] * (len(cells) - len(row)) + row_best)
    return headers, rows, marks


def _best_cells(values: list[list], better: list) -> list[list[bool]]:
    marks = [[False] * len(better) for _ in values]
    for j, direction in enumerate(better):
        column = [(row[j], i) for i, row in enumerate(values) if row[j] is not None]
        if direction is None or len(column) < 2:
            continue
        if len({v for v, _ in column}) == 1:  # all equal: nothing stands out
            continue
        target = (min if direction == "min" else max)(v for v, _ in column)
        for v, i in column:
            marks[i][j] = v == target
    return marks


# ---- figures --------------------------------------------------------------------------


def make_figures(summaries: list[RunSummary], out_dir: Path, latent_method: str = "pca") -> list[tuple[str, Path, str]]:
    """(section title, PNG, caption) for every figure that applies to these runs."""
    figures_dir = out_dir / FIGURES
    names = [s.caption for s in summaries]
    made = [("Loss curves", plots.save_figure(plots.loss_curves([s.run_dir for s in summaries], names),
                                              figures_dir / "loss_curves.png"),
             "Training curve (line, mean of every 10 steps) and held-out evaluations (dots) of each run.")]
    coded = [s for s in summaries if s.family.encodes]
    if coded:
        dirs, coded_names = [s.run_dir for s in coded], [s.caption for s in coded]
        made.append(("Reconstructions compared", plots.save_figure(
            plots.reconstruction_rows(dirs, names=coded_names), figures_dir / "reconstructions.png"),
            "The first held-out images of the test split, and each run's reconstruction of them."))
        made.append(("Latent maps", plots.save_figure(plots.latent_map(dirs, names=coded_names, method=latent_method),
                                                      figures_dir / "latent_map.png"),
                     f"2-D {'PCA' if latent_method == 'pca' else 't-SNE'} of the codes (AE) or posterior means (VAE) of 2,000 held-out images, "
                     "coloured by their label."))
        # A conditional VAE's code means something else under every label: no interpolation.
        plain = [s for s in coded if not s.conditional]
        if plain:
            made.append(("Latent interpolations", plots.save_figure(
                plots.interpolation_grid([s.run_dir for s in plain], names=[s.caption for s in plain]),
                figures_dir / "interpolation.png"),
                "Decoded points on the straight line between the codes of two held-out images "
                "(the originals at both ends)."))
    diffusion = [s for s in summaries if s.family.denoises]
    if diffusion:
        made.append(("Denoising", plots.save_figure(
            plots.denoising_strip([s.run_dir for s in diffusion], names=[s.caption for s in diffusion]),
            figures_dir / "denoising.png"),
            "Four samples from pure noise x_T (left) to the sample x_0 (right), one column per reverse step."))
    return made


# ---- writing --------------------------------------------------------------------------


def write_report(
    run_dirs, out_dir, *, title: str, intro: str = "", settings: list[dict] | None = None,
    figures: bool = True, latent_method: str = "pca", verbose: bool = True,
) -> tuple[Path, Path]:
    """Write out_dir/report.html and report.md about ``run_dirs``; returns both paths.

    ``settings``: per run, the values its table row shows (a sweep's swept values);
    default: the settings the runs differ in, or a single run's key settings.
    ``latent_method``: the latent maps' projection, pca or tsne (needs scikit-learn).
    """
    run_dirs = [Path(d) for d in run_dirs]
    if not run_dirs:
        raise UsageError("a report needs at least one finished run")
    for d in run_dirs:
        if not (d / checkpoint.CONFIG).is_file():
            raise UsageError(f"{d}: not a run directory (no {checkpoint.CONFIG})")
    if settings is None:
        settings = _differing_settings(run_dirs)
    summaries = [summarize(d, s) for d, s in zip(run_dirs, settings)]
    if len({s.family for s in summaries}) > 1:  # an AE beside a VAE: say which is which
        for s in summaries:
            s.caption = f"{s.kind.upper()} {s.caption}"
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    made, figure_note = [], ""
    if figures:
        if plots.matplotlib_available():
            made = make_figures(summaries, out_dir, latent_method)
        else:
            figure_note = f"Plots (loss curves, latent maps, interpolations) need matplotlib: {plots.INSTALL_HINT}."
    headers, rows, marks = table(summaries)
    notes = _table_notes(summaries)
    md = _markdown(title, intro, headers, rows, marks, notes, summaries, made, figure_note, out_dir)
    page = _html(title, intro, headers, rows, marks, notes, summaries, made, figure_note, out_dir)
    md_path, html_path = out_dir / REPORT_MD, out_dir / REPORT_HTML
    for path, text in ((md_path, md), (html_path, page)):
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    if verbose:
        print(f"report: {html_path}\n        {md_path}")
    return html_path, md_path


def _differing_settings(run_dirs: list[Path]) -> list[dict]:
    """Per run: the training settings in which the runs differ (a single run: its key ones)."""
    configs = [runconfig.read(d).train.to_dict() for d in run_dirs]
    if len(configs) == 1:
        return [None]
    keys = [k for k in configs[0] if sweep_role(k) not in (FIXED, NOT_IN_SWEEPS)]
    differ = [k for k in keys if len({repr(c[k]) for c in configs}) > 1]
    return [{k: c[k] for k in differ} for c in configs]


def _table_notes(summaries: list[RunSummary]) -> list[str]:
    notes = [f"Held-out metrics: at the end of training, on the {summaries[0].heldout_data}."]
    evaluated = [s.samples for s in summaries if s.samples]
    if evaluated:
        n = sorted({e["n"] for e in evaluated})
        notes.append(
            f"Sample metrics (bin/eval): {'/'.join(f'{k:,}' for k in n)} generated images on the features of "
            "the project's classifier, against the data set's test split: Frechet distance (lower is better), "
            "Inception Score, mean classifier confidence, k-NN precision and recall (higher is better)."
        )
    notes.append("Best value of each column in bold (not the KL, a trade-off, nor the eps-MSE across T, which "
                 "measures another task at each T). Frechet distances from 2,000 samples run higher than from "
                 "10,000: compare them within a table. Train time: this machine, wall clock of the training loop.")
    return notes


def _rel(path: Path, out_dir: Path) -> str:
    return quote(Path(os.path.relpath(path, out_dir)).as_posix())


def _markdown(title, intro, headers, rows, marks, notes, summaries, made, figure_note, out_dir) -> str:
    lines = [f"# {title}", ""]
    if intro:
        lines += [intro, ""]
    lines += ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for cells, best in zip(rows, marks):
        lines.append("| " + " | ".join(f"**{c}**" if b else c for c, b in zip(cells, best)) + " |")
    lines += [""] + [f"- {n}" for n in notes] + [""]
    lines += ["## Samples and reconstructions", ""]
    for s in summaries:
        pictures = " ".join(f"![{PICTURES[p.name]}]({_rel(p, out_dir)})" for p in s.pictures)
        lines += [f"**{s.caption}**: {pictures}", ""]
    for section, path, caption in made:
        lines += [f"## {section}", "", f"![{section}]({_rel(path, out_dir)})", "", caption, ""]
    if figure_note:
        lines += [f"_{figure_note}_", ""]
    lines.append(f"_Written {time.strftime('%Y-%m-%d %H:%M')} by mlx-generative._")
    return "\n".join(lines) + "\n"


def _html(title, intro, headers, rows, marks, notes, summaries, made, figure_note, out_dir) -> str:
    e = html.escape
    parts = [f"<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{e(title)}</title>",
             f"<style>{CSS}</style>\n</head>\n<body>", f"<h1>{e(title)}</h1>"]
    if intro:
        parts.append(f"<p>{e(intro)}</p>")
    parts.append("<table>\n<tr>" + "".join(f"<th>{e(h)}</th>" for h in headers) + "</tr>")
    for cells, best in zip(rows, marks):
        tds = []
        for c, b in zip(cells, best):
            cls = "best" if b else ("setting" if not _is_number(c) else "")
            tds.append(f"<td class=\"{cls}\">{e(c)}</td>" if cls else f"<td>{e(c)}</td>")
        parts.append("<tr>" + "".join(tds) + "</tr>")
    parts.append("</table>")
    parts += [f"<p class=\"note\">{e(n)}</p>" for n in notes]
    parts.append("<h2>Samples and reconstructions</h2>\n<div class=\"runs\">")
    for s in summaries:
        cells = "".join(
            f"<td><a href=\"{_rel(p, out_dir)}\"><img class=\"grid\" src=\"{_rel(p, out_dir)}\" "
            f"alt=\"{e(PICTURES[p.name])}\"></a>"
            f"<br><span class=\"note\">{e(PICTURES[p.name])}</span></td>"
            for p in s.pictures
        )
        parts.append(f"<figure class=\"run\"><figcaption>{e(s.caption)}</figcaption>"
                     f"<table class=\"pictures\"><tr>{cells}</tr></table></figure>")
    parts.append("</div>")
    for section, path, caption in made:
        parts.append(f"<h2>{e(section)}</h2>\n<figure><img class=\"figure\" src=\"{_rel(path, out_dir)}\" "
                     f"alt=\"{e(section)}\"><figcaption>{e(caption)}</figcaption></figure>")
    if figure_note:
        parts.append(f"<p class=\"note\">{e(figure_note)}</p>")
    parts.append(f"<p class=\"note\">Written {time.strftime('%Y-%m-%d %H:%M')} by mlx-generative.</p>\n</body>\n</html>\n")
    return "\n".join(parts)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# ---- the three entry points -----------------------------------------------------------


def write_run_report(run_dir, latent_method: str = "pca", verbose: bool = True) -> tuple[Path, Path]:
    """`bin/report RUN_DIR`: the single-run report, written into the run directory (a shipped
    pretrained run's into outputs/pretrained/NAME)."""
    run_dir = resolve_run_dir(run_dir)
    config = runconfig.read(run_dir)
    if not config.family.generative:
        raise UsageError(f"{run_dir}: reports cover the generative families' runs, not a {config.kind}")
    out = output_dir(run_dir)
    out.mkdir(parents=True, exist_ok=True)
    return write_report([run_dir], out, title=f"{config.kind.upper()} run {run_dir.name}",
                        intro=_describe(config), latent_method=latent_method, verbose=verbose)


def _describe(config: runconfig.RunConfig) -> str:
    train, data = config.train, config.data
    return (f"Trained {train.steps} steps at batch {train.batch_size}, lr {train.lr:g}, seed {train.seed}, "
            f"on {data.train_images:,} {data.dataset} images.")


def write_sweep_report(sweep_dir, latent_method: str = "pca", verbose: bool = True) -> tuple[Path, Path]:
    """The report of a sweep directory (its sweep.json says which runs and settings)."""
    sweep_dir = Path(sweep_dir)
    spec = checkpoint.read_json(sweep_dir / SWEEP_FILE)
    finished = [(s, sweep_dir / run_name(s)) for s in combinations(swept_params(spec))]
    finished = [(s, d) for s, d in finished if (d / checkpoint.WEIGHTS).is_file()]
    if not finished:
        raise UsageError(f"{sweep_dir}: no finished runs yet; run the sweep first")
    swept = ", ".join(f"{k} in {{{', '.join(map(_fmt, v))}}}" for k, v in swept_params(spec).items())
    intro = f"{len(finished)} {spec['kind']} runs over {swept}. Reproduce (resumes): {command_line(spec)}"
    return write_report([d for _, d in finished], sweep_dir, title=f"Sweep {sweep_dir.name}", intro=intro,
                        settings=[s for s, _ in finished], latent_method=latent_method, verbose=verbose)


def report(paths, out=None, title: str | None = None, latent_method: str = "pca", verbose: bool = True):
    """Write report.html and report.md about a run, a sweep or several runs; returns their paths.

    One run directory: the single-run report, into it. One sweep directory: the sweep's
    report, into it. Several run directories: a comparison into ``out``, e.g. an AE and a
    VAE whose latent maps and interpolations then sit side by side.
    """
    paths = [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]
    for path in paths:
        if not path.is_dir():
            raise UsageError(f"{path}: no such directory (expected a run or sweep directory)")
    if len(paths) == 1 and (paths[0] / SWEEP_FILE).is_file():
        return write_sweep_report(paths[0], latent_method=latent_method, verbose=verbose)
    if len(paths) == 1:
        return write_run_report(paths[0], latent_method=latent_method, verbose=verbose)
    if out is None:
        raise UsageError("--out: a report on several runs needs a folder to go to, e.g. --out outputs/reports/ae-vs-vae")
    title = title or "Comparison of " + ", ".join(p.name for p in paths)
    return write_report(paths, out, title=title, latent_method=latent_method, verbose=verbose)
