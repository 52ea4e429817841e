"""Blender-side script: build one CLEVR-style scene per JSON entry and render it with Cycles.

Run by `data_prep.clevr.blender` (not imported by the package):

    blender -b --factory-startup -noaudio --python-exit-code 1 \
        -P data_prep/clevr/blender_scene.py -- job.json

job.json holds {"stage": {...}, "samples": N, "scenes": [{"out": path, "objects": [...]}]},
with the camera, key light and object geometry exactly as the numpy renderer uses them, so
boxes computed there hold for these images too.
"""

import json
import math
import sys

import bpy  # provided by Blender
from mathutils import Matrix, Vector


def _srgb_to_linear(c):
    return tuple(((v / 255.0) ** 2.2) for v in c) + (1.0,)


def _material(name, rgb, metal):
    mat = bpy.data.materials.new(name)
    mat.use_nodes = True
    bsdf = mat.node_tree.nodes["Principled BSDF"]
    bsdf.inputs["Base Color"].default_value = _srgb_to_linear(rgb)
    bsdf.inputs["Metallic"].default_value = 1.0 if metal else 0.0
    bsdf.inputs["Roughness"].default_value = 0.22 if metal else 0.65
    return mat


def _camera(stage):
    cam_data = bpy.data.cameras.new("camera")
    cam_data.sensor_fit = "HORIZONTAL"
    if stage["tan_half_fov"] > 0:
        cam_data.sensor_width = 32.0
        cam_data.lens = 16.0 / stage["tan_half_fov"]
    else:
        cam_data.type = "ORTHO"
        cam_data.ortho_scale = 2.0 * stage["ortho_half_width"]
    cam = bpy.data.objects.new("camera", cam_data)
    right, up, fwd = (Vector(stage[k]) for k in ("right", "up", "forward"))
    rot = Matrix((right, up, -fwd)).transposed()  # Blender cameras look down local -Z
    cam.matrix_world = Matrix.Translation(Vector(stage["position"])) @ rot.to_4x4()
    bpy.context.scene.collection.objects.link(cam)
    bpy.context.scene.camera = cam


def _lights(stage):
    key = bpy.data.lights.new("key", type="AREA")
    key.energy = 900.0
    key.size = 2.0
    key_obj = bpy.data.objects.new("key", key)
    key_obj.location = Vector(stage["light"])
    key_obj.rotation_euler = (-Vector(stage["light"])).to_track_quat("-Z", "Y").to_euler()
    bpy.context.scene.collection.objects.link(key_obj)
    world = bpy.data.worlds.new("world")
    world.use_nodes = True
    world.node_tree.nodes["Background"].inputs["Color"].default_value = (0.5, 0.5, 0.5, 1.0)
    world.node_tree.nodes["Background"].inputs["Strength"].default_value = 0.45
    bpy.context.scene.world = world


def _add_object(obj, materials):
    r, hz = obj["radius"], obj["half_height"]
    loc = (obj["x"], obj["y"], hz)
    if obj["shape"] == "sphere":
        bpy.ops.mesh.primitive_uv_sphere_add(radius=r, segments=64, ring_count=32, location=loc)
        bpy.ops.object.shade_smooth()
    elif obj["shape"] == "cube":
        bpy.ops.mesh.primitive_cube_add(size=2.0 * hz, location=loc)
    else:
        bpy.ops.mesh.primitive_cylinder_add(radius=r, depth=2.0 * hz, vertices=96, location=loc)
        bpy.ops.object.shade_smooth()
        bpy.context.object.data.use_auto_smooth = True
        bpy.context.object.data.auto_smooth_angle = math.radians(40.0)
    bpy.context.object.rotation_euler[2] = math.radians(obj["rotation_deg"])
    bpy.context.object.data.materials.append(materials[(obj["color"], obj["material"])])


def main():
    job = json.load(open(sys.argv[sys.argv.index("--") + 1]))
    stage = job["stage"]
    for leftover in list(bpy.data.objects):  # the factory scene's cube, lamp and camera
        bpy.data.objects.remove(leftover, do_unlink=True)
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = job["samples"]
    scene.cycles.seed = 0
    scene.cycles.use_denoising = False
    scene.render.resolution_x = stage["width"]
    scene.render.resolution_y = stage["height"]
    scene.render.resolution_percentage = 100
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGB"
    scene.view_settings.view_transform = "Standard"
    _camera(stage)
    _lights(stage)
    bpy.ops.mesh.primitive_plane_add(size=200.0, location=(0.0, 0.0, 0.0))
    floor_mat = bpy.data.materials.new("floor")
    floor_mat.use_nodes = True
    floor_bsdf = floor_mat.node_tree.nodes["Principled BSDF"]
    floor_bsdf.inputs["Base Color"].default_value = (0.42, 0.42, 0.42, 1.0)
    floor_bsdf.inputs["Roughness"].default_value = 0.9
    bpy.context.object.data.materials.append(floor_mat)
    materials = {
        (color, material): _material(f"{color}-{material}", rgb, material == "metal")
        for color, rgb in job["colors"].items()
        for material in ("rubber", "metal")
    }
    for entry in job["scenes"]:
        added = []
        for obj in entry["objects"]:
            _add_object(obj, materials)
            added.append(bpy.context.object)
        scene.render.filepath = entry["out"]
        bpy.ops.render.render(write_still=True)
        for blender_obj in added:
            bpy.data.objects.remove(blender_obj, do_unlink=True)


main()
