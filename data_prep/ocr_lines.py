"""``neko prepare ocr-lines``: OCR n-best records from sentences rendered as degraded images and read by Tesseract.

    neko prepare ocr-lines --n 500 --severity 2 --split train

Each sentence is rendered ``--renderings`` times (font, size, rotation, blur, noise and JPEG quality drawn from
a generator seeded by the line id, ranges set by ``--severity``); Tesseract (tesserocr, single-line mode) reads
each image. The distinct readings, best first by Tesseract's mean word confidence, form the n-best list:
Tesseract's own per-symbol alternatives carry no confidences. Resumable like ``asr-nbest``.
"""

from __future__ import annotations

import argparse
import io
import os
from dataclasses import asdict
from functools import lru_cache
from pathlib import Path

import numpy as np

from data_prep.asr_nbest import utterance_seed
from data_prep.resumable import append_results, finalize_records, read_partial
from neko.records import Record

HELP = "generate OCR n-best records: render degraded text lines -> Tesseract (tesserocr)"
FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/truetype/liberation"))
TESSDATA_DIRS = (Path("/usr/share/tesseract-ocr/5/tessdata"), Path("/usr/share/tesseract-ocr/4.00/tessdata"))
# severity -> (font px range, max rotation degrees, max blur radius, noise std range, JPEG quality range)
SEVERITY = {
    0: ((28, 40), 0.0, 0.0, (0.0, 0.0), (90, 95)),
    1: ((20, 32), 0.7, 0.8, (0.0, 12.0), (40, 90)),
    2: ((12, 20), 1.8, 1.5, (12.0, 38.0), (10, 45)),
    3: ((11, 18), 2.5, 1.8, (20.0, 45.0), (8, 30)),
}


def font_files() -> list[Path]:
    """Regular, bold and italic Latin text faces from the Debian DejaVu and Liberation packages, sorted."""
    fonts = [p for d in FONT_DIRS if d.is_dir() for p in sorted(d.glob("*.ttf"))]
    return [p for p in fonts if "Math" not in p.name and "ExtraLight" not in p.name]


def tessdata_dir() -> Path:
    """The Debian tessdata folder holding ``eng.traineddata``."""
    for path in TESSDATA_DIRS:
        if (path / "eng.traineddata").exists():
            return path
    raise FileNotFoundError(
        "eng.traineddata not found: apt-get install tesseract-ocr-eng (see make install-data)"
    )


def render_line(text: str, severity: int, rng: np.random.Generator, fonts: list[Path]):
    """A grayscale PIL image of ``text`` degraded at ``severity``, and the parameters drawn."""
    from PIL import Image, ImageDraw, ImageFilter, ImageFont

    sizes, max_rot, max_blur, noise_range, quality_range = SEVERITY[severity]
    font_path = fonts[int(rng.integers(len(fonts)))]
    size = int(rng.integers(sizes[0], sizes[1] + 1))
    font = ImageFont.truetype(str(font_path), size)
    left, top, right, bottom = font.getbbox(text)
    pad = size // 2 + 4
    ink, paper = int(rng.integers(0, 60)), int(rng.integers(200, 256))
    image = Image.new("L", (right - left + 2 * pad, bottom - top + 2 * pad), paper)
    ImageDraw.Draw(image).text((pad - left, pad - top), text, fill=ink, font=font)
    angle = float(rng.uniform(-max_rot, max_rot))
    if angle:
        image = image.rotate(angle, resample=Image.BICUBIC, expand=True, fillcolor=paper)
    blur = float(rng.uniform(0, max_blur))
    if blur > 0.05:
        image = image.filter(ImageFilter.GaussianBlur(blur))
    noise = float(rng.uniform(*noise_range))
    if noise > 0:
        pixels = np.asarray(image, dtype=np.float32) + rng.normal(0, noise, (image.height, image.width))
        image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    quality = int(rng.integers(quality_range[0], quality_range[1] + 1))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    image = Image.open(io.BytesIO(buffer.getvalue())).convert("L")
    params = {
        "font": font_path.stem,
        "size": size,
        "angle": round(angle, 2),
        "blur": round(blur, 2),
        "noise": round(noise, 1),
        "jpeg": quality,
    }
    return image, params


@lru_cache(maxsize=1)
def _api():
    os.environ["OMP_THREAD_LIMIT"] = "1"  # Tesseract's OpenMP would take every core of the shared machine
    import tesserocr

    return tesserocr.PyTessBaseAPI(path=str(tessdata_dir()), lang="eng", psm=tesserocr.PSM.SINGLE_LINE)


