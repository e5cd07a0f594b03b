// DreamWaltz avatar viewer: three.js + Spark. Loads a .glb written by `dreamwaltz export --format
// glb` and poses its splats by the rule of docs/EXPORT.md (linear blend skinning of each centre,
// the blended matrix on each covariance; mesh-bound splats on their posed body triangle), on the
// GPU with Spark's SplatSkinning (or on the CPU: skinning=cpu). A .glb without splats (a mesh export: skinned, textured triangles) plays through three.js's
// GLTFLoader and AnimationMixer (skinned on the GPU).
//
// URL parameters: file (default avatar.glb), t (seconds: show that time, paused), skinning=cpu (pose
// the splats on the CPU rather than with Spark's GPU skinning), eye and target
// ("x,y,z", metres; by default the camera frames the avatar's bounds over the whole clip), fov
// (vertical, degrees), bg ("r,g,b" in 0..1), mask=1 (the avatar white: the silhouette), ui=0 (no
// controls).
//
// window.dreamwaltzStats: kind ("splats" or "mesh"), skinning, frameMs (the mean time between
// drawn frames over the last second), poseMs (the CPU skinning of the last posed frame), bounds
// ({min, max}: the avatar over the whole clip, metres), frames, splats.
import * as THREE from "three";
import { OrbitControls } from "three/addons/controls/OrbitControls.js";
import { GLTFLoader } from "three/addons/loaders/GLTFLoader.js";
import { ExtSplats, PackedSplats, SparkRenderer, SplatMesh, SplatSkinning, SplatSkinningMode } from "@sparkjsdev/spark";

const EXT = "KHR_gaussian_splatting";
const SH_C0 = 0.28209479177387814;
const params = new URLSearchParams(location.search);
const vec = (name, fallback) => (params.get(name) ? params.get(name).split(",").map(Number) : fallback);
const status = document.getElementById("status");

// ---------------------------------------------------------------- glb reading
function parseGlb(buffer) {
  const view = new DataView(buffer);
  if (view.getUint32(0, true) !== 0x46546c67) throw new Error("not a binary glTF (.glb) file");
  const jsonLength = view.getUint32(12, true);
  const json = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 20, jsonLength)));
  const binLength = view.getUint32(20 + jsonLength, true);
  return { json, bin: buffer.slice(28 + jsonLength, 28 + jsonLength + binLength) };
}

const WIDTH = { SCALAR: 1, VEC2: 2, VEC3: 3, VEC4: 4, MAT4: 16 };
const ARRAYS = { 5126: Float32Array, 5121: Uint8Array, 5123: Uint16Array, 5125: Uint32Array };

function accessor(gltf, index) {
  const acc = gltf.json.accessors[index];
  const bv = gltf.json.bufferViews[acc.bufferView];
  const Type = ARRAYS[acc.componentType];
  const width = WIDTH[acc.type];
  const offset = (bv.byteOffset || 0) + (acc.byteOffset || 0);
  return { data: new Type(gltf.bin, offset, acc.count * width), width, count: acc.count };
}

// ---------------------------------------------------------------- small linear algebra (row-major)
function quatToMat3(x, y, z, w) {
  return [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
          2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
          2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)];
}

function mat4FromTRS(t, q, s) {
  const r = quatToMat3(q[0], q[1], q[2], q[3]);
  return [r[0] * s[0], r[1] * s[1], r[2] * s[2], t[0],
          r[3] * s[0], r[4] * s[1], r[5] * s[2], t[1],
          r[6] * s[0], r[7] * s[1], r[8] * s[2], t[2], 0, 0, 0, 1];
}

function mul4(a, b) {
  const out = new Array(16).fill(0);
  for (let i = 0; i < 4; i++) for (let k = 0; k < 4; k++) {
    const v = a[i * 4 + k];
    for (let j = 0; j < 4; j++) out[i * 4 + j] += v * b[k * 4 + j];
  }
  return out;
}

