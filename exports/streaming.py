"""Saving a pack's ZIP to storage as it is generated (memory bounded), and deleting a file that
may not exist."""

from __future__ import annotations

import io
import logging
import queue
import threading
from collections.abc import Iterator
from typing import Any

from django.core.files import File

log = logging.getLogger(__name__)


class ByteCounter:
    bytes = 0


_END = object()


class _Abort:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def save_streaming(
    storage: Any, name: str, chunks: Iterator[bytes], counter: ByteCounter
) -> str:
    """storage.save() the ZIP as it is generated, memory bounded by a small queue.

    The generator (which reads and updates the database) runs on this thread; storage.save()
    runs on a helper thread that only moves bytes. The other way round, S3's transfer threads
    would pull the generator and query the database on connections of their own.
    """
    handoff: queue.Queue[Any] = queue.Queue(maxsize=8)
    outcome: dict[str, Any] = {}

    def upload() -> None:
        try:
            reader = io.BufferedReader(_QueueReader(handoff, counter), 1 << 20)
            outcome["name"] = storage.save(name, File(reader, name=name))
        except BaseException as exc:  # handed to the generating thread
            outcome["error"] = exc

    def put(item: Any) -> None:
        while True:
            try:
                handoff.put(item, timeout=0.5)
                return
            except queue.Full:
                if not uploader.is_alive():
                    return

    uploader = threading.Thread(target=upload, name="export-upload", daemon=True)
    uploader.start()
    try:
        for chunk in chunks:
            if not uploader.is_alive():
                break
            put(chunk)
    except BaseException as exc:
        put(_Abort(exc))  # the upload fails too, so no half pack is committed
        uploader.join()
        raise
    put(_END)
    uploader.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["name"]


class _QueueReader(io.RawIOBase):
    """A read-only, unseekable file over the byte chunks handed over through a queue."""

    def __init__(self, handoff: queue.Queue[Any], counter: ByteCounter) -> None:
        self._handoff = handoff
        self._pending = memoryview(b"")
        self._counter = counter
        self._ended = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            if self._ended:
                return 0
            item = self._handoff.get()
            if item is _END:
                self._ended = True
                return 0
            if isinstance(item, _Abort):
                self._ended = True
                raise OSError("pack build stopped") from item.error
            self._pending = memoryview(item)
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        self._counter.bytes += n
        return n


def delete_quietly(storage: Any, name: str) -> None:
    try:
        storage.delete(name)
    except Exception:  # the file may never have been created
        log.warning("Could not delete %s", name, exc_info=True)
