"""The documentation site (mkdocs.yml and its hooks, scripts/docs_site.py).

* Every page of docs/ (guides, API reference) and every generated page (the home page from the
  README, the benchmark reports, the labs) is in the nav, and every nav entry is a page.
* Every public area of the package has an API page.
* The hooks' text transforms give the expected Markdown (links retargeted from repository files to
  site pages, jupytext percent scripts as pages, Sphinx roles and grouped parameters in docstrings).
* ``mkdocs build --strict`` succeeds (every warning is an error: broken links and anchors, pages
  missing from the nav, docstrings griffe cannot parse), and the API reference documents every
  public class and function of the package (checked against the package imported, not against
  the hook's own listing).
"""

from __future__ import annotations

import importlib
import inspect
import os
import pkgutil
import re
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import docs_site  # noqa: E402

# ---------------------------------------------------------------------------------------------- nav


def _config() -> dict:
    import yaml
    from mkdocs.utils.yaml import get_yaml_loader

    return yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=get_yaml_loader())


def test_every_page_is_in_the_nav_once():
    config = _config()
    nav = docs_site.complete_nav(config["nav"], ROOT)
    paths = docs_site.nav_paths(nav)
    pages = {p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md")}
    generated = set(docs_site.generated_pages(ROOT).values())
    # Expected: no page outside the site's nav, no nav entry without a page, no page listed twice.
    assert sorted((pages | generated) - set(paths)) == []
    assert sorted(set(paths) - pages - generated) == []
    assert len(paths) == len(set(paths)), [p for p in paths if paths.count(p) > 1]
    # The sections the site promises, in this order (Labs once there are labs).
    titles = [next(iter(item)) if isinstance(item, dict) else item for item in nav]
    assert titles[:6] == ["Getting started", "Guides", "CLI reference", "API reference", "Benchmarks", "Labs"][:len(titles)]
    assert {f"labs/{p.stem}.md" for p in docs_site.lab_scripts(ROOT)} <= set(paths)


def test_a_page_missing_from_mkdocs_yml_joins_its_section(tmp_path):
    (tmp_path / "docs" / "api").mkdir(parents=True)
    for page in ("a.md", "new.md", "api/x.md", "api/y.md"):
        (tmp_path / "docs" / page).write_text("# t\n")
    nav = [{"Getting started": "index.md"}, {"Guides": [{"A": "a.md"}]}, {"API reference": ["api/x.md"]}]
    # Expected: new.md appended to Guides, api/y.md to API reference; mkdocs.yml's own nav unchanged.
    assert docs_site.complete_nav(nav, tmp_path) == [
        {"Getting started": "index.md"}, {"Guides": [{"A": "a.md"}, "new.md"]}, {"API reference": ["api/x.md", "api/y.md"]}]
    assert nav[1] == {"Guides": [{"A": "a.md"}]}


def test_every_public_area_has_an_api_page():
    areas = {m.name for m in pkgutil.iter_modules([str(ROOT / "src" / "sdeflow")]) if not m.name.startswith("_") and m.name != "cli"}
    documented = set()
    for page in (ROOT / "docs" / "api").glob("*.md"):
        documented |= set(re.findall(r"(?m)^::: sdeflow\.(\w+)\s*$", page.read_text()))
    # Expected: each top-level module or subpackage (processes, sample, ...) has a `::: sdeflow.NAME`.
    assert sorted(areas - documented) == []


# ---------------------------------------------------------------------------------------------- transforms


def test_links_go_from_repository_files_to_site_pages(tmp_path):
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "samplers.py").write_text("")
    site_of = {"README.md": "index.md", "docs/samplers.md": "samplers.md", "BENCHMARKS.md": "benchmarks/index.md",
               "BENCHMARKS-inverse.md": "benchmarks/inverse.md", "benchmarks/figures/a.png": "benchmarks/figures/a.png"}

    def from_docs(link: str) -> str:
        return docs_site.rewrite_links(f"see [x]({link}).", "docs/samplers.md", "samplers.md", site_of, tmp_path)

    # Each expected link is the site path of the file the repository link names, relative to the page.
    assert from_docs("../BENCHMARKS-inverse.md") == "see [x](benchmarks/inverse.md)."
    assert from_docs("../BENCHMARKS.md#inverse") == "see [x](benchmarks/inverse.md)."  # an area's section: its page
    assert from_docs("../BENCHMARKS.md#contents") == "see [x](benchmarks/index.md#contents)."
    assert from_docs("samplers.md#tuning") == "see [x](samplers.md#tuning)."
    assert from_docs("https://example.org/a.md") == "see [x](https://example.org/a.md)."
    assert from_docs("#local") == "see [x](#local)."
    # A repository file that is not on the site: its path as code; a link to nothing stays (mkdocs reports it).
    assert from_docs("../benchmarks/samplers.py") == "see x (`benchmarks/samplers.py`)."
    assert from_docs("missing.md") == "see [x](missing.md)."
    readme = "[guide](docs/samplers.md#the-default)\n```\n[kept](docs/samplers.md)\n```\n![fig](benchmarks/figures/a.png \"t\")"
    assert docs_site.rewrite_links(readme, "README.md", "index.md", site_of, tmp_path) == (
        "[guide](samplers.md#the-default)\n```\n[kept](docs/samplers.md)\n```\n![fig](benchmarks/figures/a.png \"t\")")
    report = "![w2](benchmarks/figures/a.png) and [all](BENCHMARKS.md)"
    assert docs_site.rewrite_links(report, "BENCHMARKS-inverse.md", "benchmarks/inverse.md", site_of, tmp_path) == (
        "![w2](figures/a.png) and [all](index.md)")


