"""Execute the notebooks and save them with their outputs: nbdev's convention, so that every example
on the docs site shows what it produced.

    python tools/run_notebooks.py                          # every notebook of the site (nbs/sidebar.yml)
    python tools/run_notebooks.py nbs/api/06_data.ipynb    # some of them
    python tools/run_notebooks.py --check                  # only check the saved outputs (what CI does)

Each notebook runs top to bottom in a fresh Jupyter kernel (ipykernel, started in the notebook's own
folder), as it would in JupyterLab: `#| slow` cells run too (the tour's training run), cells flagged
`#| gpu` or `#| eval: false` and the closing `nbdev_export()` cell do not (their outputs are
cleared). The state of ipywidgets is saved in the notebook, so the docs render the widgets offline.
A notebook that fails leaves its file as it was; a good one is written atomically and tidied by
`nbdev_clean`. Then its outputs are checked (`output_problems`): every example cell has an output,
no output shows a machine-specific path, none is large.

Needs the `dev` and `docs` extras (nbclient, ipykernel, ipywidgets) and the embedded model. Before any
kernel starts, the embedded model is converted from its GGUF file into the cache (`$FORGE_NB_CACHE`), in
this process (`prepare_embedded_model`): on a fresh machine the first notebook that loads it would
otherwise show the one-time conversion (a message naming the cache folder, a progress bar) in its output.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NBS = ROOT / "nbs"
MAX_CELL_TEXT = 40_000  # characters of text output per cell
MAX_CELL_IMAGE = 200_000  # characters of base64 image data per cell (~150 KB of PNG)
MAX_NBS_BYTES = 4_000_000  # all of nbs/ together
SKIP_RUN = re.compile(r"^#\|\s*(gpu\b|eval:\s*false)", re.M)
NO_OUTPUT_NEEDED = re.compile(r"^#\|\s*(exports?\b|hide\b|eval:\s*false|gpu\b|default_exp\b|include:\s*false)", re.M)
# absolute paths of this machine, or of any machine: what an output must never show
MACHINE_PATH = re.compile(r"(?<![\w.:/])(/tmp/|/var/folders/|/root\b|/home/\w|/Users/\w|/work/|/usr/|/opt/|[A-Z]:\\\\)")


def site_notebooks() -> list[Path]:
    "The notebooks of the docs site, in sidebar order (`tools/build_docs.site_contents`)."
    sys.path.insert(0, str(ROOT / "tools"))
    import build_docs
    return [p for _, p in build_docs.site_contents(NBS)]


def _src(cell: dict) -> str:
    s = cell.get("source", "")
    return "".join(s) if isinstance(s, list) else s


def is_example(cell: dict) -> bool:
    """Is `cell` an example a reader sees with its output: a code cell that is not exported, hidden,
    GPU-only, not run (`eval: false`), nbdev's `default_exp`/`nbdev_export()`, or imports only."""
    if cell["cell_type"] != "code": return False
    src = _src(cell)
    if NO_OUTPUT_NEEDED.search(src) or "nbdev_export()" in src: return False
    body = [ln for ln in src.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    return bool(body) and not all(re.match(r"(import|from)\s", ln) or ln.startswith((" ", ")")) for ln in body)


def _output_text(out: dict) -> tuple[str, int]:
    "(text shown, characters of image data) of one output."
    if out.get("output_type") == "stream": return _src({"source": out.get("text", "")}), 0
    data = out.get("data", {})
    if out.get("output_type") == "error": return "\n".join(out.get("traceback", [])), 0
    text = "\n".join(_src({"source": v}) for k, v in data.items() if k.startswith("text/") or k.endswith("+json")
                     and not isinstance(v, dict))
    image = sum(len(_src({"source": v})) for k, v in data.items() if k.startswith("image/"))
    return text, image


def output_problems(nb: dict, name: str = "") -> list[str]:
    """What is wrong with a notebook's saved outputs, one line per problem (empty: nothing):
    an example cell (`is_example`) without output, an error output, a machine-specific path in an
    output, or a cell whose output is larger than `MAX_CELL_TEXT` / `MAX_CELL_IMAGE`."""
    out = []
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code": continue
        where = f"{name} cell {i} ({(_src(cell).strip().splitlines() or [''])[0][:60]!r})"
        outs = cell.get("outputs", [])
        if is_example(cell) and not outs: out.append(f"{where}: no saved output")
        text, image = "", 0
        for o in outs:
            if o.get("output_type") == "error": out.append(f"{where}: saved error output {o.get('ename')}")
            t, img = _output_text(o)
            text, image = text + t, image + img
        if m := MACHINE_PATH.search(text):
            out.append(f"{where}: output shows a machine path: …{text[max(0, m.start() - 30):m.end() + 40]!r}")
        if len(text) > MAX_CELL_TEXT: out.append(f"{where}: {len(text)} characters of output (at most {MAX_CELL_TEXT})")
        if image > MAX_CELL_IMAGE: out.append(f"{where}: {image} characters of image data (at most {MAX_CELL_IMAGE})")
    return out


def prepare_embedded_model() -> Path:
    """Convert the embedded model into the cache now, unless it is there already (`forge_nb.models.embedded_model_dir`),
    so that no notebook's saved output shows the conversion. The kernels inherit this process's environment, so
    they find it in the same cache folder. Returns that folder."""
    from forge_nb.models import embedded_model_dir
    return embedded_model_dir()


def run_notebook(path: Path, timeout: int = 1800) -> float:
    """Execute `path` in a fresh kernel (see the module docstring) and save it with its outputs and widget
    state. Returns the seconds it took. Raises `nbclient.exceptions.CellExecutionError` when a cell fails
    (the file is left as it was)."""
    import tempfile

    import nbformat
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient
    from nbdev.clean import nbdev_clean
    t0 = time.time()
    nb = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory() as sockets:  # the kernel talks over local sockets, not TCP
        km = KernelManager(kernel_name="python3", transport="ipc", ip=str(Path(sockets) / "kernel"))
        try:
            _execute(NotebookClient(nb, km=km, timeout=timeout, store_widget_state=True,
                                    resources={"metadata": {"path": str(path.parent)}}))
        finally:
            if km.has_kernel: km.shutdown_kernel(now=True)
    tmp = path.with_name(f".{path.name}.tmp")
    nbformat.write(nb, tmp)
    os.replace(tmp, path)
    nbdev_clean(fname=str(path))
    return time.time() - t0


def _execute(client) -> None:
    "Run the notebook's cells in `client`'s kernel, skipping those that `SKIP_RUN` marks, and keep the widget state."
    nb = client.nb
    with client.setup_kernel():
        for i, cell in enumerate(nb.cells):
            if cell.cell_type != "code": continue
            if SKIP_RUN.search(cell.source) or "nbdev_export()" in cell.source:
                cell.outputs, cell.execution_count = [], None
                continue
            client.execute_cell(cell, i)
        client.set_widgets_metadata()
    prune_widget_state(nb)


WIDGET_VIEW, WIDGET_STATE = "application/vnd.jupyter.widget-view+json", "application/vnd.jupyter.widget-state+json"


def prune_widget_state(nb) -> None:
    """Keep only the widget models the saved outputs show, and the models they refer to (children, layouts,
    styles): a notebook's kernel also made widgets that no output displays (closed ones, progress bars)."""
    state = ((nb.metadata.get("widgets") or {}).get(WIDGET_STATE) or {}).get("state") or {}
    todo = [o["data"][WIDGET_VIEW]["model_id"] for c in nb.cells if c.cell_type == "code" for o in c.outputs
            if WIDGET_VIEW in o.get("data", {})]
    keep: set[str] = set()
    while todo:
        mid = todo.pop()
        if mid in keep or mid not in state: continue
        keep.add(mid)
        todo += re.findall(r"IPY_MODEL_([0-9a-f]+)", json.dumps(state[mid]))
    if keep: nb.metadata["widgets"][WIDGET_STATE]["state"] = {k: state[k] for k in sorted(keep)}
    else: nb.metadata.pop("widgets", None)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("notebooks", nargs="*", type=Path, help="notebooks to run (default: every notebook of the site)")
    ap.add_argument("--check", action="store_true", help="do not run anything: only check the saved outputs")
    ap.add_argument("--timeout", type=int, default=1800, help="seconds a cell may run")
    a = ap.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    paths = [p.resolve() for p in a.notebooks] or site_notebooks()
    problems = []
    if not a.check and paths: print(f"embedded model: {prepare_embedded_model()}", flush=True)
    for p in paths:
        if not a.check:
            print(f"running {p.relative_to(ROOT)} …", flush=True)
            print(f"  saved in {run_notebook(p, a.timeout):.0f} s", flush=True)
        problems += output_problems(json.loads(p.read_text(encoding="utf-8")), str(p.relative_to(ROOT)))
    size = sum(f.stat().st_size for f in NBS.rglob("*.ipynb") if ".ipynb_checkpoints" not in f.parts)
    if size > MAX_NBS_BYTES: problems.append(f"nbs/ holds {size:,} bytes of notebooks (at most {MAX_NBS_BYTES:,})")
    print("\n".join(problems) if problems else f"outputs OK ({len(paths)} notebooks, nbs/ {size / 1e6:.1f} MB)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
