"""Load test: 50 reviewers against the production topology while a batch of 500 runs.

Each simulated reviewer, with 1 s of think time between actions: opens the campaign's gallery,
scrolls two pages (the htmx requests the scroll sentinel sends), reviews 20 images by keyboard
(each key is the card's htmx POST to /assets/<code>/review/, as static/js/review-keys.js sends
it), and opens one asset page; then starts over.

    # 1. the topology, with data (a campaign with enough assets, reviewer accounts)
    DATABASE_URL=... REDIS_URL=... make prod                       # in one terminal
    DATABASE_URL=... REDIS_URL=... .venv/bin/python bench/load_setup.py --assets 2000 --users 50 --batch 500
    # 2. the load (headless; the CSV holds p50/p95 per request type)
    .venv/bin/locust -f bench/locustfile.py --headless -u 50 -r 10 -t 3m \\
        --host http://127.0.0.1:8000 --csv var/locust

LOAD_CAMPAIGN (the campaign's code) and LOAD_USERS (a file of "username password" lines)
come from bench/load_setup.py's output file var/load.env. Request names group the statistics:
"gallery page", "gallery scroll", "review", "asset page".
"""

from __future__ import annotations

import itertools
import os
import random
import re
from pathlib import Path

from locust import HttpUser, between, task

ROOT = Path(__file__).resolve().parent.parent
SETUP = Path(os.environ.get("LOAD_SETUP", ROOT / "var" / "load.env"))


def _setup() -> dict[str, str]:
    values = dict(os.environ)
    if SETUP.exists():
        for line in SETUP.read_text().splitlines():
            key, _, value = line.partition("=")
            values.setdefault(key.strip(), value.strip())
    return values


CONFIG = _setup()
CAMPAIGN = CONFIG.get("LOAD_CAMPAIGN", "")
PASSWORD = CONFIG.get("LOAD_PASSWORD", "")
USERS = itertools.cycle(CONFIG.get("LOAD_USERS", "").split(","))
CARD = re.compile(r'<article id="asset-([0-9a-f-]{36})"')
MORE = re.compile(r'id="gallery-more"[^>]*hx-get="([^"]+)"')
DECISIONS = ("approved", "rejected", "changes_requested", "approved")


class Reviewer(HttpUser):
    wait_time = between(1.0, 1.0)

    def on_start(self) -> None:
        self.client.get("/login/", name="login")
        self.client.post(
            "/login/",
            {
                "username": next(USERS),
                "password": PASSWORD,
                "csrfmiddlewaretoken": self.client.cookies.get("csrftoken", ""),
            },
            headers={"Referer": self.host + "/login/"},
            name="login",
        )

    def _csrf(self) -> dict[str, str]:
        return {
            "X-CSRFToken": self.client.cookies.get("csrftoken", ""),
            "HX-Request": "true",
            "Referer": self.host + "/",
        }

    @task
    def review_session(self) -> None:
        gallery = f"/campaigns/{CAMPAIGN}/gallery/"
        page = self.client.get(gallery, name="gallery page")
        cards = CARD.findall(page.text)
        html = page.text
        for _ in range(2):
            self.wait()
            more = MORE.search(html)
            if not more:
                break
            html = self.client.get(
                more.group(1).replace("&amp;", "&"),
                headers={"HX-Request": "true", "HX-Target": "gallery-more"},
                name="gallery scroll",
            ).text
            cards += CARD.findall(html)
        for code in random.sample(cards, min(20, len(cards))):
            self.wait()
            self.client.post(
                f"/assets/{code}/review/",
                {"status": random.choice(DECISIONS)},
                headers={**self._csrf(), "HX-Target": f"asset-{code}"},
                name="review",
            )
        if cards:
            self.wait()
            self.client.get(f"/assets/{random.choice(cards)}/", name="asset page")
