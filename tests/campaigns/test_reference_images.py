"""The upload cleaning pipeline (campaigns/images.py) against malformed and edge-case files.

Every file is made here, in the test, so the suite needs no fixtures on disk.
"""

from __future__ import annotations

import hashlib
import io
import random
import struct
import zlib
from typing import Any
from unittest import mock

from django.core.files.base import File
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import SimpleTestCase, override_settings
from PIL import ExifTags, Image, ImageCms, PngImagePlugin

from campaigns.images import THUMBNAIL_SIZE, CleanImage, ImageRejected, clean_image


def encode(image: Image.Image, fmt: str, **params: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def noise(size: tuple[int, int] = (96, 64), mode: str = "RGB") -> Image.Image:
    # Random pixels do not compress, so a file cut in half really lacks image data.
    rng = random.Random(7)
    channels = len(mode)
    return Image.frombytes(
        mode,
        size,
        bytes(rng.getrandbits(8) for _ in range(size[0] * size[1] * channels)),
    )


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data))
        + kind
        + data
        + struct.pack(">I", zlib.crc32(kind + data))
    )


def png_bomb(width: int, height: int, *, full: bool = False) -> bytes:
    """A greyscale PNG whose header claims width x height. With full=True all rows are there
    (a real decompression bomb: one byte of zeros per pixel compresses about 1000:1)."""
    header = png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
    if full:
        compressor = zlib.compressobj(9)
        row = b"\0" * (width + 1)
        body = (
            b"".join(compressor.compress(row) for _ in range(height))
            + compressor.flush()
        )
    else:
        body = zlib.compress(b"\0" * 1000)
    return (
        b"\x89PNG\r\n\x1a\n"
        + header
        + png_chunk(b"IDAT", body)
        + png_chunk(b"IEND", b"")
    )


