"""Gallery pages at 100 and at 10,000 assets: query count and page time, first page and deep page.

    .venv/bin/python bench/gallery.py                 # sizes 100 and 10000, 30 timed runs each
    .venv/bin/python bench/gallery.py --sizes 100 10000 50000 --runs 50 --explain

For each size N the bench makes a workspace with one campaign of N succeeded generations and
their assets (two bulk INSERTs per 2,000 rows; a tag on every other asset, a comment on every
third; files are names only, the HTML page never opens them), then requests, as an approver,
through Django's test client (all middleware, the real templates):
- the first page: the whole gallery page (filters, status counts, the first 48 cards);
- a deep page: what the scroll sentinel fetches (htmx, HX-Target: gallery-more) at the cursor of
  the asset in the middle of the campaign (the 5,000th of 10,000).
It prints the queries each request ran (equal at every size: no N+1), the median and p90 time
over --runs requests after two warm-up ones, and the ratio of the medians of the largest size
to the smallest.

BENCH_DATABASE_URL names a database the bench owns (default `gallery_bench` on 127.0.0.1:5432,
created when missing): it is migrated, and the bench's own workspaces (slug `gallery-bench-N`)
are deleted and made again at each run. Nothing else in it is touched.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CHUNK = 2000


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 10_000])
    parser.add_argument("--runs", type=int, default=30, help="timed requests per page")
    parser.add_argument(
        "--other-assets",
        type=int,
        default=0,
        help="also give each workspace another campaign with this many NEWER assets",
    )
    parser.add_argument(
        "--explain", action="store_true", help="print the deep page's query plan"
    )
    parser.add_argument(
        "--campaigns",
        type=int,
        default=1,
        help="spread each size's assets over this many campaigns of the one workspace (the "
        "first is measured, and the workspace gallery too)",
    )
    return parser.parse_args()


def ensure_database(url: str) -> None:
    import psycopg
    from psycopg import sql

    name = url.rsplit("/", 1)[-1].split("?", 1)[0]
    admin = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [name]
        ).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def populate(
    size: int, other: int = 0, campaigns: int = 1
) -> tuple[object, object, object]:
    """A fresh workspace with an approver and one campaign of `size` assets (and `other`
    newer assets in a second campaign)."""
    from django.contrib.auth.models import User
    from django.db import connection

    from campaigns.models import Brand, Campaign, Tag
    from studio.models import Membership, Role, Workspace

    slug = f"gallery-bench-{size}"
    Workspace.objects.filter(slug=slug).delete()
    User.objects.filter(username=slug).delete()
    workspace = Workspace.objects.create(name=f"Gallery bench {size}", slug=slug)
    user = User.objects.create_user(username=slug, password=uuid.uuid4().hex)
    Membership.objects.create(workspace=workspace, user=user, role=Role.APPROVER)
    brand = Brand.objects.create(workspace=workspace, name="Bench brand")
    campaign = Campaign.objects.create(
        workspace=workspace, brand=brand, name=f"{size} assets"
    )
    tag = Tag.objects.create(workspace=workspace, name="hero")
    now = dt.datetime.now(dt.UTC)
    if other:
        noise = Campaign.objects.create(workspace=workspace, brand=brand, name="newer")
        add_assets(noise, other, now + dt.timedelta(days=1), tag)
    spread = [campaign] + [
        Campaign.objects.create(workspace=workspace, brand=brand, name=f"spread {n}")
        for n in range(1, campaigns)
    ]
    add_assets_sql(spread, size, now, tag)
    # What autovacuum does soon after a bulk load: planner statistics, and the visibility map
    # that lets the status counts read only the (campaign, …) INCLUDE (review_status) index.
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE generation_asset, generation_generation")
    return workspace, user, campaign


def add_assets_sql(campaigns: list, size: int, now: dt.datetime, tag: object) -> None:
    """`size` generations and assets, asset i in campaign i mod len(campaigns), the same shape
    as add_assets, in a few INSERT ... SELECT generate_series statements (a million rows in
    minutes, where the ORM would take an hour). The review-tally triggers run as in production."""
    from django.db import connection, transaction

    first = campaigns[0]
    ids = [c.pk for c in campaigns]
    params = {
        "ws": first.workspace_id,
        "brand": first.brand_id,
        "campaigns": ids,
        "k": len(ids),
        "now": now,
        "tag": tag.pk,  # type: ignore[attr-defined]
        "code": str(first.workspace.code),
    }
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            """
            CREATE TEMP TABLE bench_series ON COMMIT DROP AS
            SELECT i, (%(campaigns)s::bigint[])[1 + i %% %(k)s] AS campaign_id,
                   gen_random_uuid() AS gcode
            FROM generate_series(0, %(size)s - 1) AS i
            """,
            {**params, "size": size},
        )
        cursor.execute(
            """
            INSERT INTO generation_generation (code, backend, model, prompt, params, width,
              height, "references", state, attempts, retries, rate_limited, provider_task_id,
              poll_url, result_url, poll_count, error_class, error_message, provider_details,
              estimated_cost, actual_cost, owner_key, priority, fair_rank, queued_at, updated_at,
              finished_at, workspace_id, campaign_id, brand_id, seed, requested_backend,
              fallbacks, route, changes, variables)
            SELECT gcode, CASE WHEN i %% 2 = 1 THEN 'bfl' ELSE 'preview' END,
              CASE WHEN i %% 3 = 0 THEN 'flux-2-flex' ELSE 'flux-2-pro' END,
              'A leather bag on an oak table, headline "Offer ' || i %% 7 || '"', '{}', 1024,
              1024, '[]', 'succeeded', 1, 0, 0, '', '', '', 0, '', '', '{}',
              0.01 * (i %% 9), NULL, '', 0, 0, %(now)s - make_interval(secs => i), %(now)s,
              %(now)s, %(ws)s, campaign_id, %(brand)s, i, '', '[]', '[]', '{}',
              jsonb_build_object('headline', 'Offer ' || i %% 7)
            FROM bench_series
            """,
            params,
        )
        cursor.execute(
            """
            INSERT INTO generation_asset (code, file, thumbnail, width, height, format,
              content_type, byte_size, sha256, created_at, workspace_id, generation_id,
              campaign_id, review_status, starred, cost)
            SELECT gen_random_uuid(),
              'generations/' || %(code)s || '/' || s.gcode || '/image.png',
              'generations/' || %(code)s || '/' || s.gcode || '/thumb.webp', 1024, 1024, 'png',
              'image/png', 1500000, lpad(to_hex(s.i), 64, '0'),
              %(now)s - make_interval(secs => s.i), %(ws)s, g.id, s.campaign_id,
              (ARRAY['pending','approved','rejected','changes_requested'])[1 + s.i %% 4],
              s.i %% 11 = 0, g.estimated_cost
            FROM bench_series s JOIN generation_generation g ON g.code = s.gcode
            """,
            params,
        )
        cursor.execute(
            """
            INSERT INTO generation_asset_tags (asset_id, tag_id)
            SELECT a.id, %(tag)s FROM generation_asset a
            JOIN generation_generation g ON g.id = a.generation_id
            WHERE a.workspace_id = %(ws)s AND g.seed %% 2 = 0
            """,
            params,
        )
        cursor.execute(
            """
            INSERT INTO campaigns_comment (body, created_at, asset_id, workspace_id)
            SELECT 'Nice', %(now)s, a.id, %(ws)s FROM generation_asset a
            JOIN generation_generation g ON g.id = a.generation_id
            WHERE a.workspace_id = %(ws)s AND g.seed %% 3 = 0
            """,
            params,
        )


def add_assets(campaign: object, size: int, now: dt.datetime, tag: object) -> None:
    from generation.models import Asset, Comment, Generation

    workspace, brand = campaign.workspace, campaign.brand  # type: ignore[attr-defined]
    statuses = ["pending", "approved", "rejected", "changes_requested"]
    for start in range(0, size, CHUNK):
        stop = min(size, start + CHUNK)
        generations = Generation.objects.bulk_create(
            [
                Generation(
                    workspace=workspace,
                    campaign=campaign,
                    brand=brand,
                    backend="bfl" if i % 2 else "preview",
                    model="flux-2-pro" if i % 3 else "flux-2-flex",
                    prompt=f'A leather bag on an oak table, headline "Offer {i % 7}"',
                    width=1024,
                    height=1024,
                    seed=i,
                    state="succeeded",
                    variables={"headline": f"Offer {i % 7}"},
                    queued_at=now - dt.timedelta(seconds=i),
                )
                for i in range(start, stop)
            ]
        )
        assets = Asset.objects.bulk_create(
            [
                Asset(
                    workspace=workspace,
                    generation=g,
                    campaign=campaign,
                    file=f"generations/{workspace.code}/{g.code}/image.png",
                    thumbnail=f"generations/{workspace.code}/{g.code}/thumb.webp",
                    width=1024,
                    height=1024,
                    format="png",
                    content_type="image/png",
                    byte_size=1_500_000,
                    sha256=f"{i:064x}",
                    created_at=now - dt.timedelta(seconds=i),
                    review_status=statuses[i % 4],
                    starred=i % 11 == 0,
                )
                for i, g in zip(range(start, stop), generations, strict=True)
            ]
        )
        Asset.tags.through.objects.bulk_create(
            [Asset.tags.through(asset=a, tag=tag) for a in assets[::2]]
        )
        Comment.objects.bulk_create(
            [Comment(workspace=workspace, asset=a, body="Nice") for a in assets[::3]]
        )


def request(client: object, url: str, headers: dict[str, str]) -> object:
    response = client.get(url, headers=headers, secure=True)  # type: ignore[attr-defined]
    assert response.status_code == 200, (url, response.status_code)
    return response


def count_queries(client: object, url: str, headers: dict[str, str]) -> tuple[int, int]:
    """(queries, cards) of one request."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        response = request(client, url, headers)
    return len(queries), response.content.count(b'<article id="asset-')  # type: ignore[attr-defined]