def read_line(image) -> tuple[str, float]:
    """Tesseract's reading of one line image (whitespace collapsed) and its mean word confidence (0-100)."""
    api = _api()
    api.SetImage(image)
    return " ".join(api.GetUTF8Text().split()), float(api.MeanTextConf())


def ocr_nbest(readings: list[tuple[str, float]], keep: int = 5) -> tuple[list[str], list[float]]:
    """Distinct non-empty readings, best first by confidence (the best confidence of each text), at most ``keep``."""
    best: dict[str, float] = {}
    for text, conf in readings:
        if text and conf > best.get(text, -1.0):
            best[text] = conf
    ranked = sorted(best.items(), key=lambda kv: -kv[1])[:keep]
    return [t for t, _ in ranked], [round(c / 100.0, 4) for _, c in ranked]


def ocr_record(uid: str, text: str, source: str, severity: int, renderings: int, split: str) -> dict:
    """Render ``text`` ``renderings`` times, read each, and return the record (or a skip line) as a dict."""
    rng = np.random.default_rng(utterance_seed(uid))
    fonts = font_files()
    readings, params = [], []
    for _ in range(renderings):
        image, p = render_line(text, severity, rng, fonts)
        readings.append(read_line(image))
        params.append(p)
    hyps, scores = ocr_nbest(readings)
    if not hyps:
        return {"id": uid, "skipped": "no reading"}
    record = Record(
        id=uid,
        task="ocr",
        dataset=f"ocr_tesseract_s{severity}",
        hypotheses=hyps,
        scores=scores,
        references=[text],
        meta={
            "engine": "tesseract",
            "severity": severity,
            "renderings": params,
            "text_source": source,
            "split": split,
        },
    )
    return asdict(record)


def prepare_ocr(
    pool: list,
    out: Path,
    *,
    severity: int = 2,
    split: str = "train",
    n: int = 100,
    renderings: int = 4,
    progress: bool = True,
) -> dict:
    """Generate (or finish) ``n`` OCR records at ``severity``; returns counts. One process (Tesseract is fast)."""
    from tqdm import tqdm

    from data_prep.text_sources import sentences_for

    if severity not in SEVERITY:
        from neko.errors import unknown_choice

        raise unknown_choice("severity", str(severity), [str(s) for s in SEVERITY])
    dataset = f"ocr_tesseract_s{severity}"
    plan = [(f"s{severity}-{split}-{i:06d}", s) for i, s in enumerate(sentences_for(pool, split, dataset, n))]
    part = out / "parts" / f"{dataset}.{split}.partial.jsonl"
    done = read_partial(part)
    todo = [(uid, s) for uid, s in plan if uid not in done]
    results = (
        [ocr_record(uid, s.text, s.source, severity, renderings, split)]
        for uid, s in tqdm(todo, desc=dataset, disable=not progress, mininterval=10)
    )
    for _, line in append_results({dataset: part}, results, key=lambda line: dataset):
        done[line["id"]] = line
    records, skipped = finalize_records([uid for uid, _ in plan], done, out / f"{dataset}.{split}.jsonl")
    return {"dataset": dataset, "records": len(records), "skipped": skipped, "planned": len(plan)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags: --n, --severity, --renderings, --split, --out, --data, --seed."""
    parser.add_argument("--n", type=int, default=100, help="lines to have at this severity and split")
    parser.add_argument("--severity", type=int, default=2, help="degradation level 0 (clean) to 3 (hard)")
    parser.add_argument(
        "--renderings", type=int, default=4, help="degraded renderings per line (n-best size)"
    )
    parser.add_argument("--split", default="train", choices=["train", "dev"])
    parser.add_argument("--out", type=Path, default=None, help="default: ~/.cache/neko/generated")
    parser.add_argument(
        "--data", default=None, help="shared data folder (default $NEKO_DATA or ../shared/data)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the sentence pool shuffle")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Build the text pool, generate, print a summary line."""
    from data_prep.text_sources import default_pool
    from neko.paths import cache_dir, data_dir

    out = Path(args.out or cache_dir("generated"))
    pool, stats = default_pool(data_dir(args.data), seed=args.seed)
    print(f"text pool: {len(pool)} sentences, {stats.blocked} HyPoradise test references blocked")
    info = prepare_ocr(
        pool,
        out,
        severity=args.severity,
        split=args.split,
        n=args.n,
        renderings=args.renderings,
        progress=not args.quiet,
    )
    print(
        f"{info['dataset']}.{args.split}: {info['records']} records of {info['planned']} planned, "
        f"{len(info['skipped'])} skipped (no reading) -> {out}"
    )
    return 0
