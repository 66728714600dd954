"""Build-time hooks of the documentation site (mkdocs.yml ``hooks:`` and a griffe extension).

The site's guides are the pages of ``docs/``; these hooks add the pages that live elsewhere in the
repository, generated in memory at build time (nothing is copied into ``docs/``):

* ``index.md`` (the home page) from ``README.md``;
* ``benchmarks/index.md`` and ``benchmarks/<area>.md`` from ``BENCHMARKS-<area>.md`` (the reports
  that ``scripts/update_benchmarks.py`` gathers into ``BENCHMARKS.md``), with ``benchmarks/figures/``;
* ``labs/index.md`` from ``labs/README.md`` and ``labs/<name>.md`` from every lab script
  ``labs/<name>.py`` (jupytext "percent" format: ``# %% [markdown]`` cells become text, ``# %%``
  cells become Python blocks), whatever labs exist when the site is built; the same for
  ``docs/labs/*.md`` if labs are ever written there directly (mkdocs finds those itself).

"Benchmarks" and "Labs" sections are appended to the nav for these pages, and a page of ``docs/``
that mkdocs.yml's nav omits is appended to its section (:func:`complete_nav`). Links are written for the
repository (``[x](../BENCHMARKS-inverse.md)`` in ``docs/``, ``[x](docs/samplers.md)`` in the README);
:func:`rewrite_links` maps each relative link to the repository file it names and, when that file
is a page or image of the site, to the site's path for it. A link to a repository file that is not
part of the site (a script, a source file) becomes the file's path in code; a link to nothing is
left alone, so that ``mkdocs build --strict`` reports it.

:class:`SphinxRoles` (a griffe extension named in mkdocs.yml) renders the Sphinx roles of the
docstrings (``:func:`sdeflow.sample```, ``:class:`~sdeflow.grids.Karras```) as cross-references of
the API reference, and reST's ``::`` before a literal block as ``:``.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
LAB_GLOB = "[0-9]*.py"  # lab scripts: labs/01_sdes.py, ... (helpers such as labs/run.py are not pages)

# ---------------------------------------------------------------------------------------------- sources


def _benchmark_titles(root: Path) -> tuple[list[str], dict[str, str], str]:
    """(areas in BENCHMARKS.md's order, their titles, BENCHMARKS.md's header) from scripts/update_benchmarks.py."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_sdeflow_update_benchmarks", root / "scripts" / "update_benchmarks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # defines ORDER, TITLES, HEADER and functions only
    areas = [a for a in module.ORDER if (root / f"BENCHMARKS-{a}.md").exists()]
    # Reports not (yet) in ORDER still get a page, after the others.
    extra = sorted(p.name[len("BENCHMARKS-"):-3] for p in root.glob("BENCHMARKS-*.md") if p.name[len("BENCHMARKS-"):-3] not in module.ORDER)
    titles = {a: module.TITLES.get(a, a) for a in areas + extra}
    return areas + extra, titles, module.HEADER


def lab_scripts(root: Path = ROOT) -> list[Path]:
    """The lab scripts that become pages, in course order (by file name)."""
    return sorted(p for p in (root / "labs").glob(LAB_GLOB) if p.is_file())


def generated_pages(root: Path = ROOT) -> dict[str, str]:
    """Repository path -> site path of every page the hooks generate (the README, benchmarks, labs)."""
    pages = {"README.md": "index.md"}
    if (root / "BENCHMARKS.md").exists():
        pages["BENCHMARKS.md"] = "benchmarks/index.md"
        areas, _, _ = _benchmark_titles(root)
        pages.update({f"BENCHMARKS-{a}.md": f"benchmarks/{a}.md" for a in areas})
    if (root / "labs" / "README.md").exists():
        pages["labs/README.md"] = "labs/index.md"
    for script in lab_scripts(root):
        pages[f"labs/{script.name}"] = f"labs/{script.stem}.md"
    return pages


