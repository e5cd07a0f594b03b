"""Issue 31: the textured, rigged mesh export (``export --format mesh-glb | vrm``, ``--bone-names``)
checked by other people's software: the Khronos glTF Validator, three.js (GLTFLoader, AnimationMixer)
and @pixiv/three-vrm in headless Chromium, the VRM 1.0 rules for ``VRMC_vrm``, and the bone names
Mixamo and the UE5 mannequin use."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from browser import Browser, chromium_path
from cli_helpers import cli
from web_helpers import StaticServer, node_modules_or_skip, validate

from dreamwaltz.core.gltf import read_glb
from dreamwaltz.core.h3ga import write_h3ga
from dreamwaltz.core.testing import make_test_avatar

ROOT = Path(__file__).resolve().parents[1]
BVH = ROOT / "tests" / "data" / "real_bvh" / "cmu_01_01_fairmotion.bvh"
W, H = 320, 480
TEXTURE = "256"  # pixels: keeps the bake to seconds


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """The procedural test avatar exported as mesh-glb: rest, with a motion, and under the Mixamo
    and Unreal bone names."""
    tmp = tmp_path_factory.mktemp("mesh")
    path = write_h3ga(tmp / "a.h3ga", make_test_avatar(num_free=3000, num_bound=1000, seed=1))
    runs = {
        "rest.glb": [],
        "motion.glb": ["--motion", BVH, "--frames", "0:480"],
        "mixamo.glb": ["--bone-names", "mixamo"],
        "unreal.glb": ["--bone-names", "unreal"],
    }
    for name, args in runs.items():
        out = cli("export", path, "--format", "mesh-glb", "--texture", TEXTURE, *args, "--out", tmp / name)
        assert out.returncode == 0, out.stderr
    return tmp


@pytest.fixture(scope="module")
def vrm_file(tmp_path_factory):
    """A .vrm of an avatar on the 'open' body, whose expressions carry ARKit names (VRM presets)."""
    from dreamwaltz.body import BodyModel
    from dreamwaltz.stage2.oracle import reference_avatar

    tmp = tmp_path_factory.mktemp("vrm")
    path = write_h3ga(tmp / "open.h3ga", reference_avatar(BodyModel.load("open"), num_free=3000).export())
    out = cli(
        "export", path, "--format", "vrm", "--texture", TEXTURE, "--author", "DreamWaltz tests", "--out", tmp / "a.vrm"
    )
    assert out.returncode == 0, out.stderr
    return tmp / "a.vrm"


# ----------------------------------------------------------------------------- Khronos validator


def test_mesh_glb_passes_the_khronos_validator(small):
    files = [small / "rest.glb", small / "motion.glb", small / "mixamo.glb", small / "unreal.glb"]
    for path, report in zip(files, validate(files)):
        issues = report["issues"]
        assert issues["numErrors"] == 0 and issues["numWarnings"] == 0, (path.name, issues["messages"])
        assert not issues.get("truncated")
        info = report["info"]
        assert info["animationCount"] == (1 if path.name == "motion.glb" else 0)
        assert info["hasSkins"] and info["hasTextures"] and info["materialCount"] == 1 and info["maxInfluences"] == 4
        (image,) = [r["image"] for r in info["resources"] if "image" in r]
        assert (image["width"], image["height"], image["format"]) == (256, 256, "rgb")


def test_vrm_passes_the_khronos_validator(vrm_file):
    (report,) = validate([vrm_file])
    # The validator knows glTF, not VRMC_vrm: that one note and nothing else.
    messages = report["issues"]["messages"]
    assert [(m["code"], m["severity"]) for m in messages] == [("UNSUPPORTED_EXTENSION", 2)], messages
    assert "VRMC_vrm" in messages[0]["message"]


# ----------------------------------------------------------------------------- three.js in Chromium

PAGE = """<!doctype html>
<html><head><meta charset="utf-8">
<style>html, body { margin: 0; background: #000; overflow: hidden; }</style>
<script type="importmap">
{"imports": {
  "three": "./node_modules/three/build/three.module.js",
  "three/addons/": "./node_modules/three/examples/jsm/",
  "@pixiv/three-vrm": "./node_modules/@pixiv/three-vrm/lib/three-vrm.module.js"
}}
</script></head>
<body><script type="module">
import * as THREE from "three";
import { GLTFLoader } from "three/addons/loaders/GLTFLoader.js";

const params = new URLSearchParams(location.search);

// The skinned vertices' bounding box, each vertex moved by its bones (SkinnedMesh.applyBoneTransform).
function skinnedBox(root, mesh) {
  root.updateMatrixWorld(true);
  const position = mesh.geometry.attributes.position, v = new THREE.Vector3(), box = new THREE.Box3();
  for (let i = 0; i < position.count; i++) {
    v.fromBufferAttribute(position, i);
    mesh.applyBoneTransform(i, v);
    box.expandByPoint(v.applyMatrix4(mesh.matrixWorld));
  }
  return [box.min.toArray(), box.max.toArray()];
}

function render(root, box) {
  const renderer = new THREE.WebGLRenderer({ antialias: false, preserveDrawingBuffer: true });
  renderer.setSize(innerWidth, innerHeight);
  renderer.setClearColor(0x000000, 1);
  document.body.appendChild(renderer.domElement);
  const scene = new THREE.Scene();
  scene.add(root);
  scene.add(new THREE.AmbientLight(0xffffff, 1.5));  // a lit PBR material, as engines and the viewer light it
  const sun = new THREE.DirectionalLight(0xffffff, 1.5);
  sun.position.set(1, 2, 3);
  scene.add(sun);
  const min = new THREE.Vector3(...box[0]), max = new THREE.Vector3(...box[1]);
  const centre = min.clone().add(max).multiplyScalar(0.5), height = max.y - min.y;
  const camera = new THREE.PerspectiveCamera(40, innerWidth / innerHeight, 0.01, 100);
  camera.position.set(centre.x, centre.y, centre.z + 0.7 * height / Math.tan(THREE.MathUtils.degToRad(20)));
  camera.lookAt(centre);
  renderer.render(scene, camera);
}

async function mesh() {
  const gltf = await new GLTFLoader().loadAsync(params.get("model"));
  let skinned = null;
  gltf.scene.traverse((o) => { if (o.isSkinnedMesh) skinned = o; });
  const result = { animations: gltf.animations.length, vertices: skinned.geometry.attributes.position.count };
  result.textured = Boolean(skinned.material.map && skinned.material.map.image);
  result.rest = skinnedBox(gltf.scene, skinned);
  if (gltf.animations.length) {
    const mixer = new THREE.AnimationMixer(gltf.scene);
    mixer.clipAction(gltf.animations[0]).play();
    const times = JSON.parse(params.get("times"));
    result.duration = gltf.animations[0].duration;
    result.boxes = [];
    let now = 0;
    for (const t of times) {
      mixer.update(t - now);
      now = t;
      result.boxes.push(skinnedBox(gltf.scene, skinned));
    }
  }
  render(gltf.scene, result.boxes ? result.boxes[result.boxes.length - 1] : result.rest);
  return result;
}

async function vrm() {
  const { VRMLoaderPlugin } = await import("@pixiv/three-vrm");
  const loader = new GLTFLoader();
  loader.register((parser) => new VRMLoaderPlugin(parser));
  const gltf = await loader.loadAsync(params.get("model"));
  const vrm = gltf.userData.vrm;
  const bones = {};
  for (const name of JSON.parse(params.get("bones"))) {
    const node = vrm.humanoid.getRawBoneNode(name);
    bones[name] = node ? node.name : null;
  }
  const box = new THREE.Box3().setFromObject(vrm.scene, true);
  render(vrm.scene, [box.min.toArray(), box.max.toArray()]);
  const side = (name) => vrm.humanoid.getRawBoneNode(name).getWorldPosition(new THREE.Vector3()).x;
  const handsX = [side("leftHand"), side("rightHand")];
  const manager = vrm.expressionManager;
  // Setting "aa" to 1 moves the face: some morph target of the mesh gets a weight.
  manager.setValue("aa", 1.0);
  vrm.update(0);
  let influence = 0;
  vrm.scene.traverse((o) => {
    if (o.morphTargetInfluences) influence = Math.max(influence, ...o.morphTargetInfluences);
  });
  return {
    metaVersion: vrm.meta.metaVersion,
    name: vrm.meta.name,
    authors: vrm.meta.authors,
    bones,
    presets: Object.keys(manager.presetExpressionMap),
    custom: Object.keys(manager.customExpressionMap),
    aaInfluence: influence,
    handsX,
  };
}

(params.get("vrm") ? vrm() : mesh())
  .then((result) => { window.result = result; })
  .catch((err) => { window.result = { error: String(err && err.stack || err) }; });
</script></body></html>
"""


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """(browser, url of the test page): the page and the pinned modules served on localhost."""
    if chromium_path() is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    node_modules_or_skip("three", "@pixiv/three-vrm")
    tmp = tmp_path_factory.mktemp("page")
    (tmp / "index.html").write_text(PAGE)
    server = StaticServer(tmp)
    browser = Browser(W, H)
    yield browser, server, tmp
    browser.close()
    server.close()


def open_page(page, model: Path, **query) -> dict:
    import json
    import shutil
    import urllib.parse

    browser, server, tmp = page
    shutil.copy(model, tmp / model.name)
    query = {"model": model.name, **{k: json.dumps(v) if not isinstance(v, str) else v for k, v in query.items()}}
    start = len(browser.console)
    browser.goto(f"{server.url}index.html?{urllib.parse.urlencode(query)}", "window.result", timeout=120)
    result = browser.evaluate("window.result")
    assert "error" not in result, (result["error"], browser.console[-5:])
    result["console"] = browser.console[start:]
    return result


def test_three_js_plays_the_mesh_glb_and_the_skin_follows(page, small):
    from PIL import Image

    times = [0.0, 1.5, 3.0]
    result = open_page(page, small / "motion.glb", times=times)
    assert result["animations"] == 1 and result["textured"]
    assert result["duration"] == pytest.approx(479 / 120, abs=0.01)  # 480 frames of a 120 fps clip
    boxes = np.asarray(result["boxes"])  # (time, min/max, xyz)
    rest = np.asarray(result["rest"])
    height = rest[1, 1] - rest[0, 1]
    assert 0.5 < height < 2.5  # a person, in metres
    # The skinned vertices move with the bones: the box changes by more than a few centimetres
    # between the clip's times, and so does its size (the limbs move, not only the root).
    moved = [np.abs(boxes[i + 1] - boxes[i]).max() for i in range(len(boxes) - 1)]
    size = boxes[:, 1] - boxes[:, 0]
    reshaped = [np.abs(size[i + 1] - size[i]).max() for i in range(len(boxes) - 1)]
    print("skinned box change between times (m):", moved, "its size's change:", reshaped)
    assert min(moved) > 0.05
    assert max(reshaped) > 0.03
    # ... and the mesh is drawn, textured: not background, not one flat colour.
    browser = page[0]
    shot = np.asarray(Image.open(io.BytesIO(browser.screenshot())).convert("RGB"), dtype=np.float64) / 255.0
    drawn = shot.max(axis=2) > 0.02
    print(f"drawn pixels: {drawn.mean():.3f}")
    assert drawn.mean() > 0.05
    assert shot[drawn].std(axis=0).max() > 0.02


# ----------------------------------------------------------------------------- VRM in three-vrm

REQUIRED_HUMAN_BONES = ["hips", "spine", "head"] + [
    f"{side}{bone}"
    for side in ("left", "right")
    for bone in ("UpperLeg", "LowerLeg", "Foot", "UpperArm", "LowerArm", "Hand")
]


def test_three_vrm_loads_the_vrm_with_its_humanoid_and_expressions(page, vrm_file):
    result = open_page(page, vrm_file, vrm="1", bones=REQUIRED_HUMAN_BONES)
    assert result["metaVersion"] == "1"  # read as VRM 1.0 (VRMC_vrm), not 0.x
    assert result["authors"] == ["DreamWaltz tests"]
    missing = [b for b, node in result["bones"].items() if node is None]
    assert missing == []
    assert all(node == bone for bone, node in result["bones"].items())  # the nodes carry the VRM names
    assert {"aa", "blink"} <= set(result["presets"]), result["presets"]
    assert len(result["custom"]) >= 1
    assert not set(result["custom"]) & set(result["presets"])
    assert result["aaInfluence"] == pytest.approx(1.0)
    assert result["console"] == []  # three-vrm warns of what it cannot read: nothing
    # VRM 1.0 models face +Z, so the avatar's left hand is on +X (a model facing -Z loads mirrored).
    assert result["handsX"][0] > 0.3 and result["handsX"][1] < -0.3, result["handsX"]


# ----------------------------------------------------------------------------- VRM 1.0 rules

# The VRM 1.0 specification's JSON schema (vrm-c/vrm-specification, specification/VRMC_vrm-1.0/
# schema) is not vendored: that repository has no licence file (none in its whole history, checked
# at 3942748e, January 2026), so its files cannot be copied here. This schema is written by hand
# from the specification's rules for the parts we write: required fields, the meta's enumerations
# and types, the humanoid's bone names and required bones, expression presets and binds.
HUMAN_BONES = (
    ["hips", "spine", "chest", "upperChest", "neck", "head", "leftEye", "rightEye", "jaw"]
    + [f"{s}{b}" for s in ("left", "right") for b in ("UpperLeg", "LowerLeg", "Foot", "Toes")]
    + [f"{s}{b}" for s in ("left", "right") for b in ("Shoulder", "UpperArm", "LowerArm", "Hand")]
    + [
        f"{s}{finger}{segment}"
        for s in ("left", "right")
        for finger, segments in (
            ("Thumb", ("Metacarpal", "Proximal", "Distal")),
            *((f, ("Proximal", "Intermediate", "Distal")) for f in ("Index", "Middle", "Ring", "Little")),
        )
        for segment in segments
    ]
)
PRESETS = ["happy", "angry", "sad", "relaxed", "surprised", "aa", "ih", "ou", "ee", "oh", "blink", "blinkLeft"]
PRESETS += ["blinkRight", "lookUp", "lookDown", "lookLeft", "lookRight", "neutral"]
GLTF_ID = {"type": "integer", "minimum": 0}
OVERRIDE = {"enum": ["none", "block", "blend"]}
EXPRESSION = {
    "type": "object",
    "properties": {
        "morphTargetBinds": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "properties": {
                    "node": GLTF_ID,
                    "index": GLTF_ID,
                    "weight": {"type": "number", "minimum": 0, "maximum": 1},
                },
                "required": ["node", "index", "weight"],
            },
        },
        "isBinary": {"type": "boolean"},
        "overrideBlink": OVERRIDE,
        "overrideLookAt": OVERRIDE,
        "overrideMouth": OVERRIDE,
    },
}
VRMC_VRM_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["specVersion", "meta", "humanoid"],
    "properties": {
        "specVersion": {"const": "1.0"},
        "meta": {
            "type": "object",
            "required": ["name", "authors", "licenseUrl"],
            "properties": {
                "name": {"type": "string", "minLength": 1},
                "version": {"type": "string"},
                "authors": {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}},
                "licenseUrl": {"type": "string", "minLength": 1},
                "avatarPermission": {"enum": ["onlyAuthor", "onlySeparatelyLicensedPerson", "everyone"]},
                "commercialUsage": {"enum": ["personalNonProfit", "personalProfit", "corporation"]},
                "creditNotation": {"enum": ["required", "unnecessary"]},
                "modification": {"enum": ["prohibited", "allowModification", "allowModificationRedistribution"]},
                "allowRedistribution": {"type": "boolean"},
                "allowExcessivelyViolentUsage": {"type": "boolean"},
                "allowExcessivelySexualUsage": {"type": "boolean"},
                "allowPoliticalOrReligiousUsage": {"type": "boolean"},
                "allowAntisocialOrHateUsage": {"type": "boolean"},
                "thumbnailImage": GLTF_ID,
            },
        },
        "humanoid": {
            "type": "object",
            "required": ["humanBones"],
            "properties": {
                "humanBones": {
                    "type": "object",
                    "required": REQUIRED_HUMAN_BONES,
                    "propertyNames": {"enum": HUMAN_BONES},
                    "additionalProperties": {
                        "type": "object",
                        "required": ["node"],
                        "properties": {"node": GLTF_ID},
                    },
                }
            },
        },
        "expressions": {
            "type": "object",
            "properties": {
                "preset": {"type": "object", "propertyNames": {"enum": PRESETS}, "additionalProperties": EXPRESSION},
                "custom": {
                    "type": "object",
                    "propertyNames": {"not": {"enum": PRESETS}},
                    "additionalProperties": EXPRESSION,
                },
            },
        },
    },
}


def test_vrmc_vrm_follows_the_vrm_1_0_rules(vrm_file):
    import jsonschema

    gltf, _ = read_glb(vrm_file)
    assert "VRMC_vrm" in gltf["extensionsUsed"]
    vrm = gltf["extensions"]["VRMC_vrm"]
    jsonschema.Draft202012Validator.check_schema(VRMC_VRM_SCHEMA)
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in jsonschema.Draft202012Validator(VRMC_VRM_SCHEMA).iter_errors(vrm)
    ]
    assert errors == []
    # What a schema cannot say: the ids point at the right things. Every human bone is its own
    # joint node of the skin, and each parent bone is an ancestor (the humanoid's hierarchy).
    bones = {name: bone["node"] for name, bone in vrm["humanoid"]["humanBones"].items()}
    assert len(set(bones.values())) == len(bones)
    assert set(bones.values()) <= set(gltf["skins"][0]["joints"])
    parent = {c: p for p, node in enumerate(gltf["nodes"]) for c in node.get("children", [])}

    def ancestors(n):
        while n in parent:
            n = parent[n]
            yield n

    for child, ancestor in [("head", "hips"), ("leftHand", "leftUpperArm"), ("rightFoot", "rightUpperLeg")]:
        assert bones[ancestor] in set(ancestors(bones[child])), (child, ancestor)
    for kind in ("preset", "custom"):
        for expression in vrm["expressions"].get(kind, {}).values():
            for bind in expression["morphTargetBinds"]:
                mesh = gltf["meshes"][gltf["nodes"][bind["node"]]["mesh"]]
                assert bind["index"] < len(mesh["primitives"][0]["targets"])


# ----------------------------------------------------------------------------- bone-name conventions

SIDES = {"mixamo": ("Left", "Right"), "unreal": ("l", "r")}


def mixamo_required() -> list[str]:
    """Mixamo's rig (``mixamorig:`` prefix): the body and the 15 finger bones of each hand."""
    names = ["Hips", "Spine", "Spine1", "Spine2", "Neck", "Head"]
    for S in SIDES["mixamo"]:
        names += [f"{S}{b}" for b in ("Shoulder", "Arm", "ForeArm", "Hand", "UpLeg", "Leg", "Foot", "ToeBase")]
        names += [f"{S}Hand{f}{k}" for f in ("Thumb", "Index", "Middle", "Ring", "Pinky") for k in (1, 2, 3)]
    return [f"mixamorig:{n}" for n in names]


def unreal_required() -> list[str]:
    """The UE5 mannequin's skeleton (SK_Mannequin): root, the body and the 15 finger bones a side."""
    names = ["root", "pelvis", "spine_01", "spine_02", "spine_03", "neck_01", "head"]
    for s in SIDES["unreal"]:
        names += [f"{b}_{s}" for b in ("clavicle", "upperarm", "lowerarm", "hand", "thigh", "calf", "foot", "ball")]
        names += [f"{f}_{k:02d}_{s}" for f in ("thumb", "index", "middle", "ring", "pinky") for k in (1, 2, 3)]
    return names


@pytest.mark.parametrize("convention, required", [("mixamo", mixamo_required()), ("unreal", unreal_required())])
def test_bone_names_carry_every_bone_the_convention_requires(small, convention, required):
    gltf, _ = read_glb(small / f"{convention}.glb")
    joints = [gltf["nodes"][j]["name"] for j in gltf["skins"][0]["joints"]]
    assert len(required) == {"mixamo": 52, "unreal": 53}[convention]
    assert [n for n in required if n not in joints] == []
    assert len(set(joints)) == len(joints)
    parent = {c: p for p, node in enumerate(gltf["nodes"]) for c in node.get("children", [])}
    name = {i: node.get("name") for i, node in enumerate(gltf["nodes"])}
    by_name = {n: i for i, n in name.items()}
    # The chains the retargeters walk: each bone's parent is the one the convention puts above it.
    if convention == "mixamo":
        chain = ["Hips", "Spine", "Spine1", "Spine2", "Neck", "Head"]
        chain = [f"mixamorig:{n}" for n in chain]
        arm = [f"mixamorig:Left{n}" for n in ("Shoulder", "Arm", "ForeArm", "Hand", "HandIndex1", "HandIndex2")]
        leg = [f"mixamorig:Left{n}" for n in ("UpLeg", "Leg", "Foot", "ToeBase")]
    else:
        chain = ["root", "pelvis", "spine_01", "spine_02", "spine_03", "neck_01", "head"]
        arm = ["clavicle_l", "upperarm_l", "lowerarm_l", "hand_l", "index_01_l", "index_02_l"]
        leg = ["thigh_l", "calf_l", "foot_l", "ball_l"]
    for bones in (chain, arm, leg):
        for above, bone in zip(bones, bones[1:]):
            assert name[parent[by_name[bone]]] == above, (bone, name[parent[by_name[bone]]])
    assert name[parent[by_name[arm[0]]]] == chain[-3]  # the clavicle hangs from the top of the spine
    assert name[parent[by_name[leg[0]]]] == chain[-6]  # the thigh from the hips / pelvis
    if convention == "unreal":
        assert by_name["root"] not in parent  # the root bone is the top of the hierarchy


def test_shape_keys_named_as_vrm_presets_never_become_custom_expressions():
    """A custom expression may not take a preset's name: a shape key called "happy" is the happy
    preset when the ARKit keys make none, and is renamed when they do ("blink" here)."""
    import jsonschema

    from dreamwaltz.core.gltf import _vrm

    names = ["happy", "blink", "jawOpen", "eyeBlinkLeft", "eyeBlinkRight", "smirk"]
    vrm = _vrm(list(range(55)), 55, names, {"name": "a", "authors": ["b"]})
    jsonschema.validate(vrm, VRMC_VRM_SCHEMA, cls=jsonschema.Draft202012Validator)
    preset, custom = vrm["expressions"]["preset"], vrm["expressions"]["custom"]
    assert preset["happy"]["morphTargetBinds"] == [{"node": 55, "index": 0, "weight": 1.0}]
    assert [b["index"] for b in preset["blink"]["morphTargetBinds"]] == [3, 4]  # eyeBlinkLeft/Right
    assert [b["index"] for b in preset["aa"]["morphTargetBinds"]] == [2]  # jawOpen
    assert sorted(custom) == ["blink_custom", "smirk"]


# Measured 2026-12-07 (with the 3 mm silhouette margin): IoU 0.976-0.978, PSNR over either silhouette
# 26.7-27.8 dB, inside both 27.4-28.7 dB; the floors leave a margin.
IOU_FLOOR, REGION_PSNR_FLOOR, INSIDE_PSNR_FLOOR = 0.95, 24.0, 25.0


def test_the_baked_mesh_looks_like_the_splats_from_views_it_was_not_baked_for():
    """The oracle avatar (a known outfit, 20k splats) baked at 512 px and drawn by the mesh
    rasterizer at held-out views: silhouette and colours against the splats' own render."""
    from dreamwaltz.body import BodyModel
    from dreamwaltz.core.camera import orbit_camera
    from dreamwaltz.core.posing import pose_avatar
    from dreamwaltz.meshbake import bake_mesh, render_baked
    from dreamwaltz.render import rasterize_posed
    from dreamwaltz.stage2.oracle import reference_avatar

    avatar = reference_avatar(BodyModel.load("open"), num_free=15000).export()
    mesh = bake_mesh(avatar, texture_size=512)
    posed = pose_avatar(avatar)
    ious, region, inside = [], [], []
    for az, el in ((30, 80), (-120, 100)):
        cam = orbit_camera(az, el, 2.6, tuple(posed.means.mean(0)), 50, 192, 192)
        out = rasterize_posed(posed, cam)
        ref, ref_mask = out.image.numpy().astype(np.float64), out.alpha.numpy()[..., 0] > 0.5
        image, mask = render_baked(mesh, cam)
        ious.append((mask & ref_mask).sum() / (mask | ref_mask).sum())
        for where, scores in ((mask | ref_mask, region), (mask & ref_mask, inside)):
            scores.append(10 * np.log10(1 / np.mean((image - ref)[where] ** 2)))
    assert min(ious) >= IOU_FLOOR, ious
    assert min(region) >= REGION_PSNR_FLOOR and min(inside) >= INSIDE_PSNR_FLOOR, (region, inside)
