"""Save the demo widget of nbs/api/10_progress.ipynb into the notebook (output + widget state), for the docs.

Run from the repo root after converting the notebook (jupytext drops outputs), then nbdev_clean:
    python tools/save_widget_demo.py && nbdev_clean --fname nbs/api/10_progress.ipynb
It executes a copy of the notebook in a real Jupyter kernel (nbclient, store_widget_state=True), without
its nbdev_export cell, and copies back only the demo cell's output and the widget models it needs."""
import copy
import json
import re
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NB = Path("nbs/api/10_progress.ipynb")
MARK = "demo = TrainingProgressWidget("
MIME = "application/vnd.jupyter.widget-state+json"

nb = nbformat.read(NB, as_version=4)
run = copy.deepcopy(nb)
run.cells = [c for c in run.cells if "nbdev_export(" not in c.source]
NotebookClient(run, kernel_name="python3", timeout=300, store_widget_state=True,
               resources={"metadata": {"path": str(NB.parent)}}).execute()
demo_run = next(c for c in run.cells if MARK in c.source)
views = [o["data"]["application/vnd.jupyter.widget-view+json"]["model_id"] for o in demo_run.outputs
         if o.get("output_type") == "display_data" and "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
assert len(views) == 1, f"expected one widget output in the demo cell, got {len(views)}: {demo_run.outputs}"
state = run.metadata["widgets"][MIME]["state"]
keep, todo = set(), list(views)
while todo:  # the displayed model and every model it references (children, layouts, styles)
    mid = todo.pop()
    if mid in keep: continue
    keep.add(mid)
    todo += re.findall(r"IPY_MODEL_([0-9a-f]+)", json.dumps(state[mid]))
demo = next(c for c in nb.cells if MARK in c.source)
demo.outputs = demo_run.outputs
for c in nb.cells:
    if c is not demo and c.cell_type == "code": c.outputs = []
nb.metadata["widgets"] = {MIME: {"state": {k: state[k] for k in sorted(keep)}, "version_major": 2, "version_minor": 0}}
nbformat.write(nb, NB)
print(f"{NB}: demo output saved, {len(keep)} of {len(state)} widget models kept")
