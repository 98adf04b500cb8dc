"""HTML: headings, paragraphs, lists, code and tables (BeautifulSoup); scripts, navigation and footers dropped."""

from __future__ import annotations

from typing import Any

from flywheel.knowledge.blocks import Block, merge_blocks, table_text

_HTML_DROP = ["script", "style", "nav", "footer", "noscript", "template", "head", "svg", "iframe", "object"]
_HTML_OWN = {"h1", "h2", "h3", "h4", "h5", "h6", "p", "ul", "ol", "dl", "li", "pre", "table"}
_HTML_CONTAINERS = {
    "address",
    "article",
    "aside",
    "blockquote",
    "body",
    "caption",
    "center",
    "details",
    "dialog",
    "div",
    "dd",
    "dt",
    "fieldset",
    "figcaption",
    "figure",
    "form",
    "header",
    "hgroup",
    "html",
    "main",
    "section",
    "summary",
}


def parse_html(text: str) -> tuple[str | None, list[Block]]:
    """h1–h6, p, lists (one block each), pre → code, tables; loose text in containers → paragraphs."""
    # bs4 is imported on first use: most runs never parse HTML, and it adds to start-up time.
    from bs4 import BeautifulSoup, NavigableString, Tag
    from bs4.element import PreformattedString

    soup = BeautifulSoup(text, "html.parser")
    title = soup.title.get_text(" ", strip=True) if soup.title else None
    for tag in soup.find_all(_HTML_DROP):
        tag.decompose()
    for tag in soup.find_all("br"):
        tag.replace_with(" ")
    blocks: list[Block] = []
    inline: list[str] = []

    def words(tag: Any, separator: str = " ") -> str:  # "" for inline-only content: "<b>7</b>." → "7."
        return " ".join(tag.get_text(separator).split())

    def flush() -> None:
        if joined := " ".join("".join(inline).split()):
            blocks.append(Block(joined, "paragraph"))
        inline.clear()

    def list_lines(tag: Any, depth: int) -> list[str]:
        lines = []
        for item in tag.find_all(["li", "dt", "dd"], recursive=False):
            nested = [sub.extract() for sub in item.find_all(["ul", "ol", "dl"], recursive=False)]
            lines += ["  " * depth + f"- {words(item)}"] if words(item) else []
            lines += [line for sub in nested for line in list_lines(sub, depth + 1)]
        return lines

    def walk(node: Any) -> None:
        for child in list(node.children):
            if isinstance(child, NavigableString):
                if not isinstance(child, PreformattedString):  # skips comments, doctypes, CDATA …
                    inline.append(str(child))
                continue
            if not isinstance(child, Tag):
                continue
            name = child.name
            if name in _HTML_OWN or name in _HTML_CONTAINERS:
                flush()
            if name in ("h1", "h2", "h3", "h4", "h5", "h6"):
                blocks.append(Block(words(child, ""), "heading", level=int(name[1])))
            elif name == "p":
                blocks.append(Block(words(child, ""), "paragraph"))
            elif name in ("ul", "ol", "dl", "li"):
                text = "\n".join(list_lines(child, 0)) if name != "li" else f"- {words(child)}"
                blocks.append(Block(text, "list"))
            elif name == "pre":
                blocks.append(Block(child.get_text().strip("\n"), "code"))
            elif name == "table":
                rows = [
                    [c.get_text(" ", strip=True) for c in tr.find_all(["th", "td"], recursive=False)]
                    for tr in child.find_all("tr")
                    if tr.find_parent("table") is child
                ]
                blocks.append(Block(table_text(rows), "table"))
            elif name in _HTML_CONTAINERS or child.find(list(_HTML_OWN | {"div"})):
                walk(child)
                flush()
            else:
                inline.append(child.get_text())

    walk(soup)
    flush()
    return title, merge_blocks([b for b in blocks if b.text.strip()], "list", "\n")