def generated_assets(root: Path = ROOT) -> dict[str, str]:
    """Repository path -> site path of the images the generated pages show."""
    out = {}
    for folder in ("benchmarks/figures", "labs/figures"):
        for path in sorted((root / folder).glob("*")):
            if path.is_file() and path.suffix.lower() in {".png", ".gif", ".svg", ".jpg", ".jpeg"}:
                rel = path.relative_to(root).as_posix()
                out[rel] = rel
    return out


def generated_nav(root: Path = ROOT) -> list[dict[str, Any]]:
    """The nav sections of the generated pages: Benchmarks (one page per area) and Labs (one per lab)."""
    nav: list[dict[str, Any]] = []
    if (root / "BENCHMARKS.md").exists():
        areas, titles, _ = _benchmark_titles(root)
        nav.append({"Benchmarks": ["benchmarks/index.md"] + [{titles[a]: f"benchmarks/{a}.md"} for a in areas]})
    labs: list[Any] = []
    if (root / "labs" / "README.md").exists():
        labs.append("labs/index.md")
    labs += [f"labs/{p.stem}.md" for p in lab_scripts(root)]
    labs += [f"labs/{p.name}" for p in sorted((root / "docs" / "labs").glob("*.md")) if p.name != "index.md"]
    if (root / "docs" / "labs" / "index.md").exists() and "labs/index.md" not in labs:
        labs.insert(0, "labs/index.md")
    if labs:
        nav.append({"Labs": labs})
    return nav


def nav_paths(nav: list) -> list[str]:
    """Every page path of a nav (lists of paths and ``{title: path or list}``), in order."""
    out: list[str] = []
    for item in nav:
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, dict):
            for value in item.values():
                out.extend(nav_paths([value] if isinstance(value, str) else value))
    return out


def complete_nav(nav: list, root: Path = ROOT) -> list:
    """mkdocs.yml's nav with what it does not list yet: the site's whole nav.

    A page of ``docs/`` the nav omits is appended to "Guides" (``docs/api/*.md`` to "API reference"),
    under its own title, so that a new guide is on the site before anyone edits mkdocs.yml (where
    it can then get its place and a short title); the Benchmarks and Labs sections of
    :func:`generated_nav` follow at the end.
    """
    import copy

    nav = copy.deepcopy(nav)
    listed = set(nav_paths(nav))

    def section(title: str) -> list:
        for item in nav:
            if isinstance(item, dict) and title in item:
                return item[title]
        nav.append({title: []})
        return nav[-1][title]

    guides = [p.name for p in sorted((root / "docs").glob("*.md")) if p.name not in listed and p.name != "index.md"]
    api = [f"api/{p.name}" for p in sorted((root / "docs" / "api").glob("*.md")) if f"api/{p.name}" not in listed]
    if guides:
        section("Guides").extend(guides)
    if api:
        section("API reference").extend(api)
    titles = {next(iter(item)) for item in nav if isinstance(item, dict)}
    nav.extend(item for item in generated_nav(root) if next(iter(item)) not in titles)
    return nav


# ---------------------------------------------------------------------------------------------- content


def benchmarks_index(root: Path = ROOT) -> str:
    """The Benchmarks section's first page: BENCHMARKS.md's header and a list of the area pages."""
    areas, titles, header = _benchmark_titles(root)
    items = "\n".join(f"- [{titles[a]}]({a}.md)" for a in areas)
    return header.rstrip() + "\n\nThe reports, one page per area:\n\n" + items + "\n"


def benchmark_page(root: Path, area: str) -> str:
    """One area's report with the title BENCHMARKS.md gives it (the report's own first heading is a subtitle)."""
    _, titles, _ = _benchmark_titles(root)
    body = (root / f"BENCHMARKS-{area}.md").read_text().strip()
    lines = body.splitlines()
    if lines and lines[0].startswith("#"):
        lines = lines[1:]  # the report's title repeats the area's: keep one
    return f"# {titles[area]}\n\n" + "\n".join(lines).strip() + "\n"


_CELL = re.compile(r"^# %%(.*)$")


