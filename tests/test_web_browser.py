"""The tree view in a real browser on a real ComfyUI (skipped unless COMFYUI_PATH is set).

Starts ComfyUI with this pack (``tests/comfy_server.py``), checks the plan route
over HTTP, then opens the ComfyUI page in headless Chromium (Debian package
``chromium``; skipped when it is not installed) driven through the DevTools
protocol (aiohttp's websocket client, which ComfyUI's environment has): a
TreeScheduler node is added to the graph, the tree view appears on it (the
route was called, the rows are laid out and the tree's colours are painted on
the canvas), and it changes when a widget changes (chunks "2,8" -> eight boxes
at 24 fps, different pixels; a shorter trained chunk length -> the warning
colour); a sampler's measured-time message shows on its level; a sampler's devices list
("cpu,cpu") puts that level's device share, time and speed-up under the tree. A second test
loads every template the pack ships (no missing node type; no two nodes, badges
and title bars included, overlapping; no group title under a node; the note in
the first view), types an invalid ``chunks`` and finds the error drawn as text in
the node, then queues the built-in TempoMaster-Tiny template twice and checks that
the measured times on its tree view are the latest run's only. No JavaScript
error may come from our files.

Run: ``COMFYUI_PATH=/path/to/ComfyUI python -m pytest tests/test_web_browser.py``
with ComfyUI's Python environment (``apt-get install chromium`` for the browser part).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from comfy_server import comfyui_available, free_port, http_get, link_pack, post_json, running_comfyui, stop_process_group

pytestmark = pytest.mark.skipif(not comfyui_available(),
                                reason="set COMFYUI_PATH to a ComfyUI checkout to run the browser test")

PRESET = "6→12→24 fps (4,2,1)"
REFERENCE = dict(blueprint_frames=109, frame_intervals=PRESET, custom_intervals="4,2,1", chunks="auto", fps=24.0,
                 width=832, height=480, memory_budget_gb=80.0)
OK_RGB, WARN_RGB = (0x3B, 0x6E, 0xA8), (0xB8, 0x47, 0x3A)  # box colours of web/tree_view.js
WAIT_S = 45
RUN_WAIT_S = 300  # one run of the tiny template on a CPU


def _chromium() -> str | None:
    for name in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


@pytest.fixture(scope="module")
def comfy_web(tmp_path_factory):
    """ComfyUI with only this pack: yields its base URL."""
    base = tmp_path_factory.mktemp("comfyui_web")
    link_pack(base)
    # a returning user: a new one gets ComfyUI's "Get Started with a Template" dialog on the first page load,
    # which would stay open over whichever test loads the page first
    settings = base / "user" / "default" / "comfy.settings.json"
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text(json.dumps({"Comfy.TutorialCompleted": True}))
    with running_comfyui(base) as (url, _log):
        yield url


def test_plan_route_and_view_files_are_served(comfy_web):
    status, body = post_json(comfy_web + "/api/tempomaster/plan", REFERENCE)
    assert status == 200 and body["chunks"] == [2, 4] and body["cost"]["dit_pflops"] > 0
    status, body = post_json(comfy_web + "/api/tempomaster/plan", dict(REFERENCE, samplers={"devices": ["cpu,cpu"]}))
    assert status == 200 and body["inputs"]["devices"] == [2, 1, 1] and body["devices"]["levels"][0]["items"] == [1, 1]
    status, body = post_json(comfy_web + "/tempomaster/plan", dict(REFERENCE, blueprint_frames=107))
    assert status == 400 and "105 or 109" in body["error"]
    status, view = http_get(comfy_web + "/extensions/tempomaster/tree_view.js")
    assert status == 200 and b"tempomaster_tree" in view
    status, layout = http_get(comfy_web + "/extensions/tempomaster/tree_layout.js")
    assert status == 200 and b"export function layoutTree" in layout


class _DevTools:
    """Minimal Chrome DevTools protocol client over one page's websocket."""

    def __init__(self, ws):
        self.ws = ws
        self.next_id = 0
        self.events: list[dict] = []

    async def call(self, method: str, **params):
        self.next_id += 1
        ident = self.next_id
        await self.ws.send_json({"id": ident, "method": method, "params": params})
        while True:
            msg = await self.ws.receive_json(timeout=60)
            if msg.get("id") == ident:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    async def evaluate(self, expression: str):
        result = await self.call("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"page error in {expression[:80]!r}: {json.dumps(result['exceptionDetails'])[:800]}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, what: str, timeout: float = WAIT_S):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = await self.evaluate(expression)
            if value:
                return value
            await asyncio.sleep(0.25)
        raise AssertionError(f"timed out waiting for {what}: {expression}")

    def our_errors(self) -> list[str]:
        out = []
        for event in self.events:
            if event.get("method") == "Runtime.exceptionThrown":
                text = json.dumps(event["params"])
                if "tree_view" in text or "tree_layout" in text or "tempomaster" in text.lower():
                    out.append(text[:1000])
        return out


