"""The report page as a person sees it: headless Chromium (Debian's `chromium`) loads it from disk.

A small script is put first in the page's head: it notes every error (a resource that fails to load,
a script error, `console.error`) and, once the page has loaded, writes each image's natural size into
the page, which `chromium --dump-dom` prints. Every figure must have loaded, with no error.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from generator.config import RunConfig
from generator.run import run
from generator.teachers.scripted import ScriptedTeacher

pytest.importorskip("matplotlib")
pytest.importorskip("spacy")

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

CHECK = """<script>
window.__errors = [];
window.addEventListener("error", e => window.__errors.push(String(e.message || (e.target && e.target.src))), true);
const _error = console.error;
console.error = (...args) => { window.__errors.push(args.join(" ")); _error(...args); };
window.addEventListener("load", () => {
  const images = [...document.images].map(i => [i.naturalWidth, i.naturalHeight, i.complete]);
  const out = document.createElement("pre");
  out.id = "__check";
  out.textContent = JSON.stringify({images, errors: window.__errors});
  document.body.appendChild(out);
});
</script>"""


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install chromium)")
def test_every_figure_loads_in_a_browser_without_errors(ray_session, tmp_path: Path):
    from generator.report import render_run

    folder = tmp_path / "run"
    cfg = RunConfig(seeds=REPO / "seeds" / "175.jsonl", target=20, evolve_rounds=1, out=folder, cache=False)
    run(cfg, teacher=ScriptedTeacher)
    render_run(folder)
    page = (folder / "report.html").read_text()
    assert "<script" not in page  # the page itself needs none
    checked = tmp_path / "checked.html"
    checked.write_text(page.replace("<head>", "<head>" + CHECK, 1))
    assert CHROMIUM is not None
    proc = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
         "--dump-dom", checked.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    found = re.search(r'<pre id="__check">(.*?)</pre>', proc.stdout, flags=re.S)
    assert found is not None, proc.stderr[-2000:]
    result = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    images = result["images"]
    assert len(images) == page.count("<img") >= 5
    assert all(width > 0 and height > 0 and complete for width, height, complete in images), images
    assert result["errors"] == []
