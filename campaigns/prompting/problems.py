"""What keeps a template from rendering or a prompt from being sent, named one problem at a time."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    code: str  # missing_value, empty_value, invalid_value, unknown_value, unbalanced_brace, ...
    message: str
    name: str = ""  # the variable, slot or word concerned, when there is one

    def __str__(self) -> str:
        return self.message


class PromptError(ValueError):
    """Everything that keeps a template from rendering (or a prompt from being sent), at once."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        super().__init__(" ".join(p.message for p in self.problems))

    @property
    def messages(self) -> list[str]:
        return [p.message for p in self.problems]