def percent_to_markdown(source: str, name: str = "") -> str:
    """A jupytext percent-format script as a Markdown page.

    ``# %% [markdown]`` (or ``[md]``) cells are comment lines whose ``# `` prefix is removed (a
    cell that is one triple-quoted string is unquoted); ``# %%`` cells become fenced Python blocks
    (empty ones are dropped); ``# %% [raw]`` cells are shown as text blocks. The jupytext header (a
    ``# ---`` ... ``# ---`` comment block at the top) is dropped. Code before the first marker is a
    code cell.
    """
    lines = source.splitlines()
    if lines and lines[0].strip() == "# ---":
        for i in range(1, len(lines)):
            if lines[i].strip() == "# ---":
                lines = lines[i + 1:]
                break
    cells: list[tuple[str, list[str]]] = [("code", [])]
    for line in lines:
        m = _CELL.match(line)
        if m:
            spec = m.group(1).strip()
            kind = "markdown" if re.match(r"\[(markdown|md)\]", spec) else "raw" if spec.startswith("[raw]") else "code"
            cells.append((kind, []))
        else:
            cells[-1][1].append(line)
    out = []
    for kind, body in cells:
        text = "\n".join(body).strip("\n")
        if not text.strip():
            continue
        if kind == "markdown":
            stripped = text.strip()
            quoted = re.fullmatch(r'(?s)("""|\'\'\')(.*)\1', stripped)
            if quoted:
                out.append(quoted.group(2).strip("\n"))
            else:
                out.append("\n".join(re.sub(r"^# ?", "", l) if l.startswith("#") else l for l in body).strip("\n"))
        elif kind == "raw":
            out.append("```text\n" + text + "\n```")
        else:
            out.append("```python\n" + text + "\n```")
    page = "\n\n".join(out) + "\n"
    if name and not re.match(r"\s*# ", page):
        page = f"# {name}\n\n" + page  # a page needs a title: the file name when the lab has no heading
    return page


def lab_page(root: Path, script: Path) -> str:
    """A lab's page: its cells, and a line saying how to run it or open it as a notebook."""
    page = percent_to_markdown(script.read_text(), name=script.stem)
    rel = script.relative_to(root).as_posix()
    overview = " See the [course overview](index.md) for the exercises and their checks." if (root / "labs" / "README.md").exists() else ""
    solution = script.parent / "solutions" / script.name
    if solution.exists():
        overview = f" Worked answers: `{solution.relative_to(root).as_posix()}`." + overview
    note = (
        f'!!! note "Run this lab"\n    This page is the lab script `{rel}`. From the `{script.parent.name}/` folder: '
        f"`python {script.name}` runs it (it stops at the first exercise that is not right yet), "
        f"`jupytext --to notebook {script.name}` makes it a notebook.{overview}\n"
    )
    head, sep, rest = page.partition("\n")
    if head.startswith("# "):
        return head + "\n\n" + note + sep + rest
    return note + "\n" + page


# ---------------------------------------------------------------------------------------------- links

_FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.S | re.M)
_LINK = re.compile(r"(?P<bang>!?)\[(?P<text>(?:[^\[\]]|\[[^\]]*\])*)\]\(\s*(?P<target>[^)\s]+)(?P<title>\s+\"[^\"]*\")?\s*\)")


