"""The ComfyUI core nodes our example workflows use, as seen by ComfyUI 0.3.64.

Each entry lists the node's socket inputs, widgets (in the order the frontend
stores them in ``widgets_values``) and outputs, so that ``tools/make_workflows.py``
can lay out UI-format workflows and convert them to the API format, and the
tests can check every link without a running ComfyUI. The ComfyUI integration
test compares this table with the live server's ``/object_info``.

Format per node type::

    {"inputs": [(name, type, optional)],          # sockets, in slot order
     "widgets": [(name, type, extra_values)],     # widget inputs, in widgets_values order;
                                                  # extra_values = frontend-only values that
                                                  # follow it (e.g. LoadImage's "upload")
     "outputs": [(name, type)]}
"""

from __future__ import annotations

CORE_NODES: dict[str, dict] = {
    "UNETLoader": {
        "inputs": [],
        "widgets": [("unet_name", "COMBO", 0), ("weight_dtype", "COMBO", 0)],
        "outputs": [("MODEL", "MODEL")],
    },
    "CLIPLoader": {
        "inputs": [],
        "widgets": [("clip_name", "COMBO", 0), ("type", "COMBO", 0), ("device", "COMBO", 0)],
        "outputs": [("CLIP", "CLIP")],
    },
    "CLIPTextEncode": {
        "inputs": [("clip", "CLIP", False)],
        "widgets": [("text", "STRING", 0)],
        "outputs": [("CONDITIONING", "CONDITIONING")],
    },
    "VAELoader": {
        "inputs": [],
        "widgets": [("vae_name", "COMBO", 0)],
        "outputs": [("VAE", "VAE")],
    },
    "LoadImage": {
        "inputs": [],
        "widgets": [("image", "COMBO", 1)],  # followed by the frontend's "upload" button value
        "outputs": [("IMAGE", "IMAGE"), ("MASK", "MASK")],
    },
    "ImageBatch": {
        "inputs": [("image1", "IMAGE", False), ("image2", "IMAGE", False)],
        "widgets": [],
        "outputs": [("IMAGE", "IMAGE")],
    },
    "CreateVideo": {
        "inputs": [("images", "IMAGE", False), ("audio", "AUDIO", True)],
        "widgets": [("fps", "FLOAT", 0)],
        "outputs": [("VIDEO", "VIDEO")],
    },
    "SaveVideo": {
        "inputs": [("video", "VIDEO", False)],
        "widgets": [("filename_prefix", "STRING", 0), ("format", "COMBO", 0), ("codec", "COMBO", 0)],
        "outputs": [],
    },
    # Frontend-only nodes: never sent to the server (not in the API format).
    "MarkdownNote": {"inputs": [], "widgets": [("text", "STRING", 0)], "outputs": [], "virtual": True},
    "Note": {"inputs": [], "widgets": [("text", "STRING", 0)], "outputs": [], "virtual": True},
}

#: Types the frontend shows as widgets (everything else is a socket).
WIDGET_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO")
