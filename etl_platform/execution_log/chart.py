"""Line charts drawn straight to PNG with Pillow: panels of series over time sharing one time axis, some points
ringed in red. The platform-health chart is its one user; matplotlib drew it before and cost ~0.75 s of every
``ops/pipeline_health`` run (its import and its renderer) for what is a handful of lines."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

# matplotlib's "tab10": ten colours told apart easily, also by most colour-blind readers.
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf")
RING = (255, 0, 0)  # pure red: no series colour is
SCALE = 2  # drawn at twice the size and scaled down: smooth lines and text without an anti-aliasing renderer
WIDTH, HEIGHT = 990, 630
LEFT, RIGHT, TOP, BOTTOM, GAP = 90, 20, 40, 70, 24


@dataclass
class Series:
    """One line: ``points`` are (time, value); the indexes in ``ringed`` are marked with a red ring."""

    name: str
    points: list[tuple[datetime, float]]
    ringed: set[int] = field(default_factory=set)


@dataclass
class Panel:
    label: str
    series: list[Series]


def nice_ticks(high: float, count: int = 5) -> list[float]:
    """Ticks from 0 to at least ``high`` at a step of 1, 2 or 5 times a power of ten."""
    if high <= 0 or not math.isfinite(high):
        return [0.0, 1.0]
    raw = high / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    return [i * step for i in range(int(math.ceil(high / step - 1e-9)) + 1)]


def _number(value: float) -> str:
    if value and abs(value) >= 1_000_000:
        return f"{value / 1_000_000:g}M"
    if value and abs(value) >= 10_000:
        return f"{value / 1_000:g}k"
    return f"{value:g}"


def _epoch(moment: datetime) -> float:
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()


TICK_FORMATS = ("%Y-%m-%d", "%Y-%m-%d %H:%M", "%m-%d %H:%M:%S")  # coarse to fine


def time_ticks(start: float, end: float, count: int = 6) -> list[tuple[float, str]]:
    """``count`` evenly spaced times, labelled as coarsely as keeps every label different (a date; the time of day
    when runs are hours apart; seconds when they are minutes apart): no two ticks read the same."""
    moments = [start + (end - start) * i / (count - 1) for i in range(count)]
    for form in TICK_FORMATS:
        labels = [datetime.fromtimestamp(moment, timezone.utc).strftime(form) for moment in moments]
        if len(set(labels)) == len(labels):
            break
    return list(zip(moments, labels))


def _vertical_text(image, text: str, centre: tuple[int, int], font) -> None:
    """``text`` read bottom to top, centred on ``centre`` (an axis label)."""
    from PIL import Image, ImageDraw

    left, top, right, bottom = font.getbbox(text)
    label = Image.new("RGB", (right - left + 4, bottom - top + 4), "white")
    ImageDraw.Draw(label).text((2 - left, 2 - top), text, fill="black", font=font)
    label = label.rotate(90, expand=True)
    image.paste(label, (centre[0] - label.width // 2, centre[1] - label.height // 2))


def draw(panels: list[Panel], title: str, path: Path) -> Path:
    """The panels stacked, one time axis for all, legend of the first panel's series; written to ``path`` (PNG)."""
    from PIL import Image, ImageDraw, ImageFont

    s = SCALE
    image = Image.new("RGB", (WIDTH * s, HEIGHT * s), "white")
    pen = ImageDraw.Draw(image)
    font, small = ImageFont.load_default(size=13 * s), ImageFont.load_default(size=11 * s)
    moments = [_epoch(t) for panel in panels for line in panel.series for t, _ in line.points]
    start, end = (min(moments), max(moments)) if moments else (0.0, 1.0)
    if end - start < 60:
        start, end = start - 1800, end + 1800
    margin = (end - start) * 0.03
    start, end = start - margin, end + margin
    height = (HEIGHT - TOP - BOTTOM - GAP * (len(panels) - 1)) / len(panels)
    x0, x1 = LEFT * s, (WIDTH - RIGHT) * s

    def x_of(moment: float) -> float:
        return x0 + (moment - start) / (end - start) * (x1 - x0)

    pen.text(((LEFT + (WIDTH - LEFT - RIGHT) / 2) * s, TOP * s / 2), title, fill="black", font=font, anchor="mm")
    for number, panel in enumerate(panels):
        y0 = (TOP + number * (height + GAP)) * s
        y1 = y0 + height * s
        values = [v for line in panel.series for _, v in line.points]
        ticks = nice_ticks(max(values, default=0.0))
        top_value = ticks[-1] or 1.0

        def y_of(value: float) -> float:
            return y1 - value / top_value * (y1 - y0)

        for tick in ticks:
            pen.line([(x0, y_of(tick)), (x1, y_of(tick))], fill=(225, 225, 225), width=s)
            pen.text((x0 - 6 * s, y_of(tick)), _number(tick), fill="black", font=small, anchor="rm")
        for moment, _ in time_ticks(start + margin, end - margin):
            pen.line([(x_of(moment), y0), (x_of(moment), y1)], fill=(240, 240, 240), width=s)
        pen.rectangle([x0, y0, x1, y1], outline="black", width=s)
        _vertical_text(image, panel.label, (LEFT * s // 4, int(y0 + y1) // 2), font)
        for index, line in enumerate(panel.series):
            colour = COLOURS[index % len(COLOURS)]
            xy = [(x_of(_epoch(t)), y_of(v)) for t, v in line.points]
            if len(xy) > 1:
                pen.line(xy, fill=colour, width=2 * s, joint="curve")
            for cx, cy in xy:
                pen.ellipse([cx - 3 * s, cy - 3 * s, cx + 3 * s, cy + 3 * s], fill=colour)
            for point in sorted(line.ringed):
                cx, cy = xy[point]
                pen.ellipse([cx - 9 * s, cy - 9 * s, cx + 9 * s, cy + 9 * s], outline=RING, width=2 * s)
        if number == 0:
            for index, line in enumerate(panel.series):
                ly = y0 + (12 + 16 * index) * s
                pen.line([(x0 + 10 * s, ly), (x0 + 30 * s, ly)], fill=COLOURS[index % len(COLOURS)], width=2 * s)
                pen.text((x0 + 36 * s, ly), line.name, fill="black", font=small, anchor="lm")
        if number == len(panels) - 1:
            for moment, label in time_ticks(start + margin, end - margin):
                pen.text((x_of(moment), y1 + 8 * s), label, fill="black", font=small, anchor="ma")
    path.parent.mkdir(parents=True, exist_ok=True)
    image.resize((WIDTH, HEIGHT), Image.Resampling.LANCZOS).save(path, format="PNG", optimize=False)
    return path