# In-page helpers: the node under test is window._tm; pixels of its rectangle on the canvas.
_STATE = """JSON.stringify({
  requests: _tm.tempoTreeView.requests, draws: _tm.tempoTreeView.draws,
  rows: (_tm.tempoTreeView.layout && _tm.tempoTreeView.layout.rows || []).map(r => r.boxes.length),
  tones: (_tm.tempoTreeView.layout && _tm.tempoTreeView.layout.rows || []).map(r => r.tone),
  error: _tm.tempoTreeView.data && _tm.tempoTreeView.data.error || null})"""
_PIXELS = """(() => {
  const c = app.canvas.canvas, ds = app.canvas.ds, r = window.devicePixelRatio || 1;
  const x = Math.round((_tm.pos[0] + ds.offset[0]) * ds.scale * r), y = Math.round((_tm.pos[1] + ds.offset[1]) * ds.scale * r);
  const w = Math.round(_tm.size[0] * ds.scale * r), h = Math.round(_tm.size[1] * ds.scale * r);
  const data = c.getContext('2d').getImageData(x, y, w, h).data;
  let hash = 0, ok = 0, warn = 0;
  const near = (i, rgb) => Math.abs(data[i] - rgb[0]) < 6 && Math.abs(data[i + 1] - rgb[1]) < 6 && Math.abs(data[i + 2] - rgb[2]) < 6;
  for (let i = 0; i < data.length; i += 4) {
    hash = (hash * 31 + data[i] + 7 * data[i + 1] + 13 * data[i + 2]) | 0;
    if (near(i, %s)) ok++;
    if (near(i, %s)) warn++;
  }
  return JSON.stringify({hash, ok, warn});
})()""" % (list(OK_RGB), list(WARN_RGB))


def _set_widget(name: str, value) -> str:
    return (f"(() => {{ const w = _tm.widgets.find(w => w.name === {json.dumps(name)}); w.value = {json.dumps(value)};"
            " w.callback && w.callback(w.value, app.canvas, _tm); app.graph.setDirtyCanvas(true, true); return true; })()")


async def _page_websocket(port: int) -> str:
    deadline = time.monotonic() + WAIT_S
    while True:
        try:
            targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5).read())
            return next(t for t in targets if t.get("type") == "page")["webSocketDebuggerUrl"]
        except (OSError, StopIteration, ValueError):
            if time.monotonic() > deadline:
                raise AssertionError("Chromium's DevTools endpoint did not come up")
            await asyncio.sleep(0.5)


async def _open_comfyui(cdp: "_DevTools", url: str) -> None:
    await cdp.call("Runtime.enable")
    await cdp.call("Page.enable")
    await cdp.call("Page.navigate", url=url + "/")
    await cdp.wait_for("!!(window.app && app.graph && app.canvas && window.LiteGraph && "
                       "LiteGraph.registered_node_types['TempoMasterTreeScheduler'])", "ComfyUI's page")
    for kind in ("keyDown", "keyUp"):  # close the template browser if it opened
        await cdp.call("Input.dispatchKeyEvent", type=kind, key="Escape", code="Escape", windowsVirtualKeyCode=27)