// Eigen-decomposition of a symmetric 3x3 (cyclic Jacobi): the splat's scales and rotation again.
function symmetricEigen(c) {
  const a = [[c[0], c[1], c[2]], [c[1], c[4], c[5]], [c[2], c[5], c[8]]];
  const v = [[1, 0, 0], [0, 1, 0], [0, 0, 1]];
  for (let sweep = 0; sweep < 12; sweep++) {
    const off = Math.abs(a[0][1]) + Math.abs(a[0][2]) + Math.abs(a[1][2]);
    if (off < 1e-30 + 1e-14 * (Math.abs(a[0][0]) + Math.abs(a[1][1]) + Math.abs(a[2][2]))) break;
    for (const [p, q] of [[0, 1], [0, 2], [1, 2]]) {
      if (a[p][q] === 0) continue;
      const theta = (a[q][q] - a[p][p]) / (2 * a[p][q]);
      const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
      const cs = 1 / Math.sqrt(t * t + 1), sn = t * cs;
      for (let k = 0; k < 3; k++) {  // a = J^T a J
        const akp = a[k][p], akq = a[k][q];
        a[k][p] = cs * akp - sn * akq; a[k][q] = sn * akp + cs * akq;
      }
      for (let k = 0; k < 3; k++) {
        const apk = a[p][k], aqk = a[q][k];
        a[p][k] = cs * apk - sn * aqk; a[q][k] = sn * apk + cs * aqk;
      }
      for (let k = 0; k < 3; k++) {
        const vkp = v[k][p], vkq = v[k][q];
        v[k][p] = cs * vkp - sn * vkq; v[k][q] = sn * vkp + cs * vkq;
      }
    }
  }
  // columns of v are eigenvectors; make it a proper rotation
  const det = v[0][0] * (v[1][1] * v[2][2] - v[1][2] * v[2][1]) - v[0][1] * (v[1][0] * v[2][2] - v[1][2] * v[2][0])
            + v[0][2] * (v[1][0] * v[2][1] - v[1][1] * v[2][0]);
  if (det < 0) for (let k = 0; k < 3; k++) v[k][0] = -v[k][0];
  return { values: [a[0][0], a[1][1], a[2][2]], vectors: v };
}

// ---------------------------------------------------------------- the avatar
class Avatar {
  constructor(gltf) {
    this.gltf = gltf;
    const json = gltf.json;
    const meshIndex = json.meshes.findIndex((m) => m.primitives.some((p) => p.extensions && p.extensions[EXT]));
    if (meshIndex < 0) throw new Error(`no ${EXT} primitive in the file`);
    const prim = json.meshes[meshIndex].primitives.find((p) => p.extensions && p.extensions[EXT]);
    const get = (name) => (prim.attributes[name] !== undefined ? accessor(gltf, prim.attributes[name]) : null);
    this.position = get("POSITION");
    this.count = this.position.count;
    this.rotation = get(`${EXT}:ROTATION`);
    this.scale = get(`${EXT}:SCALE`);
    this.opacity = get(`${EXT}:OPACITY`);
    this.sh0 = get(`${EXT}:SH_DEGREE_0_COEF_0`);
    this.joints = get("JOINTS_0");
    this.weights = get("WEIGHTS_0");
    this.bindFace = get("_DREAMWALTZ_BIND_FACE");
    this.bindBary = get("_DREAMWALTZ_BIND_BARYCENTRIC");
    const splatNode = json.nodes.find((n) => n.mesh === meshIndex);
    this.skin = splatNode && splatNode.skin !== undefined ? json.skins[splatNode.skin] : null;
    this.animation = json.animations ? json.animations[0] : null;
    this.duration = 0;
    if (this.animation) {
      for (const s of this.animation.samplers) this.duration = Math.max(this.duration, json.accessors[s.input].max[0]);
      this.times = accessor(gltf, this.animation.samplers[0].input).data;
    }
    // rest covariances
    this.restCov = new Float64Array(this.count * 9);
    for (let i = 0; i < this.count; i++) {
      const q = this.rotation.data, s = this.scale.data;
      const r = quatToMat3(q[4 * i], q[4 * i + 1], q[4 * i + 2], q[4 * i + 3]);
      const s2 = [s[3 * i] ** 2, s[3 * i + 1] ** 2, s[3 * i + 2] ** 2];
      for (let a = 0; a < 3; a++) for (let b = 0; b < 3; b++) {
        this.restCov[9 * i + 3 * a + b] = r[3 * a] * s2[0] * r[3 * b] + r[3 * a + 1] * s2[1] * r[3 * b + 1] + r[3 * a + 2] * s2[2] * r[3 * b + 2];
      }
    }
    const body = json.meshes.findIndex((m) => m.primitives.some((p) => p.mode === 4 && p.attributes.JOINTS_0 !== undefined));
    if (this.skin && this.bindFace && body >= 0) {
      const bp = json.meshes[body].primitives.find((p) => p.mode === 4);
      this.body = { position: accessor(gltf, bp.attributes.POSITION), joints: accessor(gltf, bp.attributes.JOINTS_0),
                    weights: accessor(gltf, bp.attributes.WEIGHTS_0), indices: accessor(gltf, bp.indices) };
    }
  }

