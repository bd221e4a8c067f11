// Layout of the tree view from real route output (fixtures written by tests/test_plan_route.py).
// Run: node --test web/tests/
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import {
  WIDGET_NAMES, formatGib, formatPflops, formatSeconds, layoutTree, matchMeasured, predictSeconds, requestFromWidgets,
  sameModel, wrapText,
} from "../tree_layout.js";
import { TREE_SCHEDULER_WIDGETS } from "../scheduler_schema.js";

const here = dirname(fileURLToPath(import.meta.url));
const fixture = (name) => JSON.parse(readFileSync(join(here, "fixtures", `${name}.json`), "utf8"));

// geometry chosen so positions are easy to work out by hand: the time axis runs from x=100 to x=300
const STYLE = { width: 400, padding: 0, labelWidth: 100, rightWidth: 100, headerHeight: 20, rowHeight: 30, rowGap: 10,
  barHeight: 14, lineHeight: 10, charWidth: 5 };
const close = (a, b, eps = 1e-9) => assert.ok(Math.abs(a - b) < eps, `${a} != ${b}`);

test("reference tree: one row per level, chunks as boxes on a shared time axis", () => {
  const { response } = fixture("reference");
  const layout = layoutTree(response, { style: STYLE });
  assert.equal(layout.error, null);
  assert.deepEqual(layout.rows.map((r) => r.label), ["6 fps", "12 fps", "24 fps"]);
  assert.deepEqual(layout.rows.map((r) => r.boxes.length), [1, 2, 4]);
  // 109 frames at 6 fps = 218 at 12 fps = 436 at 24 fps = 18.17 s over 200 px
  close(layout.axis.seconds, 109 / 6);
  const [bp, l12, l24] = layout.rows;
  close(bp.boxes[0].x, 100); close(bp.boxes[0].w, 200);
  assert.deepEqual(l12.boxes.map((b) => Math.round(b.x * 1e6) / 1e6), [100, 200]);
  assert.deepEqual(l24.boxes.map((b) => Math.round(b.x * 1e6) / 1e6), [100, 150, 200, 250]);
  for (const box of l24.boxes) { close(box.w, 50); close(box.validW, 50); }
  // rows stacked: header 20, then 40 px per level
  assert.deepEqual(layout.rows.map((r) => r.y), [20, 60, 100]);
  assert.ok(layout.rows.every((r) => r.tone === "ok" && r.warnings.length === 0));
  assert.deepEqual(layout.rows.map((r) => r.chunkText), ["1×109", "2×109", "4×109"]);
  assert.equal(l24.sublabel, "436 f · 18.2 s · 4×109");
  assert.equal(l24.note, null);
});

test("condition frames are marked where they are in time", () => {
  const { response } = fixture("reference");
  const layout = layoutTree(response, { style: STYLE });
  const [bp, l12, l24] = layout.rows;
  assert.equal(bp.marks.length, 0); // the blueprint's own condition frames are not part of the plan
  // 12 fps: every frame of the 6 fps level at an even pixel, plus chunk boundaries: 55 + 56 marks
  assert.equal(l12.marks.length, 55 + 56);
  const mark = l12.marks.find((m) => m.frame === 2);
  assert.equal(mark.source, 1);
  close(mark.x, 100 + (2 / 12) * (200 / (109 / 6)));
  // frame 8 at 24 fps and frame 4 at 12 fps are the same instant
  close(l24.marks.find((m) => m.frame === 8).x, l12.marks.find((m) => m.frame === 4).x);
  // the boundary frame of the second 12 fps chunk repeats frame 54 of the level above (reference rule)
  assert.deepEqual(l12.marks.filter((m) => m.frame === 109).map((m) => m.source), [54]);
});