async def _with_page(port: int, url: str, drive) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(await _page_websocket(port), max_msg_size=0) as ws:
            cdp = _DevTools(ws)
            await _open_comfyui(cdp, url)
            await drive(cdp)


async def _drive_tree_view(cdp: "_DevTools") -> None:
    await cdp.evaluate("""(() => { app.graph.clear(); const n = LiteGraph.createNode('TempoMasterTreeScheduler');
        n.pos = [100, 80]; app.graph.add(n); n.setSize([360, n.size[1]]);
        app.canvas.ds.offset = [0, 0]; app.canvas.ds.scale = 1; app.graph.setDirtyCanvas(true, true);
        window._tm = n; return n.widgets.map(w => w.name); })()""")
    names = await cdp.evaluate("_tm.widgets.map(w => w.name)")
    assert names[-1] == "tempomaster_tree" and "length_mode" in names
    for name, value in (("memory_budget_gb", 80.0),):
        await cdp.evaluate(_set_widget(name, value))

    # the view appears: the route was called, three rows laid out, the boxes painted
    state = json.loads(await cdp.wait_for(
        f"(() => {{ const s = {_STATE}; return JSON.parse(s).rows.join() === '1,2,4' && s; }})()",
        "the reference tree"))
    assert state["requests"] >= 1 and state["error"] is None and state["tones"] == ["ok"] * 3
    await asyncio.sleep(0.5)
    before = json.loads(await cdp.evaluate(_PIXELS))
    assert before["ok"] > 200 and before["warn"] == 0, before

    # a widget changes -> a new plan is fetched and drawn
    await cdp.evaluate(_set_widget("chunks", "2,8"))
    state = json.loads(await cdp.wait_for(
        f"(() => {{ const s = {_STATE}; return JSON.parse(s).rows.join() === '1,2,8' && s; }})()",
        "eight chunks at 24 fps"))
    await asyncio.sleep(0.5)
    after = json.loads(await cdp.evaluate(_PIXELS))
    assert after["hash"] != before["hash"] and after["ok"] > 200

    # a shorter trained length: the 109-frame blueprint is over it -> warning colour
    await cdp.evaluate(_set_widget("trained_chunk_frames", 61))
    state = json.loads(await cdp.wait_for(
        f"(() => {{ const s = {_STATE}; return JSON.parse(s).tones[0] === 'warn' && s; }})()",
        "the warning tone"))
    await asyncio.sleep(0.5)
    warned = json.loads(await cdp.evaluate(_PIXELS))
    assert warned["warn"] > 100, warned

    # a sampler's measured-time message (what BlueprintSampler sends with send_sync) shows on its level:
    # the scheduler feeds a Blueprint Sampler, which reports as that node, for the model priced
    await cdp.evaluate("""(() => { const s = LiteGraph.createNode('TempoMasterBlueprintSampler');
        s.pos = [600, 80]; app.graph.add(s); _tm.connect(0, s, 'plan'); window._bp = s; return true; })()""")
    # the sampler's model socket (TEMPO_MODEL,MODEL) takes ComfyUI's own MODEL from Load Diffusion Model
    linked = await cdp.evaluate("""(() => { const u = LiteGraph.createNode('UNETLoader'); u.pos = [100, 700];
        app.graph.add(u); u.connect(0, _bp, 'model'); const i = _bp.inputs.find(x => x.name === 'model');
        const link = i.link != null && app.graph.links[i.link]; const ok = !!link && link.origin_id === u.id;
        app.graph.remove(u); return ok; })()""")
    assert linked, "the frontend refused a MODEL link into the sampler's model input"
    await cdp.evaluate("""(() => { const d = _tm.tempoTreeView.data; const api = app.api || window.comfyAPI.api.api;
        api.dispatchCustomEvent('tempomaster.level_time', {plan_key: d.plan_key, level: 0, seconds: 12,
          estimated_flops: d.cost.levels[0].dit_flops, estimated_pflops: d.cost.levels[0].dit_pflops,
          model_key: d.model.key, prompt_id: 'run-1', node: String(_bp.id)});
        app.graph.setDirtyCanvas(true, true); return true; })()""")
    note = await cdp.wait_for("(() => { const r = _tm.tempoTreeView.layout.rows[0]; return r.measured && r.note; })()",
                              "the measured time on the blueprint row")
    assert note.startswith("measured 12.0 s (est. ")
    assert await cdp.evaluate("_tm.tempoTreeView.layout.rows[2].measuredText.startsWith('~')")  # predicted
    # the chain starts running in another prompt: the old time goes
    await cdp.evaluate("""(() => { const api = app.api || window.comfyAPI.api.api;
        api.dispatchCustomEvent('execution_start', {prompt_id: 'run-2'});
        api.dispatchCustomEvent('executing', String(_bp.id));
        app.graph.setDirtyCanvas(true, true); return true; })()""")
    await cdp.wait_for("(() => _tm.tempoTreeView.layout.rows[0].measured === null)()", "the old time cleared")

    # the sampler lists two devices (its devices widget): the view prices the blueprint on them, the
    # refinement levels (no refiner connected) on one; the footer has each level's share, time and speed-up
    await cdp.evaluate("""(() => { const w = _bp.widgets.find(w => w.name === 'devices'); w.value = 'cpu,cpu';
        w.callback && w.callback(w.value, app.canvas, _bp); app.graph.setDirtyCanvas(true, true); return true; })()""")
    footer = await cdp.wait_for("""(() => { const l = _tm.tempoTreeView.layout;
        return l && l.rows.length && l.rows[0].devicesText === '2 dev' && l.footer.map(f => f.text).join(' '); })()""",
                                "the blueprint on two devices")
    assert "6 fps on 2 devices: the positive and negative passes split" in footer and "12 fps on 1 device" in footer
    assert "x one device" in footer and "slowest device" in footer
    assert await cdp.evaluate("_tm.tempoTreeView.layout.rows[1].devicesText === null")

    # the view's widget is not a workflow value and not sent with the prompt
    serialized = await cdp.evaluate("JSON.stringify(_tm.serialize().widgets_values)")
    assert len(json.loads(serialized)) == len(names) - 1
    assert cdp.our_errors() == []