def reopen(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


class RefusedFilesTests(SimpleTestCase):
    def assertRejected(self, data: bytes | File, name: str, *fragments: str) -> str:
        with self.assertRaises(ImageRejected) as caught:
            clean_image(data, name=name)
        message = caught.exception.message
        self.assertIn(name.rsplit("/", 1)[-1], message)
        for fragment in fragments:
            self.assertIn(fragment, message)
        return message

    def test_it_refuses_a_text_file_named_png(self) -> None:
        self.assertRejected(
            b"Just some notes, not a picture.\n",
            "notes.png",
            "not an image we can read",
        )

    def test_it_refuses_a_zero_byte_file(self) -> None:
        self.assertRejected(b"", "empty.jpg", "is empty (0 bytes)")

    def test_it_refuses_a_truncated_png(self) -> None:
        data = encode(noise(), "PNG")
        self.assertRejected(data[: len(data) // 2], "cut.png", "damaged or incomplete")

    def test_it_refuses_a_truncated_jpeg(self) -> None:
        data = encode(noise(), "JPEG", quality=95)
        self.assertRejected(data[: len(data) // 2], "cut.jpg", "damaged or incomplete")

    def test_it_refuses_a_png_with_only_a_signature(self) -> None:
        self.assertRejected(
            b"\x89PNG\r\n\x1a\n", "stub.png", "not an image we can read"
        )

    def test_it_refuses_svg_and_says_why(self) -> None:
        svg = b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><rect/></svg>'
        self.assertRejected(svg, "logo.png", "SVG", "export it as PNG")
        self.assertRejected(
            b'<svg xmlns="http://www.w3.org/2000/svg"/>', "logo.svg", "SVG"
        )

    def test_it_refuses_a_pdf(self) -> None:
        self.assertRejected(
            b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\n",
            "brief.jpg",
            "PDF document",
        )

    def test_it_refuses_html(self) -> None:
        self.assertRejected(
            b"<!DOCTYPE html><html><body><img src=x></body></html>",
            "page.webp",
            "web page (HTML)",
        )

    def test_it_names_heic_photos(self) -> None:
        heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\0" * 64
        self.assertRejected(heic, "IMG_0001.HEIC", "HEIC", "JPEG")

    def test_it_refuses_formats_outside_the_list_even_when_pillow_reads_them(
        self,
    ) -> None:
        # Pillow opens PCX and ICO, but the pipeline only lets its chosen plugins see an upload.
        self.assertRejected(
            encode(Image.new("RGB", (16, 16)), "PCX"),
            "old.png",
            "not an image we can read",
        )
        self.assertRejected(
            encode(Image.new("RGB", (16, 16)), "ICO"),
            "favicon.png",
            "not an image we can read",
        )

    @override_settings(STUDIO_UPLOAD_MAX_PIXELS=40_000_000)
    def test_it_refuses_too_many_pixels_from_the_header_without_decoding(self) -> None:
        data = png_bomb(
            7000, 7000
        )  # 49 megapixels claimed, a few hundred bytes of file
        with mock.patch.object(
            PngImagePlugin.PngImageFile, "load", side_effect=AssertionError("decoded")
        ):
            self.assertRejected(
                data,
                "huge.png",
                "7000 × 7000 pixels",
                "49 megapixels",
                "limit",
                "40 megapixels",
            )

    def test_it_refuses_a_real_decompression_bomb(self) -> None:
        # Every row is present: 100 megapixels of zeros in about 100 kB. Above Pillow's own
        # warning threshold (89 MP), so this is the DecompressionBombWarning path.
        data = png_bomb(10_000, 10_000, full=True)
        self.assertLess(len(data), 200_000)
        self.assertRejected(data, "bomb.png", "limit for reference images")

    def test_it_refuses_a_header_far_beyond_pillows_error_threshold(self) -> None:
        self.assertRejected(png_bomb(40_000, 40_000), "bomb.png", "far more pixels")

    @override_settings(STUDIO_UPLOAD_MAX_PIXELS=1000)
    def test_the_pixel_limit_comes_from_settings(self) -> None:
        self.assertRejected(
            encode(Image.new("RGB", (40, 30)), "PNG"), "small.png", "40 × 30 pixels"
        )

    @override_settings(STUDIO_UPLOAD_MAX_BYTES=1500)
    def test_it_refuses_an_oversize_file(self) -> None:
        data = encode(noise((64, 64)), "PNG")
        self.assertGreater(len(data), 1500)
        self.assertRejected(data, "big.png", "over the 1 kB limit")

    @override_settings(STUDIO_UPLOAD_MAX_BYTES=1500)
    def test_it_refuses_an_oversize_upload_before_reading_it(self) -> None:
        upload = SimpleUploadedFile(
            "big.png", encode(noise((64, 64)), "PNG"), content_type="image/png"
        )
        upload.file = mock.Mock()  # the size is known; no byte of the file may be read
        self.assertRejected(upload, "big.png", "kB, over the 1 kB limit")
        upload.file.read.assert_not_called()

    def test_it_refuses_an_animated_gif(self) -> None:
        frames = [
            Image.new("RGB", (16, 16), colour) for colour in ("red", "blue", "green")
        ]
        data = encode(
            frames[0],
            "GIF",
            save_all=True,
            append_images=frames[1:],
            duration=100,
            loop=0,
        )
        self.assertRejected(data, "spin.gif", "animated GIF (3 frames)", "one frame")

    def test_it_refuses_an_animated_webp(self) -> None:
        frames = [Image.new("RGB", (16, 16), colour) for colour in ("red", "blue")]
        data = encode(
            frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=100
        )
        self.assertRejected(data, "spin.webp", "animated WebP (2 frames)")

    def test_it_refuses_an_animated_png(self) -> None:
        frames = [Image.new("RGB", (16, 16), colour) for colour in ("red", "blue")]
        data = encode(
            frames[0], "PNG", save_all=True, append_images=frames[1:], duration=100
        )
        self.assertRejected(data, "spin.png", "animated PNG (APNG)")

    def test_it_refuses_a_multi_page_tiff(self) -> None:
        pages = [Image.new("RGB", (16, 16), colour) for colour in ("red", "blue")]
        data = encode(pages[0], "TIFF", save_all=True, append_images=pages[1:])
        self.assertRejected(data, "scan.tiff", "TIFF with 2 pages")

    def test_the_message_uses_the_bare_file_name(self) -> None:
        with self.assertRaises(ImageRejected) as caught:
            clean_image(b"", name="C:\\Users\\me\\Desktop\\empty.png")
        self.assertIn("“empty.png”", caught.exception.message)
        self.assertNotIn("Desktop", caught.exception.message)


class CleanedImageTests(SimpleTestCase):
    def clean(self, data: bytes, name: str = "upload") -> CleanImage:
        return clean_image(data, name=name)

    def test_it_cleans_a_plain_png(self) -> None:
        data = encode(Image.new("RGB", (64, 48), (200, 60, 60)), "PNG")
        result = self.clean(data, "plain.png")
        self.assertEqual((result.width, result.height), (64, 48))
        self.assertEqual((result.content_type, result.extension), ("image/png", "png"))
        self.assertEqual(result.sha256, hashlib.sha256(data).hexdigest())
        self.assertEqual(result.original_byte_size, len(data))
        self.assertEqual(result.byte_size, len(result.content))
        self.assertEqual(reopen(result.content).getpixel((0, 0)), (200, 60, 60))

    def test_it_reads_the_content_not_the_extension(self) -> None:
        result = self.clean(encode(noise(), "JPEG"), "actually-a-jpeg.png")
        self.assertEqual(result.original_format, "JPEG")
        self.assertEqual(result.content_type, "image/jpeg")

    def test_it_accepts_an_uploaded_file_object(self) -> None:
        data = encode(Image.new("RGB", (20, 10), "white"), "PNG")
        result = clean_image(SimpleUploadedFile("a.png", data), name="a.png")
        self.assertEqual(result.sha256, hashlib.sha256(data).hexdigest())

    def test_it_converts_cmyk_to_rgb(self) -> None:
        data = encode(Image.new("CMYK", (40, 30), (0, 255, 255, 0)), "JPEG", quality=95)
        self.assertEqual(Image.open(io.BytesIO(data)).mode, "CMYK")
        result = self.clean(data, "print.jpg")
        image = reopen(result.content)
        self.assertEqual(image.mode, "RGB")
        red, green, blue = image.getpixel((20, 15))
        self.assertGreater(red, 230)
        self.assertLess(max(green, blue), 30)

    def test_it_scales_16_bit_greyscale_instead_of_clipping_it(self) -> None:
        data = encode(Image.new("I;16", (32, 32), 40000), "PNG")
        self.assertEqual(Image.open(io.BytesIO(data)).mode, "I;16")
        image = reopen(self.clean(data, "scan16.png").content)
        self.assertEqual(image.mode, "RGB")
        self.assertEqual(
            image.getpixel((0, 0)), (156, 156, 156)
        )  # 40000 / 256, not white

    def test_it_keeps_the_transparency_of_a_palette_png(self) -> None:
        palette_image = Image.new("P", (8, 8), 0)
        palette_image.putpalette([255, 0, 0, 0, 128, 255] + [0] * 762)
        palette_image.putpixel((1, 1), 1)
        data = encode(palette_image, "PNG", transparency=0)
        result = self.clean(data, "logo.png")
        self.assertTrue(result.has_alpha)
        self.assertEqual(result.content_type, "image/png")
        image = reopen(result.content)
        self.assertEqual(image.mode, "RGBA")
        self.assertEqual(image.getpixel((0, 0))[3], 0)
        self.assertEqual(image.getpixel((1, 1)), (0, 128, 255, 255))
        self.assertEqual(reopen(result.thumbnail).mode, "RGBA")

    def test_it_keeps_alpha_of_greyscale_with_alpha(self) -> None:
        result = self.clean(encode(Image.new("LA", (8, 8), (90, 128)), "PNG"))
        self.assertEqual(reopen(result.content).getpixel((0, 0)), (90, 90, 90, 128))

    def test_it_drops_an_alpha_channel_that_is_opaque_everywhere(self) -> None:
        result = self.clean(encode(Image.new("RGBA", (8, 8), (1, 2, 3, 255)), "PNG"))
        self.assertFalse(result.has_alpha)
        self.assertEqual(reopen(result.content).mode, "RGB")

    def test_it_converts_one_bit_images(self) -> None:
        result = self.clean(encode(Image.new("1", (8, 8), 1), "PNG"))
        self.assertEqual(reopen(result.content).getpixel((0, 0)), (255, 255, 255))

    def exif_photo(self, *, orientation: int = 1, gps: bool = False) -> bytes:
        exif = Image.Exif()
        exif[ExifTags.Base.Orientation] = orientation
        exif[ExifTags.Base.Make] = "PhoneCo"
        if gps:
            gps_ifd = exif.get_ifd(ExifTags.IFD.GPSInfo)
            gps_ifd[ExifTags.GPS.GPSLatitudeRef] = "N"
            gps_ifd[ExifTags.GPS.GPSLatitude] = (52.0, 22.0, 7.5)
            gps_ifd[ExifTags.GPS.GPSLongitudeRef] = "E"
            gps_ifd[ExifTags.GPS.GPSLongitude] = (4.0, 53.0, 41.0)
        image = Image.new("RGB", (60, 40), "white")
        image.paste(
            (255, 0, 0), (0, 0, 10, 10)
        )  # a red mark in the stored top-left corner
        return encode(image, "JPEG", quality=95, exif=exif.tobytes())

    def test_it_applies_exif_orientation_6(self) -> None:
        result = self.clean(self.exif_photo(orientation=6), "portrait.jpg")
        self.assertEqual(
            (result.width, result.height), (40, 60)
        )  # turned 90° clockwise
        image = reopen(result.content)
        self.assertEqual(image.size, (40, 60))
        red, green, blue = image.getpixel(
            (35, 4)
        )  # the stored top-left is now top-right
        self.assertGreater(red, 200)
        self.assertLess(max(green, blue), 60)
        self.assertNotIn(ExifTags.Base.Orientation, image.getexif())
        self.assertEqual((result.thumbnail_width, result.thumbnail_height), (40, 60))

    def test_it_strips_gps_and_all_other_exif(self) -> None:
        data = self.exif_photo(gps=True)
        self.assertTrue(
            Image.open(io.BytesIO(data)).getexif().get_ifd(ExifTags.IFD.GPSInfo)
        )  # the input has it
        result = self.clean(data, "holiday.jpg")
        image = reopen(result.content)
        self.assertEqual(dict(image.getexif()), {})
        self.assertNotIn("exif", image.info)
        self.assertNotIn(b"Exif", result.content)
        self.assertNotIn(b"PhoneCo", result.content)
        self.assertNotIn(b"Exif", result.thumbnail)

    def test_it_strips_xmp_comments_and_png_text(self) -> None:
        info = PngImagePlugin.PngInfo()
        info.add_text("Author", "Jane Secret")
        info.add_itxt("XML:com.adobe.xmp", "<x:xmpmeta>Jane Secret</x:xmpmeta>")
        result = self.clean(encode(Image.new("RGB", (8, 8)), "PNG", pnginfo=info))
        self.assertNotIn(b"Jane Secret", result.content)
        self.assertEqual(
            {k for k in reopen(result.content).info if k not in ("dpi",)}, set()
        )

        jpeg = encode(
            Image.new("RGB", (8, 8)),
            "JPEG",
            comment=b"Jane Secret",
            xmp=b"<x:xmpmeta>Jane Secret</x:xmpmeta>",
        )
        self.assertIn(b"Jane Secret", jpeg)
        self.assertNotIn(b"Jane Secret", self.clean(jpeg).content)

    def test_it_converts_an_icc_profile_to_srgb_and_drops_it(self) -> None:
        profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
        for fmt in ("PNG", "JPEG", "WEBP"):
            with self.subTest(fmt):
                picture = Image.new("RGB", (8, 8), (10, 120, 200))
                data = encode(picture, fmt, icc_profile=profile)
                self.assertIn("icc_profile", Image.open(io.BytesIO(data)).info)
                with mock.patch(
                    "campaigns.images.ImageCms.profileToProfile",
                    wraps=ImageCms.profileToProfile,
                ) as convert:
                    result = self.clean(data, f"wide-gamut.{fmt.lower()}")
                convert.assert_called_once()
                image = reopen(result.content)
                self.assertNotIn("icc_profile", image.info)
                self.assertNotIn("icc_profile", reopen(result.thumbnail).info)
                for got, want in zip(
                    image.getpixel((4, 4)), (10, 120, 200), strict=True
                ):
                    self.assertLessEqual(abs(got - want), 4)

    def test_a_damaged_icc_profile_is_ignored(self) -> None:
        data = encode(
            Image.new("RGB", (8, 8), (10, 120, 200)),
            "PNG",
            icc_profile=b"not a profile" * 8,
        )
        image = reopen(self.clean(data).content)
        self.assertNotIn("icc_profile", image.info)
        self.assertEqual(image.getpixel((0, 0)), (10, 120, 200))

    def test_lossy_sources_become_jpeg_and_lossless_ones_png(self) -> None:
        picture = Image.new("RGB", (16, 16), "orange")
        cases = {
            "JPEG": ({}, "image/jpeg"),
            "AVIF": ({}, "image/jpeg"),
            "WEBP": ({"quality": 80}, "image/jpeg"),
            "PNG": ({}, "image/png"),
            "GIF": ({}, "image/png"),
            "BMP": ({}, "image/png"),
            "TIFF": ({}, "image/png"),
        }
        for fmt, (params, content_type) in cases.items():
            with self.subTest(fmt):
                result = self.clean(encode(picture, fmt, **params))
                self.assertEqual(result.original_format, fmt)
                self.assertEqual(result.content_type, content_type)
        self.assertEqual(
            self.clean(encode(picture, "WEBP", lossless=True)).content_type, "image/png"
        )
        self.assertEqual(
            self.clean(
                encode(Image.new("RGBA", (8, 8), (0, 0, 0, 9)), "WEBP")
            ).content_type,
            "image/png",
        )

    def test_a_camera_mpo_keeps_its_first_image(self) -> None:
        first, second = (
            Image.new("RGB", (16, 16), "red"),
            Image.new("RGB", (16, 16), "blue"),
        )
        data = encode(first, "MPO", save_all=True, append_images=[second])
        result = self.clean(data, "camera.jpg")
        self.assertEqual(result.original_format, "MPO")
        self.assertGreater(reopen(result.content).getpixel((8, 8))[0], 200)

    def test_a_still_gif_is_accepted(self) -> None:
        result = self.clean(
            encode(Image.new("RGB", (16, 16), "blue"), "GIF"), "still.gif"
        )
        self.assertEqual(reopen(result.content).mode, "RGB")

    def test_the_thumbnail_is_webp_at_most_480_px_and_never_upscaled(self) -> None:
        large = self.clean(encode(Image.new("RGB", (1200, 600), "teal"), "PNG"))
        thumbnail = reopen(large.thumbnail)
        self.assertEqual(thumbnail.format, "WEBP")
        self.assertEqual(thumbnail.size, (THUMBNAIL_SIZE, 240))
        self.assertEqual(
            (large.thumbnail_width, large.thumbnail_height), (THUMBNAIL_SIZE, 240)
        )
        small = self.clean(encode(Image.new("RGB", (100, 50), "teal"), "PNG"))
        self.assertEqual(reopen(small.thumbnail).size, (100, 50))
