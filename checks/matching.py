"""Logo and product presence: local feature matching (OpenCV ORB) with a homography check.

ORB keypoints of the reference (at most REFERENCE_SIDE px) are matched to the image's (at
MATCH_SIDE) by Hamming distance with Lowe's ratio test; RANSAC then looks for one homography
that carries enough of those matches. Matches scattered by chance over an image that does not
hold the reference agree on no homography, so the inlier count is what tells presence from
absence. A homography is only believed when it maps the reference to a convex quadrilateral of
plausible size (not folded, not a sliver).

The score is inliers / GOOD_INLIERS, capped at 1 (0 without a plausible homography). For a product,
the matched region's dominant colour is compared with the reference's (CIEDE2000).
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from checks import palette
from checks.pixels import MATCH_SIDE, Picture

REFERENCE_SIDE = 512
GOOD_INLIERS = 25
MIN_INLIERS = 8
RATIO = 0.75
SCENE_FEATURES = 4000
REFERENCE_FEATURES = 1000


def _features(
    grey: np.ndarray, count: int
) -> tuple[list[cv2.KeyPoint], np.ndarray | None]:
    orb = cv2.ORB.create(nfeatures=count, fastThreshold=10)
    keypoints, descriptors = orb.detectAndCompute(grey, None)
    # None when there are no keypoints at all (OpenCV's stubs say an array).
    return list(keypoints), descriptors


def _reference_mask(reference: Picture) -> np.ndarray | None:
    opaque = reference.opaque(REFERENCE_SIDE)
    return None if opaque is None else opaque.astype(np.uint8) * 255


def _plausible(quad: np.ndarray, scene_area: float) -> bool:
    if not cv2.isContourConvex(quad.astype(np.float32).reshape(-1, 1, 2)):
        return False
    area = cv2.contourArea(quad.astype(np.float32))
    return scene_area * 0.0005 <= area <= scene_area * 1.05


def scene_features(picture: Picture) -> tuple[list[cv2.KeyPoint], np.ndarray | None]:
    """The image's keypoints, computed once for every reference looked for."""
    return _features(picture.grey(MATCH_SIDE), SCENE_FEATURES)


def find(
    picture: Picture,
    reference: Picture,
    *,
    features: tuple[list[cv2.KeyPoint], np.ndarray | None] | None = None,
) -> dict[str, Any]:
    scene = picture.fitted(MATCH_SIDE)
    scale = picture.width / scene.shape[1]
    ref_mask = _reference_mask(reference)
    ref_grey = reference.grey(REFERENCE_SIDE)
    if ref_mask is not None:
        # Transparent parts of a logo carry no pixels of it: grey them out of the descriptors.
        ref_grey = np.where(ref_mask > 0, ref_grey, 127).astype(np.uint8)
    ref_kp, ref_desc = _features(ref_grey, REFERENCE_FEATURES)
    scene_kp, scene_desc = features or scene_features(picture)
    result: dict[str, Any] = {
        "score": 0.0,
        "found": False,
        "inliers": 0,
        "matches": 0,
        "reference_keypoints": len(ref_kp),
        "region": None,
    }
    if ref_desc is None or scene_desc is None or len(ref_kp) < MIN_INLIERS:
        return result
    pairs = cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(ref_desc, scene_desc, k=2)
    good = [
        p[0] for p in pairs if len(p) == 2 and p[0].distance < RATIO * p[1].distance
    ]
    result["matches"] = len(good)
    if len(good) < MIN_INLIERS:
        return result
    src = np.array([ref_kp[m.queryIdx].pt for m in good], dtype=np.float32).reshape(
        -1, 1, 2
    )
    dst = np.array([scene_kp[m.trainIdx].pt for m in good], dtype=np.float32).reshape(
        -1, 1, 2
    )
    homography, inlier_mask = cv2.findHomography(src, dst, cv2.RANSAC, 5.0)
    if homography is None:
        return result
    inliers = int(inlier_mask.sum())
    h, w = ref_grey.shape
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float32).reshape(
        -1, 1, 2
    )
    quad = cv2.perspectiveTransform(corners, homography).reshape(-1, 2)
    plausible = _plausible(quad, scene.shape[0] * scene.shape[1])
    result["inliers"] = inliers
    if plausible and inliers >= MIN_INLIERS:
        result["found"] = True
        result["score"] = round(min(1.0, inliers / GOOD_INLIERS), 3)
        # In the original image's pixels, for drawing on the asset page.
        result["region"] = [
            [round(float(x) * scale, 1), round(float(y) * scale, 1)] for x, y in quad
        ]
    return result


def _dominant(lab: np.ndarray) -> np.ndarray | None:
    clusters = palette.dominant_colours(lab, k=3)
    return clusters[0][0] if clusters else None


def product_colour(
    picture: Picture, reference: Picture, region: list[list[float]]
) -> dict[str, Any]:
    """The dominant colour inside the matched region against the reference's own."""
    ref_lab = palette.to_lab(reference.fitted(128)).reshape(-1, 3)
    ref_opaque = reference.opaque(128)
    if ref_opaque is not None:
        ref_lab = ref_lab[ref_opaque.reshape(-1)]
    scene = picture.fitted(MATCH_SIDE)
    scale = scene.shape[1] / picture.width
    quad = (np.array(region) * scale).round().astype(np.int32)
    # Only the region's bounding box is converted to Lab, not the whole image.
    x, y, w, h = cv2.boundingRect(quad)
    x, y = max(0, x), max(0, y)
    box = scene[y : y + h, x : x + w]
    mask = np.zeros(box.shape[:2], np.uint8)
    cv2.fillConvexPoly(mask, quad - [x, y], 255)
    inside = palette.to_lab(box)[mask > 0]
    want, got = _dominant(ref_lab), _dominant(inside)
    if want is None or got is None:
        return {}
    return {
        "reference_hex": palette.hex_of_lab(want),
        "rendered_hex": palette.hex_of_lab(got),
        "delta_e": round(palette.delta_e(want, got), 2),
    }