  // Each node's world matrix at time t (the animation's LINEAR channels applied).
  worldMatrices(t) {
    const nodes = this.gltf.json.nodes;
    const trs = nodes.map((n) => ({ t: n.translation || [0, 0, 0], r: n.rotation || [0, 0, 0, 1], s: n.scale || [1, 1, 1] }));
    if (this.animation) {
      const times = this.times, last = times.length - 1;
      let i = 0;
      while (i < last - 1 && times[i + 1] <= t) i++;
      const u = last === 0 ? 0 : Math.min(1, Math.max(0, (t - times[i]) / (times[i + 1] - times[i])));
      for (const ch of this.animation.channels) {
        const out = accessor(this.gltf, this.animation.samplers[ch.sampler].output);
        const w = out.width, j = Math.min(i + 1, last);
        const a = Array.from(out.data.slice(i * w, i * w + w)), b = Array.from(out.data.slice(j * w, j * w + w));
        if (ch.target.path === "rotation") {
          let dot = a[0] * b[0] + a[1] * b[1] + a[2] * b[2] + a[3] * b[3];
          if (dot < 0) { for (let k = 0; k < 4; k++) b[k] = -b[k]; dot = -dot; }
          const qa = new THREE.Quaternion(...a), qb = new THREE.Quaternion(...b);
          const q = qa.slerp(qb, u);
          trs[ch.target.node].r = [q.x, q.y, q.z, q.w];
        } else {
          trs[ch.target.node][ch.target.path === "translation" ? "t" : "s"] = a.map((v, k) => v + u * (b[k] - v));
        }
      }
    }
    const world = new Array(nodes.length).fill(null);
    const visit = (k, parent) => {
      const local = mat4FromTRS(trs[k].t, trs[k].r, trs[k].s);
      world[k] = parent ? mul4(parent, local) : local;
      for (const c of nodes[k].children || []) visit(c, world[k]);
    };
    const scene = this.gltf.json.scenes[this.gltf.json.scene || 0];
    for (const root of scene.nodes) visit(root, null);
    return world;
  }

  skinningMatrices(t) {
    const world = this.worldMatrices(t);
    const ibm = accessor(this.gltf, this.skin.inverseBindMatrices).data;
    return this.skin.joints.map((node, j) => {
      const m = new Array(16);  // column-major in the file
      for (let r = 0; r < 4; r++) for (let c = 0; c < 4; c++) m[r * 4 + c] = ibm[16 * j + c * 4 + r];
      return mul4(world[node], m);
    });
  }

  blended(A, joints, weights, i) {
    const M = new Array(12).fill(0);
    for (let k = 0; k < 4; k++) {
      const w = weights.data[4 * i + k];
      if (!w) continue;
      const a = A[joints.data[4 * i + k]];
      for (let e = 0; e < 12; e++) M[e] += w * a[e];
    }
    return M;
  }

