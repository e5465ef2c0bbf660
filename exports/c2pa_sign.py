"""C2PA for renditions: when an operator configures a signing certificate chain and key
(EXPORT_C2PA_CERT / EXPORT_C2PA_KEY), every rendition gets a signed C2PA manifest recording
how it was made from the original (c2pa.cropped and c2pa.resized actions) and, when the original
carried a C2PA manifest of its own (BFL signs its outputs), that manifest as the parent
ingredient, so the provider's credential survives the crop and resize.

c2pa-python (c2pa-rs) does the work; see docs/exports.md for the certificate it needs.
"""

from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import c2pa
from django.conf import settings

from exports.render import CONTENT_TYPES, STUDIO_NAME, TRAINED_ALGORITHMIC_MEDIA

log = logging.getLogger(__name__)

ALGORITHMS = {
    "es256": c2pa.C2paSigningAlg.ES256,
    "es384": c2pa.C2paSigningAlg.ES384,
    "ps256": c2pa.C2paSigningAlg.PS256,
    "ed25519": c2pa.C2paSigningAlg.ED25519,
}


@dataclass(frozen=True)
class SigningKey:
    """What a signer is made from; plain bytes, so it crosses threads and pickles."""

    alg: str
    cert_chain: bytes  # PEM, the signing certificate first, then its issuers
    private_key: bytes  # PEM (PKCS#8)
    tsa_url: str | None = None

    def signer(self) -> c2pa.Signer:
        info = c2pa.C2paSignerInfo(
            alg=ALGORITHMS[self.alg],
            sign_cert=self.cert_chain,
            private_key=self.private_key,
            ta_url=self.tsa_url.encode() if self.tsa_url else None,
        )
        return c2pa.Signer.from_info(info)


def configured_key() -> SigningKey | None:
    """The operator's signing key, or None when C2PA signing is not configured."""
    cert, key = settings.EXPORT_C2PA_CERT, settings.EXPORT_C2PA_KEY
    if not cert or not key:
        return None
    alg = settings.EXPORT_C2PA_ALG.lower()
    if alg not in ALGORITHMS:
        raise ValueError(f"EXPORT_C2PA_ALG must be one of {', '.join(ALGORITHMS)}")
    return SigningKey(
        alg=alg,
        cert_chain=Path(cert).read_bytes(),
        private_key=Path(key).read_bytes(),
        tsa_url=settings.EXPORT_C2PA_TSA_URL or None,
    )


def has_manifest(data: bytes, content_type: str) -> bool:
    """Whether the original carries a C2PA manifest that c2pa can read (then it is kept)."""
    try:
        reader = c2pa.Reader(content_type, io.BytesIO(data))
    except (
        Exception
    ):  # c2pa raises for "no manifest" as for a damaged one: both mean none
        return False
    try:
        return reader.get_active_manifest() is not None
    finally:
        reader.close()


def sign(
    data: bytes,
    fmt: str,
    *,
    signer: c2pa.Signer,
    title: str,
    crop: tuple[int, int, int, int],
    size: tuple[int, int],
    model_label: str,
    original: bytes | None = None,
    original_type: str = "image/png",
) -> bytes:
    """`data` (an encoded rendition) with a signed C2PA manifest embedded.

    `original`: the original's bytes when it has a C2PA manifest of its own; it becomes the
    parent ingredient and the actions start with c2pa.opened. Without one the rendition is
    declared created by a generative model (IPTC trainedAlgorithmicMedia), then cropped and resized.
    """
    left, top, right, bottom = crop
    edits = [
        {
            "action": "c2pa.cropped",
            "softwareAgent": {"name": STUDIO_NAME},
            "parameters": {
                "description": f"crop {right - left}x{bottom - top} at {left},{top} around the focal point"
            },
        },
        {
            "action": "c2pa.resized",
            "softwareAgent": {"name": STUDIO_NAME},
            "parameters": {"description": f"resize to {size[0]}x{size[1]} (Lanczos)"},
        },
    ]
    if original is not None:
        first = {"action": "c2pa.opened", "parameters": {"ingredientIds": ["original"]}}
    else:
        first = {
            "action": "c2pa.created",
            "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
            "softwareAgent": {"name": model_label},
        }
    manifest = {
        "claim_generator_info": [{"name": STUDIO_NAME, "version": "1"}],
        "title": title,
        "format": CONTENT_TYPES[fmt],
        "assertions": [
            {"label": "c2pa.actions", "data": {"actions": [first, *edits]}},
        ],
    }
    out = io.BytesIO()
    with c2pa.Builder(manifest) as builder:
        if original is not None:
            builder.add_ingredient(
                json.dumps(
                    {
                        "title": "original",
                        "relationship": "parentOf",
                        "label": "original",
                        "instance_id": "original",
                    }
                ),
                original_type,
                io.BytesIO(original),
            )
        builder.sign(signer, CONTENT_TYPES[fmt], io.BytesIO(data), out)
    return out.getvalue()
