"""Draw the integration's brand images into custom_components/energy_telemetry/brand/.

Since Home Assistant 2026.3 a custom integration ships its own icon and logo there (HACS checks
for brand/icon.png): icon.png 256x256, icon@2x.png 512x512, logo.png (landscape, 128 high),
logo@2x.png, and dark_ variants where they differ. The icon, a lightning bolt over a telemetry
wave in a rounded square, reads on light and dark backgrounds alike, so only the logo (whose
wordmark is dark text) has dark_ variants.

Everything is drawn with Pillow at four times the size and scaled down, so the same Pillow and
font give byte-identical files. The wordmark uses DejaVu Sans Bold (Debian: fonts-dejavu-core).

Usage: scripts/brand [--out DIR] [--check]
  --out DIR   write there instead of the integration's brand/ folder
  --check     write nothing; exit 1 if the committed images differ from what would be drawn
"""

from __future__ import annotations

import argparse
import io
import math
import os
from pathlib import Path
import sys
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BRAND = ROOT / "custom_components" / "energy_telemetry" / "brand"
FONT_CANDIDATES = (
    Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"),
    Path("/usr/share/fonts/dejavu/DejaVuSans-Bold.ttf"),
)
WORDMARK = "Energy Telemetry"
SUPERSAMPLE = 4

# Colours (RGB)
TEAL = (20, 184, 166)
BLUE = (15, 76, 129)
BOLT = (250, 204, 21)
BOLT_EDGE = (120, 53, 15)
WAVE = (255, 255, 255)
TEXT_LIGHT_BG = (31, 41, 55)  # on light backgrounds
TEXT_DARK_BG = (243, 244, 246)  # on dark backgrounds


def _reexec_with_pillow() -> None:
    """Pillow is in Home Assistant's virtual environment: use it when this Python lacks it."""
    try:
        import PIL  # noqa: F401
    except ImportError:
        venv_python = ROOT / ".venv" / "bin" / "python"
        if venv_python.is_file() and Path(sys.executable).resolve() != venv_python.resolve():
            os.execv(str(venv_python), [str(venv_python), __file__, *sys.argv[1:]])  # noqa: S606
        sys.exit("scripts/brand: Pillow is needed (scripts/test creates .venv, which has it)")


def _font_path() -> Path:
    for candidate in FONT_CANDIDATES:
        if candidate.is_file():
            return candidate
    sys.exit(
        "scripts/brand: DejaVu Sans Bold not found; install it with "
        "'apt-get install fonts-dejavu-core' (only needed to draw the images)"
    )


def draw_icon(size: int) -> Any:
    """The icon: rounded square with a diagonal teal-to-blue gradient, wave and bolt."""
    from PIL import Image, ImageDraw

    big = size * SUPERSAMPLE
    # Diagonal gradient, teal at the top left to blue at the bottom right.
    diagonal = Image.new("L", (256, 256))
    diagonal.putdata([round((x + y) * 255 / 510) for y in range(256) for x in range(256)])
    diagonal = diagonal.resize((big, big), Image.Resampling.BILINEAR)
    background = Image.composite(
        Image.new("RGB", (big, big), BLUE), Image.new("RGB", (big, big), TEAL), diagonal
    )
    mask = Image.new("L", (big, big), 0)
    ImageDraw.Draw(mask).rounded_rectangle(
        (0, 0, big - 1, big - 1), radius=round(big * 0.22), fill=255
    )
    icon = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    icon.paste(background, (0, 0), mask)

    draw = ImageDraw.Draw(icon)
    # Telemetry wave: two periods of a sine across the middle, passing behind the bolt.
    left, right = big * 0.13, big * 0.87
    points = [
        (
            left + (right - left) * step / 400,
            big * 0.52 - big * 0.085 * math.sin(4 * math.pi * step / 400),
        )
        for step in range(401)
    ]
    # Stamped as overlapping discs: a smooth stroke, where a polyline of short segments frays.
    r = big * 0.025
    for x, y in points:
        draw.ellipse((x - r, y - r, x + r, y + r), fill=(*WAVE, 255))

    # Lightning bolt, centred, with a dark edge so it stays crisp on the wave.
    bolt = [
        (0.60, 0.08),
        (0.24, 0.57),
        (0.46, 0.57),
        (0.38, 0.92),
        (0.76, 0.41),
        (0.54, 0.41),
    ]
    polygon = [(x * big, y * big) for x, y in bolt]
    draw.polygon(polygon, fill=(*BOLT, 255), outline=(*BOLT_EDGE, 255), width=round(big * 0.016))
    return icon.resize((size, size), Image.Resampling.LANCZOS)


def draw_logo(height: int, text_colour: tuple[int, int, int]) -> Any:
    """The logo: the icon, then the wordmark, on a transparent background, trimmed."""
    from PIL import Image, ImageDraw, ImageFont

    big = height * SUPERSAMPLE
    font = ImageFont.truetype(str(_font_path()), size=round(big * 0.40))
    gap = round(big * 0.18)
    left, _top, right, _bottom = font.getbbox(WORDMARK)
    text_width = right - left
    width = big + gap + text_width
    canvas = Image.new("RGBA", (width, big), (0, 0, 0, 0))
    canvas.alpha_composite(draw_icon(big))  # drawn at full size; no second supersampling needed
    draw = ImageDraw.Draw(canvas)
    # Centre the capitals (not the descenders) on the icon's middle.
    cap_top, cap_bottom = font.getbbox("E")[1], font.getbbox("E")[3]
    y = (big - (cap_bottom - cap_top)) / 2 - cap_top
    draw.text((big + gap - left, y), WORDMARK, font=font, fill=(*text_colour, 255))
    logo = canvas.resize(
        (round(width / SUPERSAMPLE), height), Image.Resampling.LANCZOS, reducing_gap=3.0
    )
    bbox = logo.getchannel("A").getbbox()
    return logo.crop((bbox[0], 0, bbox[2], height)) if bbox else logo


def images() -> dict[str, Any]:
    """Every brand image by file name."""
    return {
        "icon.png": draw_icon(256),
        "icon@2x.png": draw_icon(512),
        "logo.png": draw_logo(128, TEXT_LIGHT_BG),
        "logo@2x.png": draw_logo(256, TEXT_LIGHT_BG),
        "dark_logo.png": draw_logo(128, TEXT_DARK_BG),
        "dark_logo@2x.png": draw_logo(256, TEXT_DARK_BG),
    }


def encode(image: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/brand", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument(
        "--out", type=Path, default=BRAND, help="folder to write (default: %(default)s)"
    )
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if the images in --out differ; write nothing"
    )
    args = parser.parse_args()
    _reexec_with_pillow()
    drawn = {name: encode(image) for name, image in images().items()}
    if args.check:
        stale = [
            name
            for name, data in drawn.items()
            if not (args.out / name).is_file() or (args.out / name).read_bytes() != data
        ]
        for name in stale:
            print(f"scripts/brand: {args.out / name} differs from what scripts/brand draws")
        return 1 if stale else 0
    args.out.mkdir(parents=True, exist_ok=True)
    for name, data in drawn.items():
        (args.out / name).write_bytes(data)
        print(f"{args.out / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