  // Centres (N*3) and covariances (N*9) at time t, by docs/EXPORT.md's rule.
  pose(t) {
    const n = this.count, P = this.position.data;
    const means = new Float64Array(n * 3), covs = new Float64Array(n * 9);
    if (!this.skin) {
      for (let i = 0; i < 3 * n; i++) means[i] = P[i];
      covs.set(this.restCov);
      return { means, covs };
    }
    const A = this.skinningMatrices(t);
    const tri = this.body ? this.triangles(A) : null;
    for (let i = 0; i < n; i++) {
      if (tri && this.bindFace.data[i] >= 0) { this.boundSplat(i, tri, means, covs); continue; }
      const M = this.blended(A, this.joints, this.weights, i);
      const x = P[3 * i], y = P[3 * i + 1], z = P[3 * i + 2];
      for (let r = 0; r < 3; r++) means[3 * i + r] = M[4 * r] * x + M[4 * r + 1] * y + M[4 * r + 2] * z + M[4 * r + 3];
      congruence(M, 4, this.restCov, 9 * i, covs, 9 * i);
    }
    return { means, covs };
  }

  // The centres of every `stride`-th splat at time t (the bounds over the clip need no covariances).
  centres(t, stride) {
    const P = this.position.data, out = [];
    const A = this.skin ? this.skinningMatrices(t) : null;
    const tri = A && this.body ? this.triangles(A) : null;
    for (let i = 0; i < this.count; i += stride) {
      if (!A) { out.push([P[3 * i], P[3 * i + 1], P[3 * i + 2]]); continue; }
      if (tri && this.bindFace.data[i] >= 0) {
        const f = this.bindFace.data[i], bc = this.bindBary.data;
        const ids = [tri.idx[3 * f], tri.idx[3 * f + 1], tri.idx[3 * f + 2]];
        out.push([0, 1, 2].map((r) => bc[3 * i] * tri.posed[3 * ids[0] + r] + bc[3 * i + 1] * tri.posed[3 * ids[1] + r]
                                    + bc[3 * i + 2] * tri.posed[3 * ids[2] + r]));
        continue;
      }
      const M = this.blended(A, this.joints, this.weights, i);
      const x = P[3 * i], y = P[3 * i + 1], z = P[3 * i + 2];
      out.push([0, 1, 2].map((r) => M[4 * r] * x + M[4 * r + 1] * y + M[4 * r + 2] * z + M[4 * r + 3]));
    }
    return out;
  }

  // Skinned body vertices, and each triangle's posed and rest frames.
  triangles(A) {
    const b = this.body, V = b.position.count, P = b.position.data;
    const posed = new Float64Array(V * 3);
    for (let v = 0; v < V; v++) {
      const M = this.blended(A, b.joints, b.weights, v);
      for (let r = 0; r < 3; r++) posed[3 * v + r] = M[4 * r] * P[3 * v] + M[4 * r + 1] * P[3 * v + 1] + M[4 * r + 2] * P[3 * v + 2] + M[4 * r + 3];
    }
    return { posed, rest: P, idx: b.indices.data };
  }

  boundSplat(i, tri, means, covs) {
    const f = this.bindFace.data[i], bc = this.bindBary.data;
    const ids = [tri.idx[3 * f], tri.idx[3 * f + 1], tri.idx[3 * f + 2]];
    for (let r = 0; r < 3; r++) {
      means[3 * i + r] = bc[3 * i] * tri.posed[3 * ids[0] + r] + bc[3 * i + 1] * tri.posed[3 * ids[1] + r] + bc[3 * i + 2] * tri.posed[3 * ids[2] + r];
    }
    const F1 = triangleFrame(tri.posed, ids), F0 = triangleFrame(tri.rest, ids);
    const R = new Array(9).fill(0);  // F1 F0^T
    for (let a = 0; a < 3; a++) for (let c = 0; c < 3; c++) for (let k = 0; k < 3; k++) R[3 * a + c] += F1[3 * a + k] * F0[3 * c + k];
    congruence(R, 3, this.restCov, 9 * i, covs, 9 * i);
  }
}