test("cost and memory per level and in the header and footer", () => {
  const { response } = fixture("reference");
  const layout = layoutTree(response, { style: STYLE });
  const costs = response.cost.levels;
  assert.deepEqual(layout.rows.map((r) => r.right), costs.map((c) => formatPflops(c.dit_pflops)));
  assert.deepEqual(layout.rows.map((r) => r.rightSub), costs.map((c) => formatGib(c.peak_bytes)));
  assert.match(layout.header.text, /^18\.2 s at 24 fps · 1272 PF · peak /);
  assert.ok(layout.footer.some((l) => /one full-sequence pass: 2830 PF \(2\.2× the tree\)/.test(l.text)));
  // one sentence per level's choice, wrapped: the 60 GiB budget makes the planner run the 24 fps chunks two at a time
  const text = layout.footer.map((l) => l.text).join(" ");
  assert.ok(text.includes("12 fps: 2 chunks of 109 frames, the only split within the limits (as the reference splits it)."));
  assert.ok(text.includes("24 fps: 4 chunks of 109 frames") && text.includes("set max_parallel_chunks to 2"));
  assert.ok(!/L\d:|×109 —|= reference/.test(text), text); // no shorthand
  // no model was named in the request: the drawing says what it priced, as a warning
  assert.equal(layout.footer[0].tone, "warn");
  assert.ok(text.startsWith("⚠ no Load TempoMaster Model feeds the samplers of this plan: priced as the 14B release. "));
  // the drawing is as tall as its last footer line (padding 0 here)
  assert.equal(layout.height, layout.footer[layout.footer.length - 1].y);
});

test("a plan over the trained length is drawn in the warning tone", () => {
  const { response } = fixture("twenty_seconds");
  const layout = layoutTree(response, { style: STYLE });
  assert.deepEqual(layout.rows.map((r) => r.tone), ["warn", "ok", "ok"]);
  assert.deepEqual(layout.rows[0].warnings, ["chunks of 121 frames, over the trained 109"]);
  assert.equal(layout.rows[0].note, "chunks of 121 frames, over the trained 109");
  assert.equal(layout.rows[0].noteTone, "warn");
  // the note ends before the right column (x = 300 here)
  const row = layout.rows[0];
  close(row.noteX + row.noteMaxWidth, 300);
  assert.equal(layout.rows[0].boxes[0].tone, "warn");
  assert.equal(layout.header.tone, "warn");
  assert.ok(layout.footer.some((l) => l.tone === "warn" && l.text.startsWith("⚠ the blueprint has 121 frames")));
  // 5 chunks of 97 frames at 24 fps for 484 frames: the last chunk holds 96 real frames
  const last = layout.rows[2].boxes[4];
  assert.equal(last.stop - last.start, 96);
  close(last.validW / last.w, 96 / 97);
});

test("the model linked to the scheduler sets the training limits the rows are drawn against, and the footer says so", () => {
  // the built-in model's tree: with its 25-frame clips the 12 and 24 fps levels take 2 and 4 chunks of 25 frames
  const linked = layoutTree(fixture("tiny_model_limits").response, { style: STYLE });
  assert.deepEqual(linked.rows.map((r) => r.chunkText), ["1×25", "2×25", "4×25"]);
  assert.ok(linked.rows.every((r) => r.tone === "ok"));
  const said = linked.footer.filter((l) => l.text.startsWith("Training limits from the connected model"));
  assert.equal(said.length, 1);
  assert.equal(said[0].tone, "info");
  // linked to a node the view cannot read: the widget's 109 frames are drawn (one chunk per level), in the warning tone
  const pending = layoutTree(fixture("limits_pending").response, { style: STYLE });
  assert.deepEqual(pending.rows.map((r) => r.chunkText), ["1×25", "1×53", "1×101"]);
  const text = pending.footer.map((l) => l.text).join(" ");
  assert.ok(text.includes("⚠ Training limits drawn from the trained_chunk_frames widget"), text);
  assert.ok(pending.footer.some((l) => l.tone === "warn" && l.text.startsWith("⚠ Training limits")));
});

