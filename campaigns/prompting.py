"""Placeholder: being written."""


def template_variables(body: str, kind: str) -> list[str]:
    import re

    return list(dict.fromkeys(re.findall(r"(?<!\{)\{([a-zA-Z_][a-zA-Z0-9_]*)\}(?!\})", body)))
