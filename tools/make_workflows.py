"""Build the example workflows, their API-format test copies and their thumbnails.

Usage (from the repository root)::

    python3 tools/make_workflows.py            # write example_workflows/*.json + *.jpg, tests/workflows_api/*.json
    python3 tools/make_workflows.py --check    # exit 1 if the files on disk differ from what would be written

The workflows are laid out here in code (one function per workflow) so that
link ids, slot indices and widget orders always match the node definitions
(``nodes/``) and ``tools/comfy_core_nodes.py``. Thumbnails are drawn with PIL:
the workflow's tree (one row per level, chunks as boxes, condition frames as
ticks) computed by ``tempomaster_core.plan.TreePlan``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import uuid

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from tools.workflow_tools import node_spec, ui_to_api, validate_ui  # noqa: E402

EXAMPLES_DIR = os.path.join(_ROOT, "example_workflows")
API_DIR = os.path.join(_ROOT, "tests", "workflows_api")

DIT_FILE = "tempomaster_dit_bf16.safetensors"
UMT5_FILE = "umt5_xxl_fp16.safetensors"
VAE_FILE = "wan_2.1_vae.safetensors"
_REPACKAGED = "https://huggingface.co/Comfy-Org/Wan_2.1_ComfyUI_repackaged/resolve/main/split_files"
NEGATIVE_PROMPT = (
    "jittery, shaky, fliker, unstable, static, ultra slow motion, distorted, blurry details, many people in the "
    "background worst quality, low quality, ugly, poorly drawn legs, poorly drawn face, three arms, deformed, "
    "mutilated, disfigured, malformed limbs, fused fingers, three legs"
)  # the reference benchmark's negative prompt
PRESET_421 = "6→12→24 fps (4,2,1)"

NOTE_FILES = """## TempoMaster: files to download

| File | Put it in |
|---|---|
| TempoMaster DiT: `wan_video_dit_bf16.bin` from the Hugging Face repo **Scottttttyy/TempoMaster**, converted with `python -m tempomaster_core.convert wan_video_dit_bf16.bin tempomaster_dit_bf16.safetensors` (the .bin also loads as is) | `ComfyUI/models/diffusion_models/` |
| `umt5_xxl_fp16.safetensors` (or `umt5_xxl_fp8_e4m3fn_scaled.safetensors`) from **Comfy-Org/Wan_2.1_ComfyUI_repackaged**, `split_files/text_encoders` | `ComfyUI/models/text_encoders/` |
| `wan_2.1_vae.safetensors` from **Comfy-Org/Wan_2.1_ComfyUI_repackaged**, `split_files/vae` | `ComfyUI/models/vae/` |

Then press **R** (refresh) and pick the files in the three loaders.

