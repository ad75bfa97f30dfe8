"""Markdown from the board, rendered to HTML that is safe to put in a page."""

import markdown
import nh3
from django.utils.safestring import SafeString, mark_safe

MARKDOWN_EXTENSIONS = ["extra", "sane_lists", "toc"]


def markdown_html(text: str | None, *, baselevel: int = 3) -> SafeString:
    """Render Markdown, then keep only harmless tags and attributes (model output is untrusted).

    `baselevel` is the level a "# Title" gets: the text sits under the page's own headings.
    """
    if not text:
        return SafeString("")
    html = markdown.markdown(
        text,
        extensions=MARKDOWN_EXTENSIONS,
        extension_configs={"toc": {"baselevel": baselevel}},
        output_format="html",
    )
    return mark_safe(nh3.clean(html))  # noqa: S308 (sanitised by nh3 just above)
