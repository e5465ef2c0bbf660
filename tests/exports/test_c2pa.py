"""C2PA on renditions: with a signing certificate configured, every rendition carries a signed
manifest (crop and resize recorded as actions) that c2pa-python's Reader validates against the
test CA, and an original that came signed (as BFL's do) is kept as the parent ingredient."""

from __future__ import annotations

import io
import json
import subprocess
import zipfile
from pathlib import Path

import c2pa
import pytest
from PIL import Image

from exports import services
from exports.c2pa_sign import SigningKey
from exports.render import TRAINED_ALGORITHMIC_MEDIA
from tests.exports.c2pa_certs import make_chain
from tests.exports.helpers import approved_asset, has_exiftool, marked_image
from tests.factories import make_brand, make_campaign, make_workspace

pytestmark = pytest.mark.django_db


def _provider_signed_png(folder: Path) -> bytes:
    """An original as a provider delivers it: a PNG with the provider's own C2PA manifest."""
    provider = make_chain(folder, cn="Provider test signer")
    key = SigningKey(
        "es256", provider["chain"].read_bytes(), provider["key"].read_bytes()
    )
    manifest = {
        "claim_generator_info": [{"name": "provider-test", "version": "1"}],
        "title": "sample.png",
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {
                    "actions": [
                        {
                            "action": "c2pa.created",
                            "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
                        }
                    ]
                },
            }
        ],
    }
    out = io.BytesIO()
    with c2pa.Builder(manifest) as builder:
        builder.sign(
            key.signer(), "image/png", io.BytesIO(marked_image((800, 1000))), out
        )
    return out.getvalue()


def _read(data: bytes, content_type: str, anchors: bytes) -> dict:
    trust = c2pa.Settings.from_json(
        json.dumps(
            {
                "trust": {"user_anchors": anchors.decode()},
                "verify": {"verify_trust": True},
            }
        )
    )
    reader = c2pa.Reader(
        content_type, io.BytesIO(data), context=c2pa.Context(settings=trust)
    )
    try:
        return json.loads(reader.json())
    finally:
        reader.close()


def _actions(manifest: dict) -> list[dict]:
    for assertion in manifest["assertions"]:
        if assertion["label"].startswith("c2pa.actions"):
            return assertion["data"]["actions"]
    return []


def test_renditions_are_signed_and_keep_the_originals_manifest(
    tmp_path: Path, settings
) -> None:
    (tmp_path / "provider").mkdir()
    (tmp_path / "studio").mkdir()
    signed_original = _provider_signed_png(tmp_path / "provider")
    studio = make_chain(tmp_path / "studio", cn="Studio test signer")
    settings.EXPORT_C2PA_CERT = str(studio["chain"])
    settings.EXPORT_C2PA_KEY = str(studio["key"])
    workspace = make_workspace("Signed")
    campaign = make_campaign(make_brand(workspace, default_formats=[]), name="Launch")
    from_provider = approved_asset(campaign)
    from_provider.file.storage.delete(from_provider.file.name)
    from_provider.file.storage.save(
        from_provider.file.name, io.BytesIO(signed_original)
    )
    plain = approved_asset(campaign, size=(800, 1000))
    pack = services.export_pack_request(
        workspace=workspace,
        campaign=campaign,
        preset_names=["square", "16x9"],
        formats=["jpeg", "png", "webp", "avif"],
        dispatch=False,
    )
    pack = services.export_pack_build(pack_id=pack.pk)
    assert pack.state == "succeeded"
    with pack.file.open("rb") as handle, zipfile.ZipFile(handle) as zf:
        rows = json.loads(zf.read("manifest.json"))["renditions"]
        files = {row["file"]: zf.read(row["file"]) for row in rows}
    assert len(rows) == 2 * 2 * 4
    anchors = studio["ca_pem"] + (tmp_path / "provider" / "chain.pem").read_bytes()
    for row in rows:
        data = files[row["file"]]
        store = _read(data, row["content_type"], anchors)
        assert store["validation_state"] == "Trusted", (row["file"], store)
        active = store["manifests"][store["active_manifest"]]
        assert active["claim_generator_info"][0]["name"] == "Flux Studio"
        names = [a["action"] for a in _actions(active)]
        assert names[-2:] == ["c2pa.cropped", "c2pa.resized"]
        assert (
            f"{row['width']}x{row['height']}"
            in _actions(active)[-1]["parameters"]["description"]
        )
        # The rendition itself is still the image the manifest row describes.
        assert Image.open(io.BytesIO(data)).size == (row["width"], row["height"])
        if row["asset_id"] == str(from_provider.code):
            assert names[0] == "c2pa.opened"
            (ingredient,) = active["ingredients"]
            assert ingredient["relationship"] == "parentOf"
            parent = store["manifests"][ingredient["active_manifest"]]
            assert parent["claim_generator_info"][0]["name"] == "provider-test"
            assert _actions(parent)[0]["digitalSourceType"] == TRAINED_ALGORITHMIC_MEDIA
            # Checked when the rendition was signed (the worker does not trust the provider's
            # test CA): the signature and hashes held; only trust was not established there.
            checked = ingredient["validation_results"]["activeManifest"]
            assert "claimSignature.validated" in {c["code"] for c in checked["success"]}
            assert {c["code"] for c in checked.get("failure", [])} <= {
                "signingCredential.untrusted"
            }
        else:
            assert row["asset_id"] == str(plain.code)
            assert not active.get("ingredients")
            assert names[0] == "c2pa.created"
            assert _actions(active)[0]["digitalSourceType"] == TRAINED_ALGORITHMIC_MEDIA
    # Signing keeps the XMP marking (an independent reader still finds it).
    if has_exiftool():
        jpeg = next(r for r in rows if r["format"] == "jpeg")
        path = tmp_path / "one.jpg"
        path.write_bytes(files[jpeg["file"]])
        tags = json.loads(subprocess.check_output(["exiftool", "-j", str(path)]))[0]
        assert tags["DigitalSourceType"].endswith("trainedAlgorithmicMedia")


def test_without_a_certificate_nothing_is_signed(settings) -> None:
    settings.EXPORT_C2PA_CERT = settings.EXPORT_C2PA_KEY = ""
    workspace = make_workspace("Unsigned")
    campaign = make_campaign(make_brand(workspace, default_formats=[]), name="Launch")
    approved_asset(campaign)
    pack = services.export_pack_request(
        workspace=workspace, campaign=campaign, preset_names=["square"], dispatch=False
    )
    pack = services.export_pack_build(pack_id=pack.pk)
    with pack.file.open("rb") as handle, zipfile.ZipFile(handle) as zf:
        (row,) = json.loads(zf.read("manifest.json"))["renditions"]
        data = zf.read(row["file"])
    assert row["c2pa"] is False
    with pytest.raises(c2pa.C2paError):
        c2pa.Reader("image/jpeg", io.BytesIO(data))
