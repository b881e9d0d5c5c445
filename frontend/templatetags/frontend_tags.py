"""Small template filters for the pages (the project does not enable django.contrib.humanize)."""

from django import template

register = template.Library()


@register.filter
def thousands(value) -> str:
    """1000 → "1,000"; anything that is not a whole number comes back unchanged."""
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return str(value)
