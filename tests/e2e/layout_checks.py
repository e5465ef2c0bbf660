"""Layout checks the browser tests share (issue 18)."""

from __future__ import annotations

from typing import Any


def broken_headings(page: Any) -> list[str]:
    """Table headings with a word drawn on two lines: a word whose Range has client rects on more
    than one line (a word that fits on one line has all its rects at one top)."""
    return page.evaluate(
        """() => {
        const out = [];
        for (const th of document.querySelectorAll('th')) {
            if (!th.getClientRects().length || th.offsetWidth <= 1) continue;  // hidden or visually-hidden
            const walker = document.createTreeWalker(th, NodeFilter.SHOW_TEXT);
            for (let node = walker.nextNode(); node; node = walker.nextNode()) {
                for (const m of node.data.matchAll(/\\S+/g)) {
                    const range = document.createRange();
                    range.setStart(node, m.index);
                    range.setEnd(node, m.index + m[0].length);
                    const tops = new Set([...range.getClientRects()].filter(r => r.width > 0).map(r => Math.round(r.top)));
                    if (tops.size > 1) out.push(m[0]);
                }
            }
        }
        return out;
    }"""
    )