test("a minute shows the continuation proposal: segments, frames each, cost against one tree and a full pass", () => {
  const { response } = fixture("sixty_seconds");
  const layout = layoutTree(response, { style: STYLE });
  const proposal = response.continuation;
  assert.deepEqual(proposal.segments.map((s) => s.frames), [600, 600, 480]);
  const text = layout.footer.map((l) => l.text).join(" ");
  assert.match(text, /make it as 3 segments of 600 \+ 600 \+ 480 frames/);
  // the PFLOPs drawn are the route's, rounded as the line words them
  for (const key of ["continuation", "one_tree", "full_sequence"]) {
    assert.ok(text.includes(`${Math.round(proposal[key].dit_pflops)} PFLOPs`), key);
  }
  assert.match(text, /one tree \(16, 8, 4, 2, 1\) \d+ PFLOPs ~[\d.]+ h \(untrained: 1\.5 fps/);
  assert.ok(layout.footer.filter((l) => /segments of|assumed 400 TFLOP\/s/.test(l.text)).every((l) => l.tone === "info"));
  // the reference tree (18.2 s) fits one trained tree: no proposal
  const reference = layoutTree(fixture("reference").response, { style: STYLE });
  assert.equal(fixture("reference").response.continuation, null);
  assert.ok(!reference.footer.some((l) => /segments of/.test(l.text)));
});

test("the continuation proposal is drawn with the continuation settings of the model linked to the scheduler", () => {
  // the built-in model's 25.5 s: nine segments of its own 100-frame tree (37 frames = 1.54 s of context + 63 new
  // frames each), then one of 37 + 8 frames
  const { response } = fixture("tiny_model_continuation");
  const proposal = response.continuation;
  assert.deepEqual(proposal.segments.map((s) => s.frames), [...Array(9).fill(100), 45]);
  assert.deepEqual(proposal.settings, { context_seconds: 37 / 24, new_frames: 63, source: "model", declared: true });
  const text = layoutTree(response, { style: STYLE }).footer.map((l) => l.text).join(" ");
  assert.match(text, /make it as 10 segments of 9 x 100 \+ 1 x 45 frames/);
  assert.match(text, /1\.54 s of context \+ up to 63 new frames each, the connected model's continuation settings/);
  // nothing linked (the sixty_seconds request): the paper's 5 s + 480 frames, said so
  const paper = layoutTree(fixture("sixty_seconds").response, { style: STYLE }).footer.map((l) => l.text).join(" ");
  assert.match(paper, /5 s of context \+ up to 480 new frames each, the paper's continuation settings, as no model/);
});

test("memory over the budget is a warning too", () => {
  const { response } = fixture("reference");
  const tight = { ...response, inputs: { ...response.inputs, memory_budget_bytes: 40 * 1024 ** 3 } };
  const layout = layoutTree(tight, { style: STYLE });
  assert.deepEqual(layout.rows.map((r) => r.tone), ["ok", "warn", "warn"]);
  assert.match(layout.rows[1].warnings[0], /^peak \d+\.\d GiB, over the budget 40\.0 GiB$/);
});

test("the padding of the last chunk is not drawn as video", () => {
  const { response } = fixture("padded");
  const layout = layoutTree(response, { style: STYLE });
  const level = layout.rows[1]; // 20 frames at 24 fps in 3 chunks of 9: the last has 2 real frames
  assert.deepEqual(level.boxes.map((b) => [b.start, b.stop]), [[0, 9], [9, 18], [18, 20]]);
  const pxPerSecond = 200 / (27 / 24); // the axis covers the padded 27 frames
  close(level.boxes[2].validW, (2 / 24) * pxPerSecond);
  close(level.boxes[2].w, (9 / 24) * pxPerSecond);
  close(layout.axis.videoEndX, 100 + (20 / 24) * pxPerSecond);
});

test("an error payload is drawn as text in place of the tree, every line at its own height", () => {
  for (const [name, pattern] of [["error", /105 or 109/], ["bad_chunks", /chunks: 'abc'/]]) {
    const { status, response } = fixture(name);
    assert.equal(status, 400);
    const layout = layoutTree(response, { style: { ...STYLE, padding: 8, width: 200 } });
    assert.equal(layout.rows.length, 0);
    assert.equal(layout.error, response.error);
    assert.ok(layout.footer.length >= 2, "wrapped to the width"); // 200 px at 5 px per character
    assert.ok(layout.footer.every((l) => l.tone === "warn"));
    assert.match(layout.footer.map((l) => l.text).join(" "), pattern);
    assert.match(layout.footer[0].text, /^Plan error: /);
    // painted at y = line.y: every line has a baseline, one line height apart, inside the drawing
    const ys = layout.footer.map((l) => l.y);
    assert.ok(ys.every(Number.isFinite), JSON.stringify(ys));
    assert.equal(ys[0], 8 + 10);
    for (let k = 1; k < ys.length; k++) assert.equal(ys[k] - ys[k - 1], 10);
    assert.equal(layout.height, ys[ys.length - 1] + 8);
  }
  const loading = layoutTree(null);
  assert.equal(loading.footer[0].text, "Planning…");
  assert.ok(Number.isFinite(loading.footer[0].y) && loading.footer[0].y < loading.height);
});

test("measured level times are matched by plan key and predict the rest", () => {
  const { response } = fixture("reference");
  const costs = response.cost.levels;
  const key = response.model.key;
  const reports = [
    { plan_key: response.plan_key, level: 0, seconds: 100, estimated_flops: costs[0].dit_flops, estimated_pflops: costs[0].dit_pflops,
      model_key: key },
    { plan_key: "other|tree", level: 1, seconds: 1, model_key: key },
  ];
  const measured = matchMeasured(response, reports);
  assert.deepEqual(Object.keys(measured), ["0"]);
  const predicted = predictSeconds(response, measured);
  assert.equal(predicted[0], 100);
  close(predicted[2], costs[2].dit_flops / (costs[0].dit_flops / 100), 1e-6);
  const layout = layoutTree(response, { style: STYLE, reports });
  assert.equal(layout.rows[0].measuredText, "measured 1 min 40 s (est. 263 PF)");
  assert.equal(layout.rows[0].note, layout.rows[0].measuredText);
  assert.match(layout.rows[2].measuredText, /^~4 min 16 s at the measured rate$/); // 672.7 / 262.8 * 100 s
  assert.equal(layoutTree(response, { style: STYLE }).rows[2].measuredText, null);
  // on a row over the trained length the warning wins over a prediction (a measurement wins over both)
  const strict = { ...response, inputs: { ...response.inputs, trained_chunk_frames: 61 } };
  const rows = layoutTree(strict, { style: STYLE, reports }).rows;
  assert.equal(rows[2].note, "chunks of 109 frames, over the trained 61");
  assert.equal(rows[2].noteTone, "warn");
  assert.equal(rows[0].note, "measured 1 min 40 s (est. 263 PF)");
  assert.equal(rows[0].noteTone, "measured");
});

test("request body from widget values", () => {
  const body = requestFromWidgets({ blueprint_frames: 109, chunks: "auto", fps: 24, tree_view: "x", length: 20 },
    { steps: [50, 32, 32], cfg: [8, 8, 8] });
  assert.deepEqual(body, { blueprint_frames: 109, chunks: "auto", fps: 24, length: 20,
    samplers: { steps: [50, 32, 32], cfg: [8, 8, 8] } });
  assert.deepEqual(requestFromWidgets({ width: 832 }), { width: 832 });
  // the loader's widgets name the model to price
  const tiny = requestFromWidgets({ width: 64 }, {}, { model_name: "TempoMaster-Tiny (built-in)", weight_dtype: "fp32" });
  assert.deepEqual(tiny, { width: 64, model: { model_name: "TempoMaster-Tiny (built-in)", weight_dtype: "fp32" } });
  assert.deepEqual(requestFromWidgets({ width: 64 }, {}, { model_name: "" }), { width: 64 });
  // what is linked to the scheduler's own model input: a loader's name, or {} when the view cannot tell
  const linked = requestFromWidgets({ width: 64 }, {}, null, { model_name: "TempoMaster-Tiny (built-in)" });
  assert.deepEqual(linked, { width: 64, limits_model: { model_name: "TempoMaster-Tiny (built-in)" } });
  assert.deepEqual(requestFromWidgets({ width: 64 }, {}, null, {}), { width: 64, limits_model: {} });
  assert.deepEqual(requestFromWidgets({ width: 64 }, {}, null, { model_name: "" }), { width: 64, limits_model: {} });
  assert.deepEqual(requestFromWidgets({ width: 64 }, {}, null, null), { width: 64 });
});

test("the estimates are of the model the plan names; another model's time predicts nothing", () => {
  const small = fixture("small_model").response; // priced for the 1.3B shape
  const big = fixture("reference").response; // priced for the 14B release
  assert.notEqual(small.model.key, big.model.key);
  assert.equal(small.model.assumed, false);
  assert.ok(small.cost.dit_pflops < big.cost.dit_pflops / 5, "the small model is priced as itself");
  const layout = layoutTree(small, { style: STYLE });
  assert.equal(layout.footer[0].text, "Estimates for 1.3B, bf16 weights.");
  assert.equal(layout.footer[0].tone, "info");
  // a blueprint of 12.4 s measured on the small model
  const costs = small.cost.levels;
  const report = { plan_key: small.plan_key, level: 0, seconds: 12.4, estimated_flops: costs[0].dit_flops,
    estimated_pflops: costs[0].dit_pflops, model_key: small.model.key };
  assert.ok(sameModel(small, report) && !sameModel(big, report));
  const predicted = predictSeconds(small, matchMeasured(small, [report]));
  for (let i = 1; i < costs.length; i++) close(predicted[i], 12.4 * costs[i].dit_flops / costs[0].dit_flops, 1e-9);
  assert.ok(predicted[2] < 12.4 * 10, `${predicted[2]} s`); // the same order as the measured level, not hours
  // the same report on the tree priced for the 14B (a plan key of the same tree): measured, no prediction
  const wrong = layoutTree(big, { style: STYLE, reports: [{ ...report, plan_key: big.plan_key }] });
  assert.equal(wrong.rows[0].measuredText, "measured 12.4 s (another model than priced here)");
  assert.deepEqual(wrong.rows.slice(1).map((r) => r.measuredText), [null, null]);
});

test("formatting and wrapping", () => {
  assert.equal(formatSeconds(18.1666), "18.2 s");
  assert.equal(formatSeconds(125), "2 min 5 s");
  assert.equal(formatSeconds(119.6), "2 min 0 s");
  assert.equal(formatSeconds(102711), "28 h 32 min");
  assert.equal(formatSeconds(null), "?");
  assert.equal(formatPflops(1271.9), "1272 PF");
  assert.equal(formatPflops(95.19), "95.2 PF");
  assert.equal(formatPflops(2.5), "2.50 PF");
  assert.equal(formatPflops(0.4123), "0.412 PF");
  assert.equal(formatGib(40 * 1024 ** 3), "40.0 GiB");
  assert.equal(formatGib(0.28 * 1024 ** 3), "287 MiB");
  // a small model's FLOPs stay readable
  assert.equal(formatPflops(0.0000253), "25.3 GF");
  assert.equal(formatPflops(0.00759), "7.59 TF");
  assert.equal(formatPflops(0), "0.00 PF");
  assert.deepEqual(wrapText("the blueprint has 121 frames", 12), ["the", "blueprint", "has 121", "frames"]);
  assert.deepEqual(wrapText("abcdefghijklmnopqrst", 8), ["abcdefgh", "ijklmnop", "qrst"]);
});

test("the request carries the schema's widgets: the ones the route reads", () => {
  // the fixtures' requests are real route requests: every widget in them is in the schema, and only those are sent
  for (const name of ["reference", "twenty_seconds", "padded", "error", "bad_chunks"]) {
    const { request } = fixture(name);
    assert.deepEqual(requestFromWidgets({ ...request, tempomaster_tree: null }), request);
  }
  assert.deepEqual(WIDGET_NAMES.slice(0, 3), ["blueprint_frames", "frame_intervals", "custom_intervals"]);
  for (const widget of TREE_SCHEDULER_WIDGETS) {
    assert.ok(["INT", "FLOAT", "STRING", "COMBO"].includes(widget.type), widget.name);
    assert.ok(typeof widget.tooltip === "string" && widget.tooltip.length > 15, widget.name);
    if (widget.type === "COMBO") assert.ok(widget.choices.includes(widget.default), widget.name);
    if (widget.type === "INT" || widget.type === "FLOAT") assert.ok(widget.min <= widget.default && widget.default <= widget.max);
  }
});

test("the memory line: weight dtype, blocks swapped, runnable or not on the budget", () => {
  // fp8 weights on a 24 GB card (22.35 GiB): the route keeps the fewest blocks off the GPU that fit
  const fit = layoutTree(fixture("fp8_24gb").response, { style: STYLE });
  const fitText = fit.footer.map((l) => l.text).join(" ");
  assert.match(fitText, /fp8_e4m3fn weights, \d+ of 40 blocks swapped \(/);
  assert.match(fitText, /--blocks-to-swap \d+\): peak 2\d\.\d GiB, runnable on 22\.4 GiB\./);
  const fitLines = fit.footer.filter((l) => /blocks swapped|runnable on/.test(l.text));
  assert.ok(fitLines.length && fitLines.every((l) => l.tone === "info"), JSON.stringify(fitLines));
  assert.ok(!fit.footer.some((l) => l.tone === "warn" && /runnable/.test(l.text)));
  // bf16 weights in 8 GiB: no swap count fits, said in the warning tone with what to change
  const tight = layoutTree(fixture("tight_budget").response, { style: STYLE });
  const tightLines = tight.footer.filter((l) => l.tone === "warn").map((l) => l.text).join(" ");
  assert.ok(tightLines.includes("⚠ bf16 weights, no blocks swapped: peak 38.6 GiB, not runnable on 8.0 GiB"), tightLines);
  assert.ok(tightLines.includes("with all 40 blocks swapped still 13.5 GiB") && tightLines.includes("fp8_e4m3fn weights"));
  // without block swap and within the budget: one plain line
  const reference = layoutTree(fixture("reference").response, { style: STYLE });
  assert.ok(reference.footer.map((l) => l.text).join(" ").includes(
    "bf16 weights, no blocks swapped: peak 50.3 GiB, runnable on 60.0 GiB."));
});

test("the samplers' device lists go with the request only when one names devices", () => {
  const widgets = { width: 832 };
  assert.deepEqual(requestFromWidgets(widgets, { steps: [50], devices: ["", ""] }), { width: 832, samplers: { steps: [50] } });
  assert.deepEqual(requestFromWidgets(widgets, { devices: ["cuda:0,cuda:1", undefined] }),
    { width: 832, samplers: { devices: ["cuda:0,cuda:1", ""] } });
  // the fixture's request is what the view sends for a chain whose samplers each list two devices
  const { request } = fixture("two_devices");
  const { samplers, ...values } = request;
  assert.deepEqual(requestFromWidgets(values, samplers), request);
});

test("levels on several devices: each device's share, slowest device + communication, speed-up", () => {
  const { response } = fixture("two_devices");
  const layout = layoutTree(response, { style: STYLE });
  assert.deepEqual(layout.rows.map((r) => r.devicesText), ["2 dev", "2 dev", "2 dev"]);
  assert.ok(layout.rows.every((r) => r.sublabel.endsWith(" · 2 dev")), layout.rows.map((r) => r.sublabel).join("|"));
  assert.deepEqual(layout.rows[2].devices.items, [4, 4]);
  const text = layout.footer.map((l) => l.text).join(" ");
  // the route's sentences, wrapped: the tree's total, then one per level (blueprint first)
  assert.ok(/Shared over devices: 26\.6 min for the tree, 53\.2 min on one device \(2\.00x\)/.test(text), text);
  assert.ok(/24 fps on 2 devices: 2 \+ 2 chunks \(4 \+ 4 DiT items per step\); 14\.1 min = slowest device 14\.1 min \+ communication [0-9.]+ s; 2\.00x one device \(28\.1 min\)\./.test(text), text);
  assert.ok(/6 fps on 2 devices: the positive and negative passes split, 1 \+ 1 DiT items per step/.test(text), text);
  assert.ok(text.indexOf("6 fps on 2") < text.indexOf("12 fps on 2") && text.indexOf("12 fps on 2") < text.indexOf("24 fps on 2"));
  assert.ok(layout.footer.every((l) => l.text.length <= (STYLE.width - 2 * STYLE.padding) / STYLE.charWidth));
  // one device everywhere: no device text at all
  const single = layoutTree(fixture("reference").response, { style: STYLE });
  assert.ok(single.rows.every((r) => r.devicesText === null && r.devices === null));
  assert.ok(!single.footer.some((l) => /devices?:|dev\b/.test(l.text)));
});
