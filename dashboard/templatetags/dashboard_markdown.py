"""Template filter: Markdown from the board as sanitised HTML."""

from django import template
from django.utils.safestring import SafeString

from ..rendering import markdown_html

register = template.Library()


@register.filter(name="markdown")
def markdown_filter(text: str | None, baselevel: int = 3) -> SafeString:
    """`{{ text|markdown:5 }}`: render, sanitise, and start headings at h5."""
    return markdown_html(text, baselevel=baselevel)