// out = L C L^T for the 3x3 part of L (row stride `stride`)
function congruence(L, stride, C, ci, out, oi) {
  const T = new Array(9).fill(0);
  for (let a = 0; a < 3; a++) for (let b = 0; b < 3; b++) for (let k = 0; k < 3; k++) T[3 * a + b] += L[stride * a + k] * C[ci + 3 * k + b];
  for (let a = 0; a < 3; a++) for (let b = 0; b < 3; b++) {
    let s = 0;
    for (let k = 0; k < 3; k++) s += T[3 * a + k] * L[stride * b + k];
    out[oi + 3 * a + b] = s;
  }
}

// Columns: unit edge 0->1, normal x edge, unit normal (row-major 3x3).
function triangleFrame(P, ids) {
  const p = (v, r) => P[3 * ids[v] + r];
  const e = [0, 1, 2].map((r) => p(1, r) - p(0, r)), g = [0, 1, 2].map((r) => p(2, r) - p(0, r));
  const norm = (v) => { const l = Math.hypot(...v) || 1; return v.map((x) => x / l); };
  const e1 = norm(e);
  const n = norm([e[1] * g[2] - e[2] * g[1], e[2] * g[0] - e[0] * g[2], e[0] * g[1] - e[1] * g[0]]);
  const e2 = [n[1] * e1[2] - n[2] * e1[1], n[2] * e1[0] - n[0] * e1[2], n[0] * e1[1] - n[1] * e1[0]];
  return [e1[0], e2[0], n[0], e1[1], e2[1], n[1], e1[2], e2[2], n[2]];
}

// ---------------------------------------------------------------- the page
const SAMPLES = 24;  // times through the clip at which the bounds are taken

function sampleTimes(duration) {
  if (!(duration > 0)) return [0];
  return Array.from({ length: SAMPLES + 1 }, (_, k) => (k / SAMPLES) * duration);
}

function isSplatFile(gltf) {
  return (gltf.json.meshes || []).some((m) => m.primitives.some((p) => p.extensions && p.extensions[EXT]));
}

// Splats into a Spark SplatMesh, skinned on the GPU by Spark's SplatSkinning (linear blend: the
// blended matrix on each centre and covariance, the rule of docs/EXPORT.md), or with skinning=cpu
// posed here on the CPU (exact for mesh-bound splats too). On the GPU a mesh-bound splat is skinned
// by its triangle's corners' weights blended by its barycentric coordinates (the four largest),
// which departs from the exact rule by the triangle's stretch: well under a millimetre on a body.
function splatPlayer(gltf, scene, mask, renderer) {
  const avatar = new Avatar(gltf);
  const white = new THREE.Color(1, 1, 1);
  const colors = Array.from({ length: avatar.count }, (_, i) => (mask ? white : new THREE.Color(
    Math.min(1, Math.max(0, avatar.sh0.data[3 * i] * SH_C0 + 0.5)),
    Math.min(1, Math.max(0, avatar.sh0.data[3 * i + 1] * SH_C0 + 0.5)),
    Math.min(1, Math.max(0, avatar.sh0.data[3 * i + 2] * SH_C0 + 0.5)))));
  const gpu = params.get("skinning") !== "cpu" && avatar.skin !== null && avatar.skin.joints.length <= 256;
  const bounds = () => {
    const box = new THREE.Box3(), point = new THREE.Vector3();
    const stride = Math.max(1, Math.floor(avatar.count / 4000));
    for (const t of sampleTimes(avatar.duration)) {
      for (const c of avatar.centres(t, stride)) box.expandByPoint(point.set(...c));
    }
    let reach = 0;  // the largest splat's 2-sigma reach beyond its centre
    for (const v of avatar.scale.data) reach = Math.max(reach, 2 * v);
    return box.expandByScalar(Math.min(reach, 0.1));
  };
  const common = { kind: "splats", count: avatar.count, duration: avatar.duration, times: avatar.times, avatar, bounds };
  if (gpu) return { ...common, skinning: "gpu", ...gpuSplats(avatar, colors, scene, renderer) };

  scene.add(new SparkRenderer({ renderer }));
  const packed = new PackedSplats({ maxSplats: avatar.count });
  const center = new THREE.Vector3(), scales = new THREE.Vector3(), quat = new THREE.Quaternion();
  const basis = new THREE.Matrix4();
  let mesh = null, first = true;
  const pose = (t) => {
    const { means, covs } = avatar.pose(t);
    for (let i = 0; i < avatar.count; i++) {
      const { values, vectors: v } = symmetricEigen(covs.subarray(9 * i, 9 * i + 9));
      center.set(means[3 * i], means[3 * i + 1], means[3 * i + 2]);
      scales.set(...values.map((x) => Math.sqrt(Math.max(x, 1e-14))));
      basis.set(v[0][0], v[0][1], v[0][2], 0, v[1][0], v[1][1], v[1][2], 0, v[2][0], v[2][1], v[2][2], 0, 0, 0, 0, 1);
      quat.setFromRotationMatrix(basis);
      const opacity = avatar.opacity.data[i];
      if (first) packed.pushSplat(center, scales, quat, opacity, colors[i]);
      else packed.setSplat(i, center, scales, quat, opacity, colors[i]);
    }
    first = false;
    packed.needsUpdate = true;  // re-upload the splats ...
    if (mesh) mesh.needsUpdate = true;  // ... and have Spark regenerate (and re-sort) them
  };
  return {
    ...common, skinning: "cpu",
    start(t) { pose(t); mesh = new SplatMesh({ packedSplats: packed }); scene.add(mesh); },
    pose,
  };
}