def rewrite_links(markdown: str, repo_path: str, site_path: str, site_of: dict[str, str], root: Path = ROOT) -> str:
    """The page with its relative links retargeted from repository files to site pages (module docstring).

    ``repo_path`` is where the page lives in the repository (``docs/samplers.md``, ``README.md``),
    ``site_path`` where it lives on the site, ``site_of`` maps repository paths to site paths.
    ``BENCHMARKS.md#<area>`` goes to the area's page. Fenced code is left as written.
    """

    def fix(m: re.Match) -> str:
        target = m.group("target")
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target) or target.startswith(("#", "/")):
            return m.group(0)
        path, hash_, anchor = target.partition("#")
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(repo_path), path))
        if resolved.startswith("../") or resolved == "..":
            return m.group(0)
        if resolved == "BENCHMARKS.md" and anchor and f"BENCHMARKS-{anchor}.md" in site_of:
            resolved, hash_, anchor = f"BENCHMARKS-{anchor}.md", "", ""
        if resolved in site_of:
            new = posixpath.relpath(site_of[resolved], posixpath.dirname(site_path) or ".") + hash_ + anchor
            return f"{m.group('bang')}[{m.group('text')}]({new}{m.group('title') or ''})"
        if (root / resolved).exists() and not m.group("bang"):
            text = m.group("text").strip()
            shown = f"`{resolved}`"
            return shown if text.strip("`") in {resolved, path, posixpath.basename(resolved)} else f"{text} ({shown})"
        return m.group(0)  # a broken link: mkdocs --strict names it

    parts, last = [], 0
    for fence in _FENCE.finditer(markdown):
        parts.append(_LINK.sub(fix, markdown[last:fence.start()]))
        parts.append(fence.group(0))
        last = fence.end()
    parts.append(_LINK.sub(fix, markdown[last:]))
    return "".join(parts)


# ---------------------------------------------------------------------------------------------- API pages


def _final_path(pkg, path: str) -> str:  # noqa: ANN001 - a griffe Module
    """The path of the object an import path finally names (aliases followed inside the package)."""
    for _ in range(20):
        try:
            obj = pkg[path[len(pkg.path) + 1:]] if path.startswith(pkg.path + ".") else None
        except Exception:  # noqa: BLE001 - griffe: not found, or an alias it cannot resolve statically
            return path
        if obj is None or not obj.is_alias:
            return path
        path = obj.target_path
    return path


def _candidates(module) -> list[str]:  # noqa: ANN001 - a griffe Module
    """A module's public names: its ``__all__``, else its public classes and functions defined there."""
    if module.exports is not None:
        return [str(name) for name in module.exports]
    return [name for name, member in module.members.items()
            if not name.startswith("_") and not member.is_alias and (member.is_class or member.is_function)]


def api_sections(pkg, area: str) -> list[tuple[str, list[str]]]:  # noqa: ANN001 - the griffe package
    """The modules of ``sdeflow.<area>`` with public objects its page does not show yet.

    The page's ``::: sdeflow.<area>`` shows the area's own public names (its ``__all__``); this
    returns ``(module path, names)`` for every public submodule, depth first in name order, whose
    public names (its ``__all__``, else the classes and functions it defines) name objects not
    shown by the area or an earlier module, so that every public object has one place.
    """
    root = pkg[area]
    shown = {_final_path(pkg, f"{root.path}.{name}") for name in _candidates(root)}
    out = []

    def visit(module) -> None:  # noqa: ANN001
        for name in sorted(module.modules):
            sub = module.modules[name]
            if name.startswith("_") or sub.is_alias:
                continue
            names = []
            for member in _candidates(sub):
                target = _final_path(pkg, f"{sub.path}.{member}")
                if target not in shown:
                    shown.add(target)
                    names.append(member)
            if names:
                out.append((sub.path, names))
            visit(sub)

    if root.is_module and root.modules:
        visit(root)
    return out


def api_markdown(pkg, area: str) -> str:  # noqa: ANN001
    """The directives :func:`api_sections` adds to an area's API page."""
    parts = []
    for path, names in api_sections(pkg, area):
        listed = ", ".join(f'"{n}"' for n in names)
        parts.append(f"::: {path}\n    options:\n      members: [{listed}]\n")
    if not parts:
        return ""
    return "\n## Modules\n\nThe public objects of the modules that `sdeflow." + area + "` does not export by name:\n\n" + "\n".join(parts)


_API_DIRECTIVE = re.compile(r"(?m)^::: sdeflow\.(\w+)\s*$")


# ---------------------------------------------------------------------------------------------- mkdocs hooks

_STATE: dict[str, Any] = {}


