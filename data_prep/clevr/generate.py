"""CLEVR-style image pairs: `generate_pair(seed, index, **options) -> PairSample`.

    from data_prep.clevr import generate_pair
    sample = generate_pair(seed=0, index=7)                      # 320x240, 4-6 objects
    sample = generate_pair(0, 7, layout="grid", width=48, height=48, cell_size=16)

The spy image keeps every object in place and changes `num_changes` of them (colour and shape
by default). Differences from CLEVR: a numpy ray caster instead of Blender (backend="blender"
renders the same scene with Cycles), a fixed camera, no shadows cast on other objects, and no
relationship-margin rule. Each change box covers the object in both images and the part of
its shadow that moved, so pixels outside the union of change boxes are identical.
"""

from __future__ import annotations

import numpy as np

from data_prep.clevr.options import ClevrOptions
from data_prep.clevr.raycast import Coverage, rasterize
from data_prep.clevr.render import render
from data_prep.clevr.scene import SceneObject, apply_changes, sample_scene
from data_prep.clevr.shadows import floor_change_box
from data_prep.clevr.stage import Stage, free_stage, grid_stage, half_height, project
from data_prep.imaging import encode_png, pair_key, pair_rng, union_box
from vzero_nemo.data.schema import Change, PairSample, Truth

DOMAIN = "clevr"
VERSION = 1
MAX_ATTEMPTS = 200
MIN_VISIBLE_AREA = 0.001  # of the image, per object

KIND_WORDS = {"color": "recolor", "shape": "reshape", "material": "rematerial", "size": "resize"}


def stage_for(opts: ClevrOptions) -> Stage:
    if opts.layout == "grid":
        return grid_stage(opts.width, opts.height, opts.cell_size)
    return free_stage(opts.width, opts.height)


def _all_visible(cov: Coverage, opts: ClevrOptions) -> bool:
    visible = cov.visible_px()
    floor_px = MIN_VISIBLE_AREA * opts.width * opts.height
    frac_ok = visible >= opts.min_visible_fraction * cov.silhouette_px
    return bool(np.all(frac_ok & (visible >= floor_px) & (cov.silhouette_px > 0)))


def scene_graph(stage: Stage, scene: list[SceneObject], cov: Coverage, opts: ClevrOptions) -> dict:
    visible = cov.visible_px()
    objects = []
    for k, obj in enumerate(scene):
        z = half_height(obj.shape, obj.radius)
        cx, cy = project(stage, np.array([[obj.x, obj.y, z]]))[0]
        objects.append(
            {
                "id": obj.id,
                "shape": obj.shape,
                "color": obj.color,
                "material": obj.material,
                "size": obj.size,
                "center": [round(float(cx), 1), round(float(cy), 1)],
                "box": list(cov.silhouette_boxes[k]),
                "cell": list(obj.cell) if obj.cell is not None else None,
                "position_3d": [round(obj.x, 3), round(obj.y, 3), round(z, 3)],
                "rotation": round(obj.rotation_deg, 1),
                "visible_fraction": round(float(visible[k] / cov.silhouette_px[k]), 3),
            }
        )
    return {"width": opts.width, "height": opts.height, "layout": opts.layout, "objects": objects}


def sample_pair_scenes(
    seed: int, index: int, opts: ClevrOptions
) -> tuple[list[SceneObject], list[SceneObject], list[int], Coverage, Coverage]:
    """Draw an (original, modified) scene pair where every object is visible in both."""
    rng = pair_rng(DOMAIN, seed, index)
    stage = stage_for(opts)
    ss = opts.supersample
    for _ in range(MAX_ATTEMPTS):
        scene = sample_scene(rng, stage, opts)
        if scene is None:
            continue
        cov0 = rasterize(stage, [o.body() for o in scene], ss)
        if not _all_visible(cov0, opts):
            continue
        edit = apply_changes(rng, stage, scene, opts)
        if edit is None:
            continue
        modified, targets = edit
        cov1 = rasterize(stage, [o.body() for o in modified], ss)
        if _all_visible(cov1, opts):
            return scene, modified, targets, cov0, cov1
    raise RuntimeError(
        f"no valid CLEVR scene after {MAX_ATTEMPTS} draws for seed={seed} index={index} with "
        f"{opts}; lower max_objects or min_visible_fraction, or enlarge the image"
    )


def _changes(
    stage: Stage,
    scene: list[SceneObject],
    modified: list[SceneObject],
    targets: list[int],
    cov0: Coverage,
    cov1: Coverage,
    opts: ClevrOptions,
) -> tuple[Change, ...]:
    kind = "_".join(KIND_WORDS[a] for a in opts.change_attributes)
    out = []
    for k in targets:
        boxes = [cov0.silhouette_boxes[k], cov1.silhouette_boxes[k]]
        if opts.shadows:
            floor_box = floor_change_box(stage, scene[k].body(), modified[k].body())
            if floor_box is not None:
                boxes.append(floor_box)
        before = {a: getattr(scene[k], a) for a in opts.change_attributes}
        after = {a: getattr(modified[k], a) for a in opts.change_attributes}
        out.append(Change(kind, union_box(boxes), before, after, target=scene[k].id))
    return tuple(out)


def generate_pair(seed: int, index: int, **options) -> PairSample:
    """One CLEVR-style pair; a pure function of (seed, index, options)."""
    opts = ClevrOptions(**options)
    if opts.backend == "blender":
        from data_prep.clevr.blender import require_blender

        require_blender()
    stage = stage_for(opts)
    scene, modified, targets, cov0, cov1 = sample_pair_scenes(seed, index, opts)
    graph0 = scene_graph(stage, scene, cov0, opts)
    graph1 = scene_graph(stage, modified, cov1, opts)
    if opts.backend == "blender":
        from data_prep.clevr.blender import render_pair_png

        png0, png1 = render_pair_png(scene, modified, stage, opts)
    else:
        ss = opts.supersample
        img0 = render(stage, [o.body() for o in scene], ss, opts.shadows, raster=cov0)
        img1 = render(stage, [o.body() for o in modified], ss, opts.shadows, raster=cov1)
        png0 = encode_png(img0.rgb_HW3, opts.png_compress_level)
        png1 = encode_png(img1.rgb_HW3, opts.png_compress_level)
    truth = Truth(
        domain=DOMAIN,
        original=graph0,
        modified=graph1,
        changes=_changes(stage, scene, modified, targets, cov0, cov1, opts),
        seed=seed,
        generator=f"clevr-{opts.backend}@{VERSION}",
    )
    return PairSample(pair_key(DOMAIN, seed, index), png0, png1, truth)