def _run_in_chromium(url: str, profile, window: str, drive) -> None:
    """Start headless Chromium (skip the test when it is not installed), open ComfyUI at ``url`` and
    run ``drive(cdp)`` on the page; Chromium is stopped afterwards."""
    pytest.importorskip("aiohttp")
    chromium = _chromium()
    if chromium is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    port = free_port()
    cmd = [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           f"--remote-debugging-port={port}", f"--user-data-dir={profile}", f"--window-size={window}", "about:blank"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        asyncio.run(_with_page(port, url, drive))
    finally:
        stop_process_group(proc)


def test_tree_view_appears_and_follows_the_widgets(comfy_web, tmp_path):
    _run_in_chromium(comfy_web, tmp_path / "profile", "1400,1000", _drive_tree_view)


# In-page check of the graph on screen as the frontend laid it out: node boxes with their title bars (getBounding)
# and the badge row above them, group title bars, the note inside the visible area, unknown node types.
_LAYOUT = """(() => {
  const nodes = app.graph.nodes, badge = 22;
  const out = {missing: [], overlaps: [], groups: [], note: null, count: nodes.length};
  const box = (n) => { const b = n.getBounding(); return [b[0], b[1] - badge, b[0] + b[2], b[1] + b[3]]; };
  const meet = (a, b) => a[0] < b[2] && b[0] < a[2] && a[1] < b[3] && b[1] < a[3];
  for (const n of nodes) if (!(n.type in LiteGraph.registered_node_types)) out.missing.push(n.type);
  for (let i = 0; i < nodes.length; i++) for (let j = i + 1; j < nodes.length; j++)
    if (meet(box(nodes[i]), box(nodes[j]))) out.overlaps.push([nodes[i].type, nodes[j].type]);
  for (const g of app.graph.groups) {
    const title = [g.pos[0], g.pos[1], g.pos[0] + g.size[0], g.pos[1] + g.titleHeight];
    for (const n of nodes) if (meet(title, box(n))) out.groups.push([g.title, n.type]);
  }
  const v = app.canvas.visible_area, note = nodes.find((n) => n.type === 'MarkdownNote');
  if (note) {
    const b = box(note);
    out.note = b[0] >= v[0] && b[1] >= v[1] && b[2] <= v[0] + v[2] && b[3] <= v[1] + v[3];
    out.noteBox = Array.from(b).map(Math.round); out.view = Array.from(v).map(Math.round);
  }
  return JSON.stringify(out);
})()"""


def _warn_text_pixels(node: str) -> str:
    """Count of pixels of the view's warning text colour on ``node``'s rectangle of the canvas."""
    return """(() => { const n = %s, c = app.canvas.canvas, ds = app.canvas.ds, r = window.devicePixelRatio || 1;
      const x = Math.round((n.pos[0] + ds.offset[0]) * ds.scale * r);
      const y = Math.round((n.pos[1] + ds.offset[1]) * ds.scale * r);
      const w = Math.round(n.size[0] * ds.scale * r), h = Math.round(n.size[1] * ds.scale * r);
      const d = c.getContext('2d').getImageData(x, y, w, h).data; let k = 0;
      const near = (i, v) => Math.abs(d[i] - v) < 40;
      for (let i = 0; i < d.length; i += 4) if (near(i, 255) && near(i + 1, 138) && near(i + 2, 122)) k++;
      return k; })()""" % node  # COLORS.warnText of web/tree_view.js


def _load_template(name: str) -> str:
    """In-page: open the pack's template ``name`` as the template browser does (``app.loadGraphData``)."""
    from urllib.parse import quote

    return (f"(async () => {{ const r = await fetch('/api/workflow_templates/tempomaster/{quote(name)}.json');"
            f" await app.loadGraphData(await r.json(), true, true, {json.dumps(name)}); return true; }})()")


async def _drive_templates(cdp: "_DevTools", url: str) -> None:
    templates = json.loads(urllib.request.urlopen(url + "/workflow_templates", timeout=30).read())["tempomaster"]
    shipped = sorted(path.stem for path in (Path(__file__).resolve().parents[1] / "example_workflows").glob("*.json"))
    assert sorted(templates) == shipped  # every shipped example workflow is served, and nothing else
    dialogs = "JSON.stringify(Array.from(document.querySelectorAll('.p-dialog')).map((d) => d.innerText.slice(0, 200)))"
    for name in templates:
        await cdp.wait_for(f"{dialogs} === '[]'", "no dialog open")
        await cdp.evaluate(_load_template(name))
        await asyncio.sleep(2.0)  # a few frames: the tree view plans, draws and grows its node
        layout = json.loads(await cdp.evaluate(_LAYOUT))
        assert layout["count"] >= 10 and layout["missing"] == [], (name, layout)
        assert layout["overlaps"] == [] and layout["groups"] == [] and layout["note"] is True, json.dumps(layout)
        if "14B" in name:  # the Missing Models dialog names the DiT with its folder
            try:
                listed = await cdp.wait_for("(() => Array.from(document.querySelectorAll('.p-dialog'))"
                                            ".map((d) => d.innerText).find((t) => t.includes('Missing Models')))()",
                                            "the Missing Models dialog")
            except AssertionError as err:
                raise AssertionError(f"{err}; dialogs: {await cdp.evaluate(dialogs)}") from None
            assert "diffusion_models / wan_video_dit_bf16.bin" in listed and "vae / wan_2.1_vae.safetensors" in listed
        for kind in ("keyDown", "keyUp"):
            await cdp.call("Input.dispatchKeyEvent", type=kind, key="Escape", code="Escape", windowsVirtualKeyCode=27)
        await asyncio.sleep(0.5)

    # the tiny template: an invalid chunks value is drawn as text where the tree was
    tiny = next(t for t in templates if "Tiny" in t)
    await cdp.evaluate(_load_template(tiny))
    await cdp.evaluate("""(() => { window._tm = app.graph.nodes.find((n) => n.type === 'TempoMasterTreeScheduler');
        app.canvas.ds.offset = [-_tm.pos[0] + 20, -_tm.pos[1] + 60]; app.canvas.ds.scale = 1; return true; })()""")
    priced = await cdp.wait_for("(() => { const d = _tm.tempoTreeView.data; return d && d.model && d.model.label; })()",
                                "the tiny plan")
    assert priced == "TempoMaster-Tiny (built-in)"  # the loader's model, not the 14B
    await cdp.evaluate(_set_widget("chunks", "abc"))
    lines = json.loads(await cdp.wait_for(
        "(() => { const l = _tm.tempoTreeView.layout; return l && l.error && JSON.stringify(l.footer); })()",
        "the plan error"))
    assert lines[0]["text"].startswith("Plan error: chunks: 'abc'")
    assert all(isinstance(line["y"], (int, float)) for line in lines)
    await asyncio.sleep(0.5)
    assert await cdp.evaluate(_warn_text_pixels("_tm")) > 30  # painted, in the warning colour
    await cdp.evaluate(_set_widget("chunks", "2,4"))
    await cdp.wait_for("(() => { const l = _tm.tempoTreeView.layout; return l && !l.error && l.rows.length === 3; })()",
                       "the tree again")

    # two runs: the tree view shows the latest run's measured times only
    async def measured(condition: str, what: str) -> dict:
        """Wait until ``condition`` holds for ``s`` = the view's measured run id and levels; returns ``s``."""
        state = ("{run: _tm.tempoTreeView.measured.runId, "
                 "levels: _tm.tempoTreeView.measured.reports.map((r) => r.level)}")
        check = f"(() => {{ const s = {state}; return ({condition}) && JSON.stringify(s); }})()"
        return json.loads(await cdp.wait_for(check, what, timeout=RUN_WAIT_S))

    queue = "(async () => { await app.queuePrompt(0, 1); return true; })()"
    await cdp.evaluate(queue)
    first = await measured("s.levels.length === 3", "the first run's three levels")
    await cdp.evaluate("""(() => { const bp = app.graph.nodes.find((n) => n.type === 'TempoMasterBlueprintSampler');
        const seed = bp.widgets.find((w) => w.name === 'seed'); seed.value = seed.value + 1; return true; })()""")
    await cdp.evaluate(queue)
    await measured(f"s.run !== {json.dumps(first['run'])} && s.levels.length < 3",
                   "the old times cleared when the new run starts")
    second = await measured("s.levels.length === 3", "the second run's three levels")
    assert second["run"] != first["run"]
    rows = json.loads(await cdp.evaluate("JSON.stringify(_tm.tempoTreeView.layout.rows.map(r => r.measuredText))"))
    assert all(text.startswith("measured ") and "another model" not in text for text in rows), rows
    assert cdp.our_errors() == []


def test_templates_errors_and_runs_in_the_browser(comfy_web, tmp_path):
    from nodes.builtin_nodes import tiny_available

    if not tiny_available():
        pytest.skip("the built-in TempoMaster-Tiny files are missing")
    # 1280x720: the window the templates' first view is laid out for (tools/workflow_tools.VIEWPORT)
    _run_in_chromium(comfy_web, tmp_path / "profile", "1280,720", lambda cdp: _drive_templates(cdp, comfy_web))
