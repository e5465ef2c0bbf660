"""Data for the load test (bench/locustfile.py), in the database the topology runs on.

    DATABASE_URL=... REDIS_URL=... .venv/bin/python bench/load_setup.py --assets 2000 --users 50 --batch 500

Makes the workspace "Load test" (deleted and made again each run) with one campaign of --assets
assets (SQL bulk load, as bench/gallery.py), --users approvers sharing one random password, and,
with --batch, dispatches a preview batch of that many generations on the same campaign so the
workers are busy while the reviewers work. Writes var/load.env for the locustfile.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import secrets
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--assets", type=int, default=2000)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studio.settings")
    os.environ.setdefault("SECRET_KEY", "load-setup-" + secrets.token_hex(8))
    import django

    django.setup()
    from django.contrib.auth.models import User

    from bench.gallery import add_assets_sql
    from campaigns.models import Brand, Campaign, PromptTemplate, Tag, TemplateVersion
    from campaigns.prompting import template_variables
    from generation.batches import services as batch_services
    from generation.batches.spec import FIXED, BatchSpec, Seeds, Size, Target
    from studio.models import Membership, Role, Workspace

    Workspace.objects.filter(slug="load-test").delete()
    User.objects.filter(username__startswith="load-reviewer-").delete()
    workspace = Workspace.objects.create(name="Load test", slug="load-test")
    brand = Brand.objects.create(workspace=workspace, name="Load brand")
    campaign = Campaign.objects.create(workspace=workspace, brand=brand, name="Load")
    tag = Tag.objects.create(workspace=workspace, name="hero")
    add_assets_sql([campaign], args.assets, dt.datetime.now(dt.UTC), tag)
    password = secrets.token_urlsafe(12)
    names = []
    for n in range(args.users):
        user = User.objects.create_user(f"load-reviewer-{n}", password=password)
        Membership.objects.create(workspace=workspace, user=user, role=Role.ADMIN)
        names.append(user.username)
    if args.batch:
        body = 'Poster "{headline}" above a coffee bag'
        template = PromptTemplate.objects.create(
            workspace=workspace, brand=brand, campaign=campaign, name="Load template"
        )
        version = TemplateVersion.objects.create(
            workspace=workspace,
            template=template,
            number=1,
            kind="text",
            body=body,
            variables=template_variables(body, "text"),
        )
        spec = BatchSpec(
            mode="matrix",
            matrix=(("headline", tuple(f"Offer {i}" for i in range(args.batch))),),
            seeds=Seeds(FIXED, values=(7,)),
            targets=(Target.parse("preview:flux-2-pro"),),
            sizes=(Size(512, 512),),
        )
        batch = batch_services.batch_create(
            campaign=campaign,
            version=version,
            spec=spec,
            user=User.objects.get(username=names[0]),
        )
        print(f"batch {batch.code}: {batch.size} generations dispatched")
    out = ROOT / "var" / "load.env"
    out.parent.mkdir(exist_ok=True)
    out.write_text(
        f"LOAD_CAMPAIGN={campaign.code}\nLOAD_PASSWORD={password}\n"
        f"LOAD_USERS={','.join(names)}\n"
    )
    print(
        f"campaign {campaign.code} with {args.assets} assets; {len(names)} reviewers; {out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