def on_files(files, config):  # noqa: ANN001 - mkdocs hook signature
    """Add the generated pages and images, the nav sections that list them, and the link map."""
    from mkdocs.structure.files import File

    root = Path(config["config_file_path"]).resolve().parent
    pages = generated_pages(root)
    content = {"README.md": (root / "README.md").read_text()}
    if "BENCHMARKS.md" in pages:
        content["BENCHMARKS.md"] = benchmarks_index(root)
        for repo_path in pages:
            if repo_path.startswith("BENCHMARKS-"):
                content[repo_path] = benchmark_page(root, repo_path[len("BENCHMARKS-"):-3])
    if "labs/README.md" in pages:
        content["labs/README.md"] = (root / "labs" / "README.md").read_text()
    for script in lab_scripts(root):
        content[f"labs/{script.name}"] = lab_page(root, script)
    for repo_path, site_path in pages.items():
        if files.get_file_from_path(site_path) is None:
            files.append(File.generated(config, site_path, content=content[repo_path]))
    for repo_path, site_path in generated_assets(root).items():
        if files.get_file_from_path(site_path) is None:
            files.append(File.generated(config, site_path, abs_src_path=str(root / repo_path)))

    site_of = {f"docs/{f.src_uri}": f.src_uri for f in files if f.abs_src_path and Path(f.abs_src_path).resolve().is_relative_to(Path(config["docs_dir"]).resolve())}
    site_of.update(pages)
    site_of.update(generated_assets(root))
    _STATE["site_of"] = site_of
    _STATE["repo_of"] = {site: repo for repo, site in site_of.items()}
    _STATE["root"] = root

    if config["nav"] is not None:
        config["nav"] = complete_nav(config["nav"], root)
    return files


def on_page_markdown(markdown, page, config, files):  # noqa: ANN001 - mkdocs hook signature
    """Retarget the page's repository links to site pages (see :func:`rewrite_links`); on an API page
    (``docs/api/<area>.md`` with ``::: sdeflow.<area>``), append the area's modules (:func:`api_markdown`)."""
    site_path = page.file.src_uri
    if site_path.startswith("api/"):
        areas = _API_DIRECTIVE.findall(markdown)
        if areas:
            import griffe

            if "griffe" not in _STATE:
                _STATE["griffe"] = griffe.load("sdeflow", search_paths=[str(_STATE["root"] / "src")], resolve_aliases=False)
            markdown = markdown.rstrip("\n") + "\n" + "".join(api_markdown(_STATE["griffe"], area) for area in areas)
    repo_path = _STATE["repo_of"].get(site_path, f"docs/{site_path}")
    return rewrite_links(markdown, repo_path, site_path, _STATE["site_of"], _STATE["root"])


# ---------------------------------------------------------------------------------------------- griffe

_ROLE = re.compile(r":(?:py:)?(?:mod|class|func|meth|attr|data|obj|exc|const):`(?P<tilde>~?)(?P<target>[^`<]+?)(?:\s*<(?P<link>[^`>]+)>)?`")

try:
    import griffe as _griffe

    _Extension = _griffe.Extension
except ImportError:  # the hook module is also imported by tests that do not need griffe
    _griffe = None
    _Extension = object


def sphinx_roles_to_markdown(text: str, resolve=lambda name: name) -> str:  # noqa: ANN001
    """Sphinx roles as mkdocs-autorefs cross-references, and reST's ``text::`` as ``text:``.

    ``:func:`~a.b.c``` shows ``c``, ``:func:`a.b.c``` shows ``a.b.c``, ``:func:`title <a.b>``` shows
    ``title``; ``resolve`` maps a name to the full path of the object it names (or returns it as is).
    The references are optional: a name the site does not document (``torch.Tensor``) shows as code.
    """

    def fix(m: re.Match) -> str:
        if m.group("link"):
            title, target = m.group("target").strip(), m.group("link").strip()
        else:
            target = m.group("target").strip()
            title = target.rsplit(".", 1)[-1] if m.group("tilde") else target
        target = target.lstrip("~").lstrip(".").removesuffix("()")
        shown = title.lstrip("~").lstrip(".")
        return f'<autoref identifier="{resolve(target)}" optional><code>{shown}</code></autoref>'

    text = _ROLE.sub(fix, text)
    text = re.sub(r"(?m)^[ \t]*::[ \t]*\n", "", text)  # a bare "::" line introduces the block: drop it
    return split_grouped_items(re.sub(r"(?m)(\S)::[ \t]*$", r"\1:", text))


