"""An ingested image is decoded once: the backend's fetch reads its header, the ingest decodes it for
its full check and its thumbnail together (generation/imaging.py), issue 11.

The count comes from Pillow itself: every pixel decode goes through `PIL.Image._getdecoder` (what
`ImageFile.load` calls per tile; the WebP/AVIF plugins hand their frames to it too), every file is
opened through `PIL.Image.open`. Both are wrapped with counters for the ingest step only, on this
thread only (the fake provider serves its images from a thread of this process).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

from django.core.files.storage import default_storage
from django.test import override_settings
from PIL import Image

from generation.backends.base import ErrorClass
from generation.backends.download import verify_image
from generation.engine.ingest import generation_ingest
from generation.engine.poll import generation_poll
from generation.engine.submit import generation_submit
from generation.models import Asset, GenerationState
from tests.fakes.base import make_image
from tests.fakes.bfl_server import FakeBFL
from tests.generation.test_engine_state import EngineTestCase, ScriptedBackend

S = GenerationState


@contextmanager
def pillow_calls() -> Iterator[Counter[str]]:
    """Count Image.open and decoder creations made on the current thread."""
    counts: Counter[str] = Counter()
    me = threading.get_ident()

    def counted(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if threading.get_ident() == me:
                counts[name] += 1
            return real(*args, **kwargs)

        return wrapper

    with (
        mock.patch.object(Image, "open", counted("open", Image.open)),
        mock.patch.object(Image, "_getdecoder", counted("decode", Image._getdecoder)),
    ):
        yield counts


class IngestDecodesOnceTests(EngineTestCase):
    backend_name = "bfl"
    fake: FakeBFL

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        cls.fake = cls.enterClassContext(FakeBFL(latency=0.0))

    def setUp(self) -> None:
        super().setUp()
        self.fake.reset()
        overrides = override_settings(**self.fake.env())
        overrides.enable()
        self.addCleanup(overrides.disable)

    def test_an_ingested_result_is_decoded_once(self) -> None:
        generation = self.create(model="flux-2-pro", width=1024, height=768)
        self.dispatch(generation)
        nxt = generation_submit(generation_id=generation.pk)
        deadline = time.monotonic() + 10
        while nxt.action == "poll" and time.monotonic() < deadline:
            nxt = generation_poll(generation_id=generation.pk, seq=nxt.poll_seq)
        self.assertEqual(nxt.action, "ingest", nxt)

        with pillow_calls() as counts:
            generation_ingest(generation_id=generation.pk)

        row = self.reload(generation)
        self.assertEqual(row.state, S.SUCCEEDED, row.error_message)
        self.assertEqual(self.fake.counts["deliveries"], 1)
        # One pixel decode: the ingest's (check + thumbnail). Before issue 11 the backend's fetch
        # decoded the download fully and the ingest decoded it again: 2.
        self.assertEqual(counts["decode"], 1, counts)
        # Two opens: the backend's header read (format, pixel bound, MIME type: no pixels) and
        # the ingest's; before, the ingest opened it twice more (inspect, then thumbnail): 3.
        self.assertEqual(counts["open"], 2, counts)
        asset = Asset.objects.get(generation=row)
        self.assertEqual((asset.format, asset.width, asset.height), ("jpeg", 1024, 768))
        with (
            default_storage.open(asset.thumbnail.name, "rb") as handle,
            Image.open(handle) as thumb,
        ):
            self.assertEqual((thumb.format, max(thumb.size)), ("WEBP", 512))


class TruncatedResultTests(EngineTestCase):
    """The whole-stream check moved from the backend's fetch into the ingest's one decode: a result
    cut short after a valid header still never becomes an asset."""

    def test_a_result_cut_after_its_header_is_retried_then_failed(self) -> None:
        # (Pillow parses the whole WebP container at open: a cut WebP never passes the header check.)
        for fmt, mime in (("JPEG", "image/jpeg"), ("PNG", "image/png")):
            with self.subTest(fmt), override_settings(ENGINE_MAX_RETRIES=1):
                ScriptedBackend.reset()
                whole = make_image(640, 480, fmt)
                cut = whole[: len(whole) * 2 // 3]
                # The backend's header check lets it through (as a provider's fetch would)...
                self.assertEqual(verify_image(cut), mime)
                ScriptedBackend.fetches = [(cut, mime), (cut, mime)]
                row = self.run_to_end(self.create())
                # ...the ingest's decode does not.
                self.assertEqual(row.state, S.FAILED)
                self.assertEqual(row.error_class, ErrorClass.BAD_RESULT)
                self.assertIn("not a usable image", row.error_message)
                self.assertEqual(ScriptedBackend.calls["fetch"], 2)
                self.assertFalse(Asset.objects.filter(generation=row).exists())
