"""Channel formats: the output sizes each marketing channel needs.

Brands pick their default formats from this list, campaigns name their channels with these keys,
batches offer them as output sizes, and export packs (later) render to them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ChannelFormat:
    key: str
    label: str
    width: int
    height: int

    @property
    def aspect(self) -> str:
        from math import gcd

        d = gcd(self.width, self.height)
        return f"{self.width // d}:{self.height // d}"


CHANNEL_FORMATS: tuple[ChannelFormat, ...] = (
    ChannelFormat("instagram-square", "Instagram feed, square", 1080, 1080),
    ChannelFormat("instagram-portrait", "Instagram feed, portrait", 1080, 1350),
    ChannelFormat("instagram-story", "Instagram / Facebook story, Reels", 1080, 1920),
    ChannelFormat("tiktok", "TikTok", 1080, 1920),
    ChannelFormat("facebook-feed", "Facebook feed link", 1200, 628),
    ChannelFormat("linkedin-post", "LinkedIn post", 1200, 627),
    ChannelFormat("x-post", "X post", 1600, 900),
    ChannelFormat("pinterest-pin", "Pinterest pin", 1000, 1500),
    ChannelFormat("youtube-thumbnail", "YouTube thumbnail", 1280, 720),
    ChannelFormat("web-hero", "Website hero", 1920, 1080),
    ChannelFormat("email-header", "Email header", 1200, 600),
    ChannelFormat("display-mrec", "Display ad, medium rectangle", 300, 250),
    ChannelFormat("display-leaderboard", "Display ad, leaderboard", 728, 90),
    ChannelFormat("ecommerce-square", "E-commerce product, square", 2000, 2000),
)
CHANNELS_BY_KEY = {channel.key: channel for channel in CHANNEL_FORMATS}
CHANNEL_CHOICES = [
    (channel.key, f"{channel.label} ({channel.width}×{channel.height})")
    for channel in CHANNEL_FORMATS
]
