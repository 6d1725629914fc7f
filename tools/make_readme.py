"""Write README.md from nbs/index.ipynb (what `nbdev_readme` does where Quarto is installed).

Markdown cells are copied in order; code cells are shown as Python blocks unless hidden
(`#| hide`). `--check` exits 1 when README.md is out of date.
"""
import sys
from pathlib import Path

from execnb.nbio import read_nb

ROOT = Path(__file__).resolve().parent.parent


def render(nb_path: Path = ROOT / "nbs" / "index.ipynb") -> str:
    parts = []
    for cell in read_nb(nb_path).cells:
        src = cell.source.strip()
        if not src: continue
        if cell.cell_type == "markdown": parts.append(src)
        elif cell.cell_type == "code" and not src.startswith(("#| hide", "#|hide")):
            parts.append(f"```python\n{src}\n```")
    head = "<!-- Generated from nbs/index.ipynb by tools/make_readme.py: edit the notebook, not this file. -->\n\n"
    return head + "\n\n".join(parts) + "\n"


if __name__ == "__main__":
    text, readme = render(), ROOT / "README.md"
    if "--check" in sys.argv:
        if readme.read_text(encoding="utf-8") != text:
            sys.exit("README.md is out of date: run `python tools/make_readme.py`")
    else:
        readme.write_text(text, encoding="utf-8")
