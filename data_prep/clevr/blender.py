"""Optional Blender (Cycles, CPU) backend for CLEVR-style pairs.

    generate_pair(0, 7, backend="blender", blender_samples=64)

Scenes, boxes and visibility come from the numpy ray caster (same camera, same geometry);
only the pixels come from Blender. Needs a `blender` executable on PATH (Debian: `apt-get
install blender`); ~2-6 s per image at 320x240 on two cores, so use it for small
high-fidelity sets and comparisons, not for training-scale data.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np
from PIL import Image

from data_prep.clevr.options import ClevrOptions
from data_prep.clevr.render import COLOR_RGB
from data_prep.clevr.scene import SceneObject
from data_prep.clevr.stage import Stage, half_height
from data_prep.imaging import encode_png

SCRIPT = Path(__file__).with_name("blender_scene.py")
TIMEOUT_S = 600


def require_blender() -> str:
    """Path of the blender executable; RuntimeError naming the fix when there is none."""
    exe = shutil.which("blender")
    if exe is None:
        raise RuntimeError(
            "blender backend requested but no `blender` executable on PATH; install Debian's "
            "blender or use backend=pillow"
        )
    return exe


def _objects(scene: list[SceneObject]) -> list[dict]:
    out = []
    for obj in scene:
        d = asdict(obj)
        d["half_height"] = half_height(obj.shape, obj.radius)
        out.append(d)
    return out


def render_pair_png(
    scene0: list[SceneObject], scene1: list[SceneObject], stage: Stage, opts: ClevrOptions
) -> tuple[bytes, bytes]:
    """PNG bytes of both scenes rendered by Blender in one process."""
    exe = require_blender()
    with tempfile.TemporaryDirectory(prefix="clevr-blender-") as tmp:
        tmp_path = Path(tmp)
        outs = [tmp_path / "original.png", tmp_path / "modified.png"]
        job = {
            "stage": asdict(stage),
            "samples": opts.blender_samples,
            "colors": COLOR_RGB,
            "scenes": [
                {"out": str(out), "objects": _objects(scene)}
                for out, scene in zip(outs, (scene0, scene1), strict=True)
            ],
        }
        (tmp_path / "job.json").write_text(json.dumps(job))
        cmd = [
            exe,
            "-b",
            "--factory-startup",
            "-noaudio",
            "--python-exit-code",
            "1",
            "-P",
            str(SCRIPT),
            "--",
            str(tmp_path / "job.json"),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S)
        if proc.returncode != 0 or not all(out.exists() for out in outs):
            raise RuntimeError(
                f"blender failed (exit {proc.returncode}):\n{proc.stdout[-2000:]}\n"
                f"{proc.stderr[-2000:]}"
            )
        pngs = []
        for out in outs:
            with Image.open(out) as img:
                rgb = np.asarray(img.convert("RGB"))
            pngs.append(encode_png(rgb, opts.png_compress_level))
    return pngs[0], pngs[1]