def main() -> int:
    args = parse_args()
    os.environ["DATABASE_URL"] = os.environ.get(
        "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/gallery_bench"
    )
    os.environ["REDIS_URL"] = os.environ.get(
        "BENCH_REDIS_URL", "redis://127.0.0.1:6379/7"
    )
    os.environ.setdefault("SECRET_KEY", "bench-" + uuid.uuid4().hex)
    # One database connection kept across requests, as a production web process would run
    # (DB_CONN_MAX_AGE); the time measured is then the page's, not PostgreSQL's handshake.
    os.environ.setdefault("DB_CONN_MAX_AGE", "600")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studio.settings")
    ensure_database(os.environ["DATABASE_URL"])

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.test import Client
    from django.test.utils import setup_test_environment
    from django.urls import reverse

    from generation.gallery import queries as gallery
    from generation.models import Asset

    setup_test_environment()  # the test client's host, and no manifest needed for static URLs
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {
            "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        },
    }
    call_command("migrate", verbosity=0)

    pages = []  # (size, label, client, url, headers)
    for size in args.sizes:
        started = time.perf_counter()
        workspace, user, campaign = populate(size, args.other_assets, args.campaigns)
        extra = (
            f" (+{args.other_assets:,} newer in another campaign)"
            if args.other_assets
            else ""
        )
        print(f"{size:>7,} assets{extra} made in {time.perf_counter() - started:.1f} s")
        client = Client()
        client.force_login(user)
        request(client, "/", {})  # the first request after login saves the session
        base = reverse("generation:campaign-gallery", args=[campaign.code])  # type: ignore[attr-defined]
        in_campaign = Asset.objects.filter(campaign=campaign).count()
        middle = (
            Asset.objects.filter(campaign=campaign)
            .order_by("-created_at", "-pk")
            .only("created_at")[in_campaign // 2]
        )
        cursor = gallery.cursor_for(middle, gallery.SORTS["newest"])
        htmx = {"HX-Request": "true", "HX-Target": "gallery-more"}
        pages.append((size, "first page", client, base, {}))
        pages.append((size, "cost-sorted page", client, f"{base}?sort=cost", {}))
        pages.append(
            (size, "workspace page", client, reverse("generation:gallery"), {})
        )
        pages.append(
            (
                size,
                f"deep page (#{in_campaign // 2:,})",
                client,
                f"{base}?after={cursor}",
                htmx,
            )
        )
        if args.explain:
            scope = gallery.Scope(workspace=workspace, campaign=campaign)  # type: ignore[arg-type]
            deep = gallery._after(
                gallery.card_queryset(gallery.Filters().apply(scope.assets())),
                gallery.SORTS["newest"],
                cursor,
            ).order_by("-created_at", "-pk")[: gallery.PAGE_SIZE + 1]
            print(deep.explain(analyze=True))

    # Warm up (template loading, the planner), count queries, then time the pages in turns, so
    # that whatever else the machine does falls on every size alike.
    counts = {}
    for size, label, client, url, headers in pages:
        for _ in range(2):
            request(client, url, headers)
        counts[(size, label)] = count_queries(client, url, headers)
    times: dict[tuple[int, str], list[float]] = {(s, lb): [] for s, lb, *_ in pages}
    for _ in range(args.runs):
        for size, label, client, url, headers in pages:
            started = time.perf_counter()
            request(client, url, headers)
            times[(size, label)].append((time.perf_counter() - started) * 1000)
    rows = []
    for size, label, *_ in pages:
        t = sorted(times[(size, label)])
        queries, cards = counts[(size, label)]
        rows.append(
            (
                size,
                label,
                {
                    "queries": queries,
                    "cards": cards,
                    "median_ms": statistics.median(t),
                    "p90_ms": t[max(0, int(len(t) * 0.9) - 1)],
                },
            )
        )

    print()
    print(
        f"{'assets':>8}  {'page':<22}{'queries':>8}{'cards':>7}{'median':>10}{'p90':>10}"
    )
    for size, page, m in rows:
        print(
            f"{size:>8,}  {page:<22}{m['queries']:>8}{m['cards']:>7}"
            f"{m['median_ms']:>8.1f}ms{m['p90_ms']:>8.1f}ms"
        )
    small, large = min(args.sizes), max(args.sizes)
    by = {(size, page.split(" ")[0]): m for size, page, m in rows}
    print()
    for kind in ("first", "deep", "cost-sorted", "workspace"):
        a, b = by[(small, kind)], by[(large, kind)]
        print(
            f"{kind} page, {large:,} vs {small:,} assets: queries {b['queries']} vs "
            f"{a['queries']}, median time ratio {b['median_ms'] / a['median_ms']:.2f}"
        )
    same = all(
        len({m["queries"] for _s, p, m in rows if p.startswith(kind)}) == 1
        for kind in ("first", "deep", "cost-sorted", "workspace")
    )
    print("query counts equal at every size:", "yes" if same else "NO")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