def test_a_percent_script_becomes_a_page():
    script = "\n".join([
        "# ---", "# jupyter:", "#   jupytext:", "#     formats: py:percent", "# ---", "",
        "# %% [markdown]", "# # Lab 9: title", "#", "# Text with $x^2$.", "",
        "# %%", "import math", "", "x = 1  # a comment stays", "",
        "# %% [md]", '"""', "Quoted *markdown*.", '"""',
        "# %%", "",
        "# %% [raw]", "raw text",
    ])
    # Expected: the header dropped, markdown unprefixed (or unquoted), code fenced, the empty cell dropped.
    assert docs_site.percent_to_markdown(script, "09_x") == (
        "# Lab 9: title\n\nText with $x^2$.\n\n```python\nimport math\n\nx = 1  # a comment stays\n```\n\n"
        "Quoted *markdown*.\n\n```text\nraw text\n```\n")
    # A lab without a heading gets its file name as the title.
    assert docs_site.percent_to_markdown("# %%\ny = 2\n", "09_x") == "# 09_x\n\n```python\ny = 2\n```\n"


def test_docstring_roles_and_grouped_parameters():
    text = "Use :func:`~sdeflow.sample.sample` or :class:`the tree <sdeflow.noise.BrownianTree>`::\n\n    code\n"
    # Expected: optional autorefs showing `sample` and `the tree`; "::" before a literal block becomes ":".
    assert docs_site.sphinx_roles_to_markdown(text) == (
        'Use <autoref identifier="sdeflow.sample.sample" optional><code>sample</code></autoref> or '
        '<autoref identifier="sdeflow.noise.BrownianTree" optional><code>the tree</code></autoref>:\n\n    code\n')
    doc = "Args:\n    t0, t1 (float): the interval,\n        continued.\n    x: one.\n\nReturns:\n    a, b: kept as written.\n"
    # Expected: one entry per name with the shared description; Returns untouched.
    assert docs_site.split_grouped_items(doc) == (
        "Args:\n    t0 (float): the interval,\n        continued.\n    t1 (float): the interval,\n        continued.\n"
        "    x: one.\n\nReturns:\n    a, b: kept as written.\n")


# ---------------------------------------------------------------------------------------------- the build


def _inventory(path: Path) -> set[str]:
    """The object names of a Sphinx inventory (objects.inv: four header lines, then zlib)."""
    header_end = 0
    data = path.read_bytes()
    for _ in range(4):
        header_end = data.index(b"\n", header_end) + 1
    return {line.split(" ", 1)[0] for line in zlib.decompress(data[header_end:]).decode().splitlines()}


def _public_objects() -> list[tuple[str, str]]:
    """(module, name) of every public class and function defined in a public module of sdeflow."""
    import sdeflow

    out = []
    for info in pkgutil.walk_packages(sdeflow.__path__, "sdeflow."):
        parts = info.name.split(".")
        if any(p.startswith("_") for p in parts) or parts[1] == "cli":
            continue
        module = importlib.import_module(info.name)
        exported = getattr(module, "__all__", None)
        for name, value in vars(module).items():
            if name.startswith("_") or (exported is not None and name not in exported):
                continue
            if (inspect.isclass(value) or inspect.isfunction(value)) and value.__module__ == info.name:
                out.append((info.name, name))
    return out


@pytest.mark.slow
def test_the_site_builds_strict_and_documents_every_public_object(tmp_path):
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1", OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"), "-d", str(tmp_path / "site")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    # Expected: exit 0; strict mode turns every warning (a broken link, a bad docstring) into a failure.
    assert done.returncode == 0, done.stderr[-4000:]
    site = tmp_path / "site"
    for page in docs_site.generated_pages(ROOT).values():
        assert (site / page.replace("index.md", "").replace(".md", "/") / "index.html").exists(), page
    documented = _inventory(site / "objects.inv")
    missing = []
    for module, name in _public_objects():
        parts = module.split(".")
        # Documented under its own module or under a package above it that exports it.
        if not any(".".join(parts[:k] + [name]) in documented for k in range(2, len(parts) + 1)):
            missing.append(f"{module}.{name}")
    # Expected: none missing (the hook lists each module's public objects its area does not export).
    assert missing == []