// The rest splats uploaded once, each frame only the skin's joint matrices (Spark SplatSkinning).
function gpuSplats(avatar, colors, scene, renderer) {
  // SplatSkinning's linear blend needs covariance splats, which need extended (float) splats throughout.
  scene.add(new SparkRenderer({ renderer, covSplats: true, accumExtSplats: true }));
  const n = avatar.count, P = avatar.position.data, R = avatar.rotation.data, S = avatar.scale.data;
  const ext = new ExtSplats({ maxSplats: n });
  const center = new THREE.Vector3(), scales = new THREE.Vector3(), quat = new THREE.Quaternion();
  for (let i = 0; i < n; i++) {
    center.set(P[3 * i], P[3 * i + 1], P[3 * i + 2]);
    scales.set(S[3 * i], S[3 * i + 1], S[3 * i + 2]);
    quat.set(R[4 * i], R[4 * i + 1], R[4 * i + 2], R[4 * i + 3]).normalize();
    ext.pushSplat(center, scales, quat, avatar.opacity.data[i], colors[i]);
  }
  ext.updateTextures();  // upload the pushed splats
  const mesh = new SplatMesh({ extSplats: ext, covSplats: true });
  const bones = avatar.skin.joints.length;
  const skinning = new SplatSkinning({ mesh, numSplats: n, numBones: bones, mode: SplatSkinningMode.LINEAR_BLEND });
  const identity = new THREE.Matrix4();
  for (let j = 0; j < bones; j++) skinning.setRestMatrix(j, identity);  // the bone matrices are the skin's own
  const J = avatar.joints.data, W = avatar.weights.data, body = avatar.body;
  const ids = new THREE.Vector4(), ws = new THREE.Vector4();
  for (let i = 0; i < n; i++) {
    let pairs;
    if (body && avatar.bindFace.data[i] >= 0) {  // blend the triangle corners' weights
      const f = avatar.bindFace.data[i], bc = avatar.bindBary.data, acc = new Map();
      for (let c = 0; c < 3; c++) {
        const v = body.indices.data[3 * f + c];
        for (let k = 0; k < 4; k++) {
          const w = bc[3 * i + c] * body.weights.data[4 * v + k];
          if (w > 0) acc.set(body.joints.data[4 * v + k], (acc.get(body.joints.data[4 * v + k]) || 0) + w);
        }
      }
      pairs = [...acc.entries()].sort((a, b) => b[1] - a[1]).slice(0, 4);
    } else {
      pairs = [0, 1, 2, 3].map((k) => [J[4 * i + k], W[4 * i + k]]);
    }
    const total = pairs.reduce((a, [, w]) => a + w, 0) || 1;
    while (pairs.length < 4) pairs.push([0, 0]);
    ids.set(...pairs.map(([j]) => j));
    ws.set(...pairs.map(([, w]) => w / total));
    skinning.setSplatBones(i, ids, ws);
  }
  mesh.skinning = skinning;
  const m = new THREE.Matrix4();
  const pose = (t) => {
    avatar.skinningMatrices(t).forEach((a, j) => skinning.setBoneMatrix(j, m.set(...a)));  // row-major in, as set() takes
    skinning.updateBones();
  };
  return { start(t) { pose(t); scene.add(mesh); }, pose };
}