_ITEM_SECTION = re.compile(r"^(\s*)(Args|Arguments|Parameters|Params|Attributes|Other Parameters|Keyword Args|Keyword Arguments):\s*$")
_GROUPED = re.compile(r"^(?P<names>[\w*]+(?:\s*,\s*[\w*]+)+)(?P<type>\s*\([^)]*\))?:(?P<rest>\s.*|)$")


def split_grouped_items(text: str) -> str:
    """Google-style entries that name several parameters at once (``t0, t1: the interval``), one per name.

    The docstrings group parameters that share a description; the Google convention (and griffe's
    parser) wants one entry per name, so each name gets the entry's description (continuation lines
    included). Other lines are kept as they are.
    """
    lines = text.splitlines()
    out: list[str] = []
    i, section_indent, item_indent = 0, None, None
    while i < len(lines):
        line = lines[i]
        indent = len(line) - len(line.lstrip())
        header = _ITEM_SECTION.match(line)
        if header:
            section_indent, item_indent = len(header.group(1)), None
            out.append(line)
            i += 1
            continue
        if section_indent is not None and line.strip():
            if indent <= section_indent:
                section_indent = None  # the section ended
            elif item_indent is None:
                item_indent = indent
        grouped = _GROUPED.match(line.strip()) if section_indent is not None and indent == item_indent else None
        if not grouped:
            out.append(line)
            i += 1
            continue
        block = [line[indent:]]
        j = i + 1
        while j < len(lines) and (not lines[j].strip() or len(lines[j]) - len(lines[j].lstrip()) > indent):
            block.append(lines[j])
            j += 1
        while block and not block[-1].strip():  # blank lines after the entry stay after the last copy
            block.pop()
            j -= 1
        rest = block[0][grouped.end("names"):]  # the type in brackets, if any, and the description
        for name in re.split(r"\s*,\s*", grouped.group("names")):
            out.append(" " * indent + name + rest)
            out.extend(block[1:])
        i = j
    return "\n".join(out) + ("\n" if text.endswith("\n") else "")


class SphinxRoles(_Extension):
    """Griffe extension: every docstring of the package through :func:`sphinx_roles_to_markdown`.

    It also shows the keyword ``threads=None`` that ``sdeflow._threads.with_threads`` adds to the
    signature of the entry points it decorates (at run time, through ``__signature__``; griffe reads
    the source and would not see it).
    """

    def on_function_instance(self, *, func, **kwargs):  # noqa: ANN001, ANN003 - griffe hook signature
        if not any(str(d.value).split(".")[-1] == "with_threads" for d in func.decorators):
            return
        params = list(func.parameters)
        if any(p.name == "threads" for p in params):
            return
        at = next((i for i, p in enumerate(params) if p.kind is _griffe.ParameterKind.var_keyword), len(params))
        extra = _griffe.Parameter("threads", annotation="int | str | None", kind=_griffe.ParameterKind.keyword_only, default="None")
        func.parameters = _griffe.Parameters(*params[:at], extra, *params[at:])

    def on_package(self, *, pkg, **kwargs):  # noqa: ANN001, ANN003 - griffe hook signature
        seen: set[int] = set()

        def visit(obj) -> None:  # noqa: ANN001
            if id(obj) in seen or obj.is_alias:
                return
            seen.add(id(obj))
            if obj.docstring is not None:

                def resolve(name: str, obj=obj) -> str:  # noqa: ANN001
                    try:
                        return obj.resolve(name)
                    except Exception:  # noqa: BLE001 - griffe raises NameResolutionError and friends
                        return name

                obj.docstring.value = sphinx_roles_to_markdown(obj.docstring.value, resolve)
            for member in obj.members.values():
                visit(member)

        visit(pkg)