**Memory**: the 14B DiT needs ~28.6 GB in bf16 plus activations (the 24 fps level with 4 parallel chunks and CFG is the peak; lower *max_parallel_chunks* to trade speed for memory, enable *tiled_vae* if the VAE runs out of memory). An 80 GB GPU runs the defaults.
"""

NOTE_I2V = NOTE_FILES + """
**This workflow** = the reference defaults: a 109-frame blueprint at 6 fps (50 steps, shift 5) conditioned on your image at frame 0, refined to 218 frames at 12 fps and 436 frames at 24 fps (32 steps, shift 3 each), cfg 8 with APG. Size: the plan's 832x480 area with your image's aspect (as the reference). Replace *example.png* with your image and write what should happen in the prompt.
"""

NOTE_T2V = NOTE_FILES + """
**This workflow**: text-to-video, no condition frame (the MultiMaskCondition node is not needed). 109 frames at 6 fps -> 436 frames at 24 fps, 832x480. The released model was trained mostly for image-to-video; text-to-video is the consistent extension (all-zero masks).
"""

NOTE_FLF = NOTE_FILES + """
**This workflow**: first and last frame. The two images are batched (Batch Images) and placed at blueprint positions `0,-1`, resized to cover 832x480 and centre-cropped. The blueprint interpolates between them at 6 fps, then the refiners raise it to 24 fps.
"""


class Graph:
    """Minimal UI-format workflow builder (ids, slots and link table kept consistent)."""

    def __init__(self, name: str):
        self.name = name
        self.nodes: list[dict] = []
        self.links: list[list] = []
        self.groups: list[dict] = []

    def add(self, node_type: str, pos, widgets: list, size=None, title=None, color=None, bgcolor=None,
            models=None) -> int:
        """Add a node with ``widgets_values`` ``widgets``; returns its id."""
        spec = node_spec(node_type)
        node_id = len(self.nodes) + 1
        node = {
            "id": node_id,
            "type": node_type,
            "pos": list(pos),
            "size": list(size or [320, 120]),
            "flags": {},
            "order": 0,
            "mode": 0,
            "inputs": [
                dict({"name": n, "type": t, "link": None}, **({"shape": 7} if optional else {}))
                for n, t, optional in spec["inputs"]
            ],
            "outputs": [{"name": n, "type": t, "slot_index": i, "links": []} for i, (n, t) in enumerate(spec["outputs"])],
            "properties": {} if spec.get("virtual") else {"Node name for S&R": node_type},
            "widgets_values": list(widgets),
        }
        if models:
            node["properties"]["models"] = models
        if title:
            node["title"] = title
        if color:
            node["color"], node["bgcolor"] = color, bgcolor
        self.nodes.append(node)
        return node_id

    def connect(self, src: int, output: str, dst: int, input_name: str) -> int:
        """Link output ``output`` of ``src`` to input (socket or widget) ``input_name`` of ``dst``."""
        src_node, dst_node = self.nodes[src - 1], self.nodes[dst - 1]
        slot = next(i for i, o in enumerate(src_node["outputs"]) if o["name"] == output)
        kind = src_node["outputs"][slot]["type"]
        link_id = len(self.links) + 1
        names = [i["name"] for i in dst_node["inputs"]]
        if input_name in names:
            dst_slot = names.index(input_name)
        else:  # a widget fed by a link: the frontend appends a socket carrying the widget's name
            dst_node["inputs"].append({"name": input_name, "type": kind, "widget": {"name": input_name}, "link": None})
            dst_slot = len(dst_node["inputs"]) - 1
        dst_node["inputs"][dst_slot]["link"] = link_id
        src_node["outputs"][slot]["links"].append(link_id)
        self.links.append([link_id, src, slot, dst, dst_slot, kind])
        return link_id

    def group(self, title: str, bounding) -> None:
        """Add a titled group box; ``bounding`` = ``[x, y, width, height]`` in canvas units."""
        self.groups.append({"id": len(self.groups) + 1, "title": title, "bounding": list(bounding),
                            "color": "#3f789e", "font_size": 24, "flags": {}})

    def _orders(self) -> None:
        """Execution order the frontend stores: a topological order of the link graph."""
        deps = {n["id"]: set() for n in self.nodes}
        for _, src, _, dst, _, _ in self.links:
            deps[dst].add(src)
        order, done = [], set()
        while len(order) < len(self.nodes):
            ready = sorted(i for i in deps if i not in done and deps[i] <= done)
            order.extend(ready)
            done.update(ready)
        for position, node_id in enumerate(order):
            self.nodes[node_id - 1]["order"] = position

    def to_json(self) -> dict:
        """The UI-format workflow dict (execution orders filled in, unlinked outputs ``null``)."""
        self._orders()
        for node in self.nodes:
            for out in node["outputs"]:
                if not out["links"]:
                    out["links"] = None
        return {
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, "tempomaster/example_workflows/" + self.name)),
            "revision": 0,
            "last_node_id": len(self.nodes),
            "last_link_id": len(self.links),
            "nodes": self.nodes,
            "links": self.links,
            "groups": self.groups,
            "config": {},
            "extra": {"ds": {"scale": 0.75, "offset": [40, 40]}},
            "version": 0.4,
        }


def _models(name: str, url: str, directory: str) -> list[dict]:
    """``properties.models`` entry: the frontend offers to download missing files from ``url``."""
    return [{"name": name, "url": url, "directory": directory}]


def _common(g: Graph, prompt: str, note: str) -> dict:
    """Loaders, prompts, plan, the three level nodes and the video output; returns node ids."""
    ids = {}
    ids["note"] = g.add("MarkdownNote", (-480, 0), [note], size=[440, 620], title="Read me: files and memory")
    # no "models" entry for the DiT: the frontend requires a download URL there, and the
    # release is a .bin to convert (see the note), not a file it could fetch as is
    ids["model"] = g.add("TempoMasterLoadModel", (0, 0), [DIT_FILE, "bf16", "sdpa"], size=[340, 106])
    ids["clip"] = g.add("CLIPLoader", (0, 140), [UMT5_FILE, "wan", "default"], size=[340, 106],
                        models=_models(UMT5_FILE, f"{_REPACKAGED}/text_encoders/{UMT5_FILE}", "text_encoders"))
    ids["vae"] = g.add("VAELoader", (0, 280), [VAE_FILE], size=[340, 58],
                       models=_models(VAE_FILE, f"{_REPACKAGED}/vae/{VAE_FILE}", "vae"))
    ids["pos"] = g.add("CLIPTextEncode", (380, 0), [prompt], size=[420, 160], title="Prompt",
                       color="#232", bgcolor="#353")
    ids["neg"] = g.add("CLIPTextEncode", (380, 200), [NEGATIVE_PROMPT], size=[420, 160], title="Negative prompt",
                       color="#322", bgcolor="#533")
    ids["plan"] = g.add("TempoMasterTreeScheduler", (0, 400), [109, PRESET_421, "4,2,1", "auto", 24.0, 832, 480],
                        size=[340, 250])
    g.connect(ids["clip"], "CLIP", ids["pos"], "clip")
    g.connect(ids["clip"], "CLIP", ids["neg"], "clip")

    ids["blueprint"] = g.add("TempoMasterBlueprintSampler", (860, 0),
                             [0, "fixed", 50, 5.0, 8.0, "apg", False], size=[320, 330],
                             title="Blueprint 6 fps (TempoMaster)")
    ids["refine12"] = g.add("TempoMasterFrameRateRefiner", (1220, 0),
                            [0, "fixed", 32, 3.0, 8.0, "apg", 0, False], size=[320, 350],
                            title="Refine to 12 fps (TempoMaster)")
    ids["refine24"] = g.add("TempoMasterFrameRateRefiner", (1580, 0),
                            [0, "fixed", 32, 3.0, 8.0, "apg", 0, False], size=[320, 350],
                            title="Refine to 24 fps (TempoMaster)")
    for node in ("blueprint", "refine12", "refine24"):
        g.connect(ids["model"], "model", ids[node], "model")
        g.connect(ids["pos"], "CONDITIONING", ids[node], "positive")
        g.connect(ids["neg"], "CONDITIONING", ids[node], "negative")
        g.connect(ids["vae"], "VAE", ids[node], "vae")
    g.connect(ids["plan"], "plan", ids["blueprint"], "plan")
    g.connect(ids["blueprint"], "level", ids["refine12"], "level")
    g.connect(ids["refine12"], "level", ids["refine24"], "level")

    ids["video"] = g.add("CreateVideo", (1580, 400), [24.0], size=[270, 78])
    ids["save"] = g.add("SaveVideo", (1580, 520), ["video/TempoMaster", "auto", "auto"], size=[460, 420])
    g.connect(ids["refine24"], "images", ids["video"], "images")
    g.connect(ids["refine24"], "fps", ids["video"], "fps")
    g.connect(ids["video"], "VIDEO", ids["save"], "video")

    g.group("Models", [-10, -40, 360, 400])
    g.group("Blueprint, then one refiner per level", [850, -40, 1060, 420])
    return ids


def image_to_long_video() -> dict:
    """(1) Image-to-long-video with the reference defaults (109 @ 6 fps -> 436 @ 24 fps)."""
    g = Graph("image_to_long_video")
    ids = _common(g, "The scene comes to life with natural, continuous motion; the camera slowly follows the "
                     "main subject.", NOTE_I2V)
    image = g.add("LoadImage", (380, 420), ["example.png", "image"], size=[320, 330], title="First frame")
    cond = g.add("TempoMasterMultiMaskCondition", (380, 790), ["0", "plan area, first image's aspect (reference)"],
                 size=[400, 110])
    g.connect(ids["plan"], "plan", cond, "plan")
    g.connect(image, "IMAGE", cond, "images")
    g.connect(cond, "condition", ids["blueprint"], "condition")
    return g.to_json()


def text_to_video() -> dict:
    """(2) Text-to-video: no condition frame."""
    g = Graph("text_to_video")
    _common(g, "A golden retriever runs along a sunny beach, waves rolling in behind it, the camera tracking "
               "alongside at dog height.", NOTE_T2V)
    return g.to_json()


def first_last_frame() -> dict:
    """(3) First-and-last-frame: two images at blueprint positions 0 and -1."""
    g = Graph("first_last_frame")
    ids = _common(g, "A smooth, continuous transition from the first image to the last one, natural motion.",
                  NOTE_FLF)
    first = g.add("LoadImage", (380, 420), ["example.png", "image"], size=[300, 320], title="First frame")
    last = g.add("LoadImage", (380, 780), ["example.png", "image"], size=[300, 320], title="Last frame")
    batch = g.add("ImageBatch", (720, 600), [], size=[200, 46])
    cond = g.add("TempoMasterMultiMaskCondition", (720, 700), ["0,-1", "plan size (resize + centre crop)"],
                 size=[400, 110])
    g.connect(first, "IMAGE", batch, "image1")
    g.connect(last, "IMAGE", batch, "image2")
    g.connect(ids["plan"], "plan", cond, "plan")
    g.connect(batch, "IMAGE", cond, "images")
    g.connect(cond, "condition", ids["blueprint"], "condition")
    return g.to_json()


WORKFLOWS = {
    "image_to_long_video": (image_to_long_video, "Image to long video", "109 frames @ 6 fps -> 436 @ 24 fps"),
    "text_to_video": (text_to_video, "Text to video", "blueprint 6 fps -> 12 -> 24 fps"),
    "first_last_frame": (first_last_frame, "First + last frame", "keyframes at 0 and -1"),
}


def thumbnail(title: str, subtitle: str, condition_positions: tuple = ()) -> bytes:
    """JPEG bytes (512x384) drawing the reference tree: one row per level, chunks as
    boxes over the same time span, condition frames as ticks."""
    from PIL import Image, ImageDraw, ImageFont

    from tempomaster_core.plan import TreePlan

    plan = TreePlan(109, (4, 2, 1), height=480, width=832)
    width, height = 512, 384
    img = Image.new("RGB", (width, height), (22, 24, 30))
    draw = ImageDraw.Draw(img)
    big, small = ImageFont.load_default(size=30), ImageFont.load_default(size=17)
    draw.text((24, 20), "TempoMaster", font=big, fill=(240, 240, 245))
    draw.text((24, 60), title, font=small, fill=(120, 200, 255))
    draw.text((24, 84), subtitle, font=small, fill=(170, 170, 180))
    left, right, top, row_h = 110, width - 24, 130, 70
    colours = [(235, 160, 60), (110, 190, 120), (90, 150, 235)]
    for row, level in enumerate(plan.levels):
        y0 = top + row * row_h
        draw.text((24, y0 + 14), f"{level.fps:g} fps", font=small, fill=(220, 220, 225))
        span = right - left
        for c in range(level.num_chunks):
            start, stop = level.chunk_range(c)
            x0 = left + span * start / level.num_frames
            x1 = left + span * stop / level.num_frames
            draw.rectangle([x0 + 2, y0 + 8, x1 - 2, y0 + 44], fill=colours[row], outline=(20, 20, 20))
            for pixel, _ in level.chunk_conditions(c):
                xt = left + span * (start + pixel) / level.num_frames
                draw.line([xt, y0 + 44, xt, y0 + 52], fill=(240, 240, 240))
        if row == 0:
            for pos in condition_positions:
                index = pos % level.num_frames
                xt = left + span * index / level.num_frames
                draw.polygon([(xt, y0 + 2), (xt - 7, y0 - 10), (xt + 7, y0 - 10)], fill=(255, 80, 80))
    draw.text((24, height - 34), "blueprint -> parallel chunks per level", font=small, fill=(140, 140, 150))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=88)
    return buf.getvalue()


def build() -> dict[str, bytes]:
    """All files to write: ``{path: bytes}``."""
    files: dict[str, bytes] = {}
    marks = {"image_to_long_video": (0,), "text_to_video": (), "first_last_frame": (0, -1)}
    for name, (make, title, subtitle) in WORKFLOWS.items():
        ui = make()
        problems = validate_ui(ui)
        if problems:
            raise SystemExit(f"{name}: invalid workflow:\n  " + "\n  ".join(problems))
        files[os.path.join(EXAMPLES_DIR, name + ".json")] = (json.dumps(ui, indent=2, ensure_ascii=False) + "\n").encode()
        files[os.path.join(API_DIR, name + ".json")] = (json.dumps(ui_to_api(ui), indent=2, ensure_ascii=False) + "\n").encode()
        files[os.path.join(EXAMPLES_DIR, name + ".jpg")] = thumbnail(title, subtitle, marks[name])
    return files


def main(argv=None) -> int:
    """Write (or with ``--check`` compare) the generated files; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing (JSON files only)")
    args = parser.parse_args(argv)
    files = build()
    stale = []
    for path, data in files.items():
        if args.check:
            if path.endswith(".json") and (not os.path.exists(path) or open(path, "rb").read() != data):
                stale.append(path)
            continue
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as fh:
            fh.write(data)
        print("wrote", os.path.relpath(path, _ROOT))
    if stale:
        print("out of date (run python3 tools/make_workflows.py):", *stale, sep="\n  ")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