// Meshes (a mesh export): three.js's GLTFLoader and AnimationMixer, skinned on the GPU.
async function meshPlayer(buffer, scene, mask) {
  const gltf = await new Promise((resolve, reject) => new GLTFLoader().parse(buffer, "", resolve, reject));
  const root = gltf.scene;
  const meshes = [];
  root.traverse((o) => {
    if (!o.isMesh) return;
    meshes.push(o);
    o.frustumCulled = false;  // skinned: the rest-pose bounds do not follow the animation
    if (mask) o.material = new THREE.MeshBasicMaterial({ color: 0xffffff, side: THREE.DoubleSide });
  });
  if (!meshes.length) throw new Error("no splats (KHR_gaussian_splatting) and no mesh in the file");
  scene.add(root);
  scene.add(new THREE.HemisphereLight(0xffffff, 0x444444, 2.0));
  const sun = new THREE.DirectionalLight(0xffffff, 1.5);
  sun.position.set(1, 2, 3);
  scene.add(sun);
  const clip = gltf.animations[0] || null;
  const mixer = new THREE.AnimationMixer(root);
  if (clip) mixer.clipAction(clip).play();
  const times = clip ? clip.tracks.reduce((a, track) => (track.times.length > a.length ? track.times : a), [0]) : null;
  const end = clip ? Math.max(0, clip.duration - 1e-5) : 0;  // the mixer loops: t = duration would show t = 0
  const pose = (t) => { mixer.setTime(Math.min(t, end)); root.updateMatrixWorld(true); };
  const bounds = () => {
    const box = new THREE.Box3(), point = new THREE.Vector3();
    for (const t of sampleTimes(clip ? clip.duration : 0)) {
      pose(t);
      for (const m of meshes) {
        const n = m.geometry.getAttribute("position").count, stride = Math.max(1, Math.floor(n / 4000));
        for (let i = 0; i < n; i += stride) box.expandByPoint(m.getVertexPosition(i, point).applyMatrix4(m.matrixWorld));
      }
    }
    return box;
  };
  let vertices = 0;
  for (const m of meshes) vertices += m.geometry.getAttribute("position").count;
  return {
    kind: "mesh", skinning: "gpu", count: vertices, duration: clip ? clip.duration : 0, times,
    meshes: meshes.length, bounds, start: pose, pose,
  };
}

