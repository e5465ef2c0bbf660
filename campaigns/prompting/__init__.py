"""Prompt templates rendered into the exact prompt sent to FLUX.2. Pure: no database, clock or I/O.

`render_prompt()` is the one function that turns a template version, variable values, the
template's reference slots and a brand kit into the prompt text a backend sends. The same inputs
always give the same output, byte for byte, so a batch can render every variant up front and the
gallery can show "the exact request sent".

Placeholder syntax (both kinds)
- `{name}`      a variable; ASCII letters, digits and `_`, not starting with a digit.
- `{ref:slot}`  the reference image filling slot `slot`, written "image N": N is the 1-based
                position of the slot among the slots that have an image, in the order the
                template declares them (all slots when `filled_slots` is None). FLUX.2 points at
                references by index ("the jacket from image 2"). `RenderedPrompt.reference_order`
                is the order the images must be sent in.
- `{{` and `}}` literal braces. Any other brace is an error, reported with its position.
Values are inserted as written: braces inside a value are not interpreted.

Kinds
- `text`: the body is prose. The output is the body with placeholders replaced.
- `json`: a structured prompt. The body must be a JSON object (duplicate keys are an error).
  Placeholders work in any string value, not in keys. The output is canonical JSON text:
  `json.dumps(document, ensure_ascii=False)` with keys in authored order (one line, default
  separators), so `text == json.dumps(json.loads(text), ensure_ascii=False)` always holds.
  Top-level keys outside `KNOWN_JSON_KEYS` give a warning, not an error: FLUX.2 reads any JSON.

Brand kit, merged visibly (`merge_brand=False` leaves it out of the text; `brand=None` skips it all)
- text: a separate clause is appended after a blank line:
  "Brand palette: #1A1A2E (Midnight), #FF6B6B (Coral). Typography: <hints>; fonts: Inter (headlines)."
- json: colours are merged into the first of `colors`, `palette`, `color_palette`, `colours`
  (appended to a list, added to an object as name -> hex, appended to a string), or a new `colors`
  list is added; typography goes into `typography` (new key, or appended/added to an existing one).
- Colours are written the FLUX.2 way, "#RRGGBB (Name)", in palette order. A colour whose hex is
  already in the prompt is not repeated. Every added character is a `brand` segment.
- Tone of voice is copywriting guidance and is not added to image prompts.

Words to avoid: FLUX.2 has no negative prompts, and writing "no cheap look" tends to draw the very
thing named. So nothing is appended; instead every avoided word or phrase found in the final text
(whole word, case-insensitive) is reported in `RenderedPrompt.avoided_words`. Rendering still
succeeds (the preview shows the word highlighted), but `can_dispatch` is False and
`ensure_dispatchable()` raises `PromptError`: a batch must refuse to send such a prompt.
Words to use that do not appear are listed in `unused_words` (a hint only).

Errors: everything wrong with a render is collected into one `PromptError` whose `problems` name
each missing or empty value, each unknown (extra) value, each unbalanced brace or malformed
placeholder, invalid JSON with line and column, and each unknown or unfilled reference slot.

This package's names below are its public face; callers import from `campaigns.prompting`.
The parts: `parsing` (placeholders, the JSON tree), `rendering` (check and render),
`brand_kit` (the kit and its merge), `emitting` (canonical JSON as segments), `words`
(words to use and avoid), `segments` and `problems` (what a render returns or raises).
"""

from campaigns.prompting.brand_kit import (
    BRAND_SEPARATOR,
    COLOUR_KEYS,
    PALETTE_ADVICE_MAX,
    TYPOGRAPHY_KEY,
    BrandColour,
    BrandFont,
    BrandKit,
)
from campaigns.prompting.parsing import (
    IDENTIFIER,
    JSON,
    KINDS,
    KNOWN_JSON_KEYS,
    MAX_JSON_BODY_CHARS,
    NAME_RE,
    TEXT,
    placeholder_parts,
    template_variables,
)
from campaigns.prompting.problems import Problem, PromptError
from campaigns.prompting.rendering import (
    DisplayPart,
    ReferenceSlot,
    RenderedPrompt,
    TemplateCheck,
    check_template,
    render_prompt,
)
from campaigns.prompting.segments import Origin, Segment
from campaigns.prompting.words import AvoidedWord

__all__ = [
    "BRAND_SEPARATOR",
    "COLOUR_KEYS",
    "IDENTIFIER",
    "JSON",
    "KINDS",
    "KNOWN_JSON_KEYS",
    "MAX_JSON_BODY_CHARS",
    "NAME_RE",
    "PALETTE_ADVICE_MAX",
    "TEXT",
    "TYPOGRAPHY_KEY",
    "AvoidedWord",
    "BrandColour",
    "BrandFont",
    "BrandKit",
    "DisplayPart",
    "Origin",
    "Problem",
    "PromptError",
    "ReferenceSlot",
    "RenderedPrompt",
    "Segment",
    "TemplateCheck",
    "check_template",
    "placeholder_parts",
    "render_prompt",
    "template_variables",
]
