"""The explorer: a local web page to poke at trained models (``bin/explore``, ``mg.explore``).

    preprocess.py   a drawing laid out as MNIST's digits are
    lab.py          what each panel asks of the models (no HTTP)
    server.py       the page and its JSON API on 127.0.0.1
    static/         the page: index.html, explorer.js, explorer.css
"""

from __future__ import annotations

import sys
import time
import webbrowser

from ..errors import UsageError
from ..training.runs import Run, as_run, pretrained_names
from .lab import Lab
from .server import ExplorerServer

# With no runs given: the shipped pretrained runs the page uses (data/pretrained/).
DEFAULT_RUNS = ("pretrained/ae", "pretrained/vae", "pretrained/ddpm", "pretrained/ddpm-conditional",
                "pretrained/flow")


def build_lab(runs=None) -> Lab:
    """A Lab of ``runs`` (run directories, short names or ``Run``s): at most one AE and one
    unconditional VAE, and any DDPM and flow runs. None: the shipped pretrained runs."""
    if runs is None:
        missing = [r for r in DEFAULT_RUNS if r.split("/", 1)[1] not in pretrained_names()]
        if missing:
            raise UsageError(f"the shipped pretrained runs {', '.join(missing)} are not here (this installation "
                             "has no data/pretrained/); give run directories to explore")
        runs = DEFAULT_RUNS
    ae = vae = None  # an encoder without a posterior (the AE's slot), and one with (the VAE's)
    denoisers: dict[str, Run] = {}
    for given in runs:
        run = as_run(given)
        where = str(given) if not isinstance(given, Run) else str(run.run_dir)
        if run.family.encodes:
            if run.conditional:
                raise UsageError(f"{where}: a conditional {run.family.title} needs a label for every code; the "
                                 "explorer's panels take unconditional runs")
            held = vae if run.family.has_posterior else ae
            if held is not None:
                raise UsageError(f"{where}: give one {run.family.title} run; {held.run_dir} is one already")
            if run.family.has_posterior:
                vae = run
            else:
                ae = run
        elif run.family.denoises:
            name = run.run_dir.name if run.run_dir is not None else run.kind
            while name in denoisers:  # two runs with one folder name
                name += "'"
            denoisers[name] = run
        else:
            raise UsageError(f"{where}: a {run.kind} run has nothing to explore; give AE, VAE, DDPM or flow runs")
    return Lab(ae, vae, denoisers)


def explore(runs=None, port: int = 0, open_browser: bool = True, block: bool = True, verbose: bool = True):
    """Serve the explorer for ``runs`` (default: the shipped pretrained runs) on 127.0.0.1.

    ``port`` 0 takes a free one. With ``block`` (the default) it serves until Ctrl-C;
    otherwise it returns the running ``ExplorerServer`` (its ``url``; ``close()`` stops it).
    """
    started = time.perf_counter()
    lab = build_lab(runs)
    lab.warm_up()  # MLX builds each new kernel on first use: once here, not on the first click
    try:
        server = ExplorerServer(lab, port)
    except OSError as e:  # taken, or privileged
        raise UsageError(f"port {port}: cannot listen on 127.0.0.1:{port} ({e.strerror}); pick another, or 0 "
                         "for a free one") from None
    server.start()
    if verbose:
        print(f"explorer ready in {time.perf_counter() - started:.1f} s: {server.url}  (Ctrl-C stops it)", flush=True)
    if open_browser:
        webbrowser.open(server.url)
    if not block:
        return server
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    finally:
        server.close()
    return None