async function main() {
  const file = params.get("file") || "avatar.glb";
  const response = await fetch(file);
  if (!response.ok) throw new Error(`cannot load ${file}: ${response.status}`);
  const buffer = await response.arrayBuffer();
  const gltf = parseGlb(buffer);

  const renderer = new THREE.WebGLRenderer({ antialias: false, preserveDrawingBuffer: true });
  renderer.setPixelRatio(1);
  renderer.setSize(window.innerWidth, window.innerHeight);
  renderer.setClearColor(new THREE.Color(...vec("bg", [0, 0, 0])), 1);
  document.body.appendChild(renderer.domElement);
  const scene = new THREE.Scene();
  const mask = params.get("mask") === "1";
  const splats = isSplatFile(gltf);
  const player = splats ? splatPlayer(gltf, scene, mask, renderer) : await meshPlayer(buffer, scene, mask);

  // Frame the avatar's bounds over the whole clip (a walk stays in view), unless eye/target say otherwise.
  const box = player.bounds();
  const fov = Number(params.get("fov") || 40);
  const camera = new THREE.PerspectiveCamera(fov, window.innerWidth / window.innerHeight, 0.01, 100);
  const centre = box.getCenter(new THREE.Vector3()), size = box.getSize(new THREE.Vector3());
  const half = THREE.MathUtils.degToRad(fov) / 2;
  const halfWide = Math.atan(Math.tan(half) * camera.aspect);
  const fit = Math.max(size.y / 2 / Math.tan(half), size.x / 2 / Math.tan(halfWide)) * 1.1 + size.z / 2;
  const target = vec("target", centre.toArray());
  camera.position.set(...vec("eye", [centre.x, centre.y, centre.z + Math.max(fit, 0.5)]));
  camera.far = Math.max(100, 4 * camera.position.distanceTo(new THREE.Vector3(...target)));
  camera.updateProjectionMatrix();
  camera.up.set(0, 1, 0);
  camera.lookAt(...target);
  const controls = new OrbitControls(camera, renderer.domElement);
  controls.target.set(...target);
  controls.update();

  const fixed = params.get("t");
  let time = fixed !== null ? Number(fixed) : 0;
  let playing = fixed === null && player.duration > 0;
  const stats = {
    kind: player.kind, skinning: player.skinning, splats: splats ? player.count : 0, frameMs: null, poseMs: null,
    frames: player.times ? player.times.length : 1, duration: player.duration,
    bounds: { min: box.min.toArray(), max: box.max.toArray() }, drawn: 0,
  };
  const timed = (t) => { const t0 = performance.now(); player.pose(t); stats.poseMs = performance.now() - t0; };
  const t0 = performance.now();
  player.start(time);
  stats.poseMs = performance.now() - t0;

  const ui = document.getElementById("ui"), play = document.getElementById("play");
  const scrub = document.getElementById("scrub"), label = document.getElementById("frame");
  const overlay = params.get("ui") === "0" ? null : document.getElementById("stats");  // not on screenshots
  const frames = stats.frames, times = player.times;
  const frameOf = (t) => (times ? Math.round((t / Math.max(player.duration, 1e-9)) * (frames - 1)) : 0);
  if (player.duration > 0 && params.get("ui") !== "0") {
    ui.hidden = false;
    scrub.max = String(frames - 1);
    play.textContent = playing ? "Pause" : "Play";
    play.onclick = () => { playing = !playing; play.textContent = playing ? "Pause" : "Play"; };
    scrub.oninput = () => { playing = false; play.textContent = "Play"; time = times[Number(scrub.value)]; timed(time); };
  }
  const what = splats ? `${player.count} splats` : `mesh, ${player.count} vertices`;
  status.textContent = params.get("ui") === "0" ? "" : `${what}${player.duration ? `, ${frames} frames` : ""}`;

  let last = performance.now(), shown = -1, shownAt = 0;
  const recent = [];  // the times of the frames drawn in the last second
  renderer.setAnimationLoop((now) => {
    if (playing) {
      time = (time + (now - last) / 1000) % Math.max(player.duration, 1e-9);
      if (player.skinning !== "cpu") timed(time);  // cheap: the GPU skins
      else if (frameOf(time) !== shown) timed(time);
      if (frameOf(time) !== shown) { shown = frameOf(time); scrub.value = String(shown); label.textContent = String(shown); }
    }
    last = now;
    controls.update();
    renderer.render(scene, camera);
    recent.push(now);
    while (recent.length > 2 && recent[0] < now - 1000) recent.shift();
    if (recent.length > 1) stats.frameMs = (recent[recent.length - 1] - recent[0]) / (recent.length - 1);
    stats.drawn += 1;
    if (overlay && now - shownAt > 250) {
      shownAt = now;
      overlay.textContent = `frame_ms=${stats.frameMs === null ? "-" : stats.frameMs.toFixed(1)}`
        + ` pose_ms=${stats.poseMs.toFixed(1)} skinning=${stats.skinning}`;
    }
  });
  window.dreamwaltzStats = stats;
  window.dreamwaltzViewer = { avatar: player.avatar || null, player, time: () => time, ready: true };
  document.title = "DreamWaltz viewer (ready)";
}

main().catch((err) => { status.textContent = `error: ${err.message}`; document.title = "DreamWaltz viewer (error)"; console.error(err); });
