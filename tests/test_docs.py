"""The documentation holds together: every relative link in README.md, docs/,
deploy/README.md and bench/README.md reaches a file that exists, and an
`#anchor` a heading of that file (GitHub's heading slugs); the README stays
short enough to read to the end."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README_MAX_LINES = 220

FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
HTML_ANCHOR = re.compile(r"<a\s+(?:name|id)=\"([^\"]+)\"", re.IGNORECASE)
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)  # http:, https:, mailto:, …


def pages() -> list[Path]:
    return [
        ROOT / "README.md",
        *sorted((ROOT / "docs").rglob("*.md")),
        ROOT / "deploy/README.md",
        ROOT / "bench/README.md",
    ]


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks."""
    out, fenced = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            out.append((number, line))
    return out


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text without Markdown, lower case, every
    character but letters, digits, '_', '-' and spaces dropped, spaces made '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link: its text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML
    text = text.replace("`", "").replace("*", "")
    text = re.sub(r"(?<!\w)_+|_+(?!\w)", "", text)  # _emphasis_ markers, not snake_case
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    for _, line in prose_lines(path.read_text(encoding="utf-8")):
        found.update(HTML_ANCHOR.findall(line))
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(path: Path) -> list[tuple[int, str]]:
    """(line, target) of every link in the page's prose (code blocks and spans left out)."""
    out = []
    for number, line in prose_lines(path.read_text(encoding="utf-8")):
        reference = REFERENCE.match(line)
        if reference:
            out.append((number, reference.group(1)))
            continue
        out.extend((number, target) for target in LINK.findall(INLINE_CODE.sub("", line)))
    return out


def broken_links(path: Path, root: Path = ROOT) -> list[str]:
    broken = []
    for number, target in links(path):
        if EXTERNAL.match(target):
            continue
        file_part, _, anchor = target.partition("#")
        destination = (path.parent / file_part).resolve() if file_part else path
        where = f"{path.relative_to(root)}:{number}: {target}"
        if not destination.exists():
            broken.append(f"{where} (no such file)")
        elif anchor and destination.suffix == ".md" and anchor not in anchors(destination):
            broken.append(f"{where} (no heading #{anchor} in {destination.relative_to(root)})")
        elif anchor and destination.is_dir():
            broken.append(f"{where} (an anchor on a folder)")
    return broken


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    assert page.exists(), page
    assert broken_links(page) == []


def test_the_readme_is_short():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move detail into docs/"


def test_every_docs_page_is_linked_from_somewhere():
    """A page nobody links to is a page nobody reads."""
    targets = set()
    for page in pages():
        for _, target in links(page):
            if not EXTERNAL.match(target) and target.partition("#")[0]:
                targets.add((page.parent / target.partition("#")[0]).resolve())
    orphans = [str(p.relative_to(ROOT)) for p in sorted((ROOT / "docs").rglob("*.md")) if p.resolve() not in targets]
    assert orphans == []


def test_slugs_follow_githubs_rules():
    assert slug("Task tracking") == "task-tracking"
    assert slug("From another back end: gRPC (`aiworker.gateway.v1`)") == "from-another-back-end-grpc-aiworkergatewayv1"
    assert slug("svc-stt (`aiworker-stt`)") == "svc-stt-aiworker-stt"
    assert slug("What `make demo` prints — and why") == "what-make-demo-prints--and-why"
    assert slug("Adding a *model* service") == "adding-a-model-service"
    assert slug("`AIWORKER_TEST_REDIS_URL`") == "aiworker_test_redis_url"


def test_a_broken_link_is_found(tmp_path):
    tmp_path = tmp_path.resolve()
    (tmp_path / "there.md").write_text("# A heading\n\ntext\n\n## A heading\n")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](there.md) [ok](there.md#a-heading) [ok](there.md#a-heading-1) [self](#title)\n"
        "# Title\n"
        "[gone](missing.md) [bad anchor](there.md#nowhere) `[code](missing.md)`\n"
        "```\n[in a fence](missing.md)\n```\n"
        "[web](https://example.com/missing.md)\n"
    )
    assert broken_links(page, tmp_path) == [
        "page.md:3: missing.md (no such file)",
        "page.md:3: there.md#nowhere (no heading #nowhere in there.md)",
    ]
