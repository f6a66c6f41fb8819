"""The model card's document model: blocks (Heading, Paragraph, Bullets, Table, Contents, Code, Image)
and their rendering to Markdown and to HTML.

The card is built once as a list of blocks and rendered twice, so the Markdown and the HTML always
say the same thing. Text in blocks may use the two inline Markdown forms the card needs, **bold**
and `code`; the HTML rendering escapes everything else.
"""

from __future__ import annotations

import html
from dataclasses import dataclass


@dataclass(frozen=True)
class Heading:
    """A heading; level 2 headings are the card's sections (listed by Contents, anchored in HTML)."""

    level: int
    text: str


@dataclass(frozen=True)
class Paragraph:
    """One paragraph of text."""

    text: str


@dataclass(frozen=True)
class Bullets:
    """A bulleted list, one item per string."""

    items: list[str]


@dataclass(frozen=True)
class Table:
    """A table: header cells and rows of cells (text)."""

    headers: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class Contents:
    """Links to the card's sections (its level-2 headings)."""
    titles: list[str]


def anchor(title: str) -> str:
    """The id of a card heading: "card-" and the title's letters and digits, lowercased, joined by '-'."""
    import re

    return "card-" + "-".join(re.findall(r"[a-z0-9]+", title.lower()))


@dataclass(frozen=True)
class Code:
    """A block of code, e.g. the Python snippet that runs the shipped model."""

    text: str
    language: str = ""


@dataclass(frozen=True)
class Image:
    """A figure of the run folder, by its path relative to the card."""

    path: str
    alt: str


@dataclass(frozen=True)
class ModelCard:
    """The card rendered twice: Markdown (model_card.md) and HTML (model_card.html)."""

    markdown: str
    html: str


def render_markdown(blocks: list) -> str:
    """The blocks as Markdown, separated by blank lines."""
    out: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"{'#' * block.level} {block.text}")
        elif isinstance(block, Contents):
            out.append("Contents: " + " · ".join(f"[{title}](#{_github_anchor(title)})" for title in block.titles))
        elif isinstance(block, Paragraph):
            out.append(block.text)
        elif isinstance(block, Bullets):
            out.append("\n".join(f"- {item}" for item in block.items))
        elif isinstance(block, Table):
            cells = lambda row: "| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |"  # noqa: E731
            out.append("\n".join([cells(block.headers), "|" + "---|" * len(block.headers),
                                  *[cells(row) for row in block.rows]]))
        elif isinstance(block, Image):
            out.append(f"![{block.alt}]({block.path})")
        elif isinstance(block, Code):
            out.append(f"```{block.language}\n{block.text}\n```")
    return "\n\n".join(out) + "\n"


_STYLE = """body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}table{border-collapse:collapse;margin:1em 0;font-size:.9em}
th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left}th{background:#f3f3f3}
img{max-width:100%;border:1px solid #eee;margin:.5em 0}h1{border-bottom:2px solid #333}
h2{border-bottom:1px solid #ccc;margin-top:2em}code{background:#f5f5f5;padding:0 .2em}
pre{background:#f5f5f5;padding:.6em;overflow-x:auto}"""


def render_html(blocks: list, title: str) -> str:
    """The blocks as a standalone HTML page with its own small style sheet; text is escaped."""
    out = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
           f"<style>{_STYLE}</style></head><body>"]
    for block in blocks:
        if isinstance(block, Heading):
            identifier = f' id="{anchor(block.text)}"' if block.level == 2 else ""
            out.append(f"<h{block.level}{identifier}>{_inline(block.text)}</h{block.level}>")
        elif isinstance(block, Contents):
            out.append("<p>Contents: " + " · ".join(f'<a href="#{anchor(title)}">{html.escape(title)}</a>'
                                                    for title in block.titles) + "</p>")
        elif isinstance(block, Paragraph):
            out.append(f"<p>{_inline(block.text)}</p>")
        elif isinstance(block, Bullets):
            out.append("<ul>" + "".join(f"<li>{_inline(item)}</li>" for item in block.items) + "</ul>")
        elif isinstance(block, Table):
            head = "".join(f"<th>{_inline(h)}</th>" for h in block.headers)
            body = "".join("<tr>" + "".join(f"<td>{_inline(str(c))}</td>" for c in row) + "</tr>"
                           for row in block.rows)
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif isinstance(block, Image):
            out.append(f"<img src=\"{html.escape(block.path)}\" alt=\"{html.escape(block.alt)}\">")
        elif isinstance(block, Code):
            out.append(f"<pre><code>{html.escape(block.text)}</code></pre>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _github_anchor(title: str) -> str:
    """The anchor GitHub and most Markdown viewers give a heading."""
    import re

    return re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


def _inline(text: str) -> str:
    """Escape, then render the two inline Markdown forms the card uses: **bold** and `code`."""
    escaped = html.escape(text)
    parts = escaped.split("**")
    escaped = "".join(f"<strong>{p}</strong>" if i % 2 else p for i, p in enumerate(parts))
    parts = escaped.split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))
