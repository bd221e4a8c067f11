// TempoMaster tree view: pure layout of the TreeScheduler's plan (no DOM, no canvas, no ComfyUI).
//
// Input: the JSON of POST /tempomaster/plan (nodes/plan_route.py): the plan's
// levels (fps, frames, chunks with start/stop and condition frames), its cost
// (PFLOPs and peak memory per level), the limits used (trained chunk length and
// where it comes from, memory budget), warnings and, for a length beyond one trained tree, the
// continuation proposal (segments and their cost). Output: rows, boxes, marks and
// text lines with pixel coordinates and "tone" flags; web/tree_view.js only paints them.
//
// The time axis is shared by all levels: pixel frame f of a level at `fps`
// frames per second sits at time f / fps seconds, so the blueprint's frames and
// the 24 fps frames of the same moment line up vertically. A chunk spans
// frames [start, start + frames_per_chunk), its padding (past the last real
// frame) drawn lighter; condition ("anchor") frames are ticks.

import { TREE_SCHEDULER_WIDGETS } from "./scheduler_schema.js";

export const DEFAULT_STYLE = Object.freeze({
  width: 320, // total width in px (the node's width)
  padding: 8, // inner margin
  labelWidth: 58, // left column: "12 fps" and frames
  rightWidth: 74, // right column: PFLOPs and GiB
  headerHeight: 18, // one line above the rows
  rowHeight: 30, // one level: the boxes (bar) plus one text line
  barHeight: 14,
  rowGap: 8,
  lineHeight: 13, // footer text lines
  charWidth: 6, // for wrapping footer text (monospace-ish estimate at 10-11 px)
});

const GIB = 1024 ** 3;

/** "18.2 s", "0.5 s", "1 min 20 s", "2 h 5 min". */
export function formatSeconds(seconds) {
  if (seconds == null || !Number.isFinite(seconds)) return "?";
  if (seconds >= 3600) {
    const minutes = Math.round(seconds / 60);
    return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
  }
  if (seconds >= 100) {
    const whole = Math.round(seconds);
    return `${Math.floor(whole / 60)} min ${whole % 60} s`;
  }
  return `${seconds.toFixed(1)} s`;
}

/** A count with 3 significant digits (no exponent) and a unit: 1272 -> "1272", 95.19 -> "95.2", 0.4123 -> "0.412". */
function threeDigits(value, unit) {
  if (value >= 100) return `${Math.round(value)} ${unit}`;
  if (value >= 10) return `${value.toFixed(1)} ${unit}`;
  if (value >= 1) return `${value.toFixed(2)} ${unit}`;
  return `${value.toPrecision(3)} ${unit}`;
}

/** FLOPs given in PFLOPs, 3 significant digits in a unit that keeps them readable: "1272 PF", "0.412 PF",
 * "25.3 GF" (a small model's 0.0000253 PF). */
export function formatPflops(pflops) {
  if (pflops == null || !Number.isFinite(pflops)) return "?";
  if (pflops >= 0.1 || pflops === 0) return threeDigits(pflops, "PF");
  if (pflops >= 1e-4) return threeDigits(pflops * 1e3, "TF");
  return threeDigits(pflops * 1e6, "GF");
}

/** Bytes as GiB with one decimal ("38.4 GiB"), or whole MiB below 1 GiB ("288 MiB"). */
export function formatGib(bytes) {
  if (bytes == null || !Number.isFinite(bytes)) return "?";
  if (bytes < GIB) return `${Math.round(bytes / 1024 ** 2)} MiB`;
  return `${(bytes / GIB).toFixed(1)} GiB`;
}

/** Split `text` into lines of at most `maxChars` characters, on spaces where possible. */
export function wrapText(text, maxChars) {
  const limit = Math.max(8, Math.floor(maxChars));
  const lines = [];
  for (const paragraph of String(text).split("\n")) {
    let line = "";
    for (const word of paragraph.split(/\s+/).filter(Boolean)) {
      if (!line) {
        line = word;
      } else if (line.length + 1 + word.length <= limit) {
        line += " " + word;
      } else {
        lines.push(line);
        line = word;
      }
      while (line.length > limit) {
        lines.push(line.slice(0, limit));
        line = line.slice(limit);
      }
    }
    lines.push(line);
  }
  return lines;
}

/** Names of the TreeScheduler's widgets, in node order (the schema of nodes/scheduler_schema.py). */
export const WIDGET_NAMES = Object.freeze(TREE_SCHEDULER_WIDGETS.map((widget) => widget.name));

/**
 * The route's request body from the TreeScheduler's widget values (only the schema's widgets are sent).
 * @param {Object<string, any>} widgets name -> value (the node's widgets)
 * @param {{steps?: number[], cfg?: number[], devices?: string[]}} [samplers] settings of the connected sampler
 *   chain, blueprint first (may cover fewer levels than the plan; the route fills in the reference's default
 *   steps and cfg, and one device); `devices` are the samplers' device lists ("cuda:0,cuda:1", "" = one device),
 *   sent only when one names devices
 * @param {{model_name: string, weight_dtype?: string}|null} [model] the widgets of the Load TempoMaster Model
 *   node that feeds the chain: the route prices that model's shape and dtype (without it, the 14B release)
 * @param {{model_name?: string}|null} [limitsModel] what is linked to the scheduler's own model input, whose
 *   training limits the node plans with: null = nothing (the trained_chunk_frames widget), {model_name} = a
 *   Load TempoMaster Model (its declared limits), {} = something the view cannot read (the route draws the
 *   widget's limits and says the node will use the model's)
 */
export function requestFromWidgets(widgets, samplers = {}, model = null, limitsModel = null) {
  const body = {};
  for (const name of WIDGET_NAMES) {
    if (widgets[name] !== undefined) body[name] = widgets[name];
  }
  const chain = {};
  if (Array.isArray(samplers.steps) && samplers.steps.length) chain.steps = samplers.steps.slice();
  if (Array.isArray(samplers.cfg) && samplers.cfg.length) chain.cfg = samplers.cfg.slice();
  if (Array.isArray(samplers.devices) && samplers.devices.some((text) => typeof text === "string" && text.trim())) {
    chain.devices = samplers.devices.map((text) => (typeof text === "string" ? text : ""));
  }
  if (Object.keys(chain).length) body.samplers = chain;
  if (model && typeof model.model_name === "string" && model.model_name) {
    body.model = { model_name: model.model_name };
    if (typeof model.weight_dtype === "string") body.model.weight_dtype = model.weight_dtype;
  }
  if (limitsModel) {
    const name = limitsModel.model_name;
    body.limits_model = typeof name === "string" && name ? { model_name: name } : {};
  }
  return body;
}

/** Measured-time reports (``tempomaster.level_time`` events) that belong to `plan`: level -> report. */
export function matchMeasured(plan, reports) {
  const out = {};
  if (!plan || !plan.plan_key || !reports) return out;
  for (const report of reports) {
    if (report && report.plan_key === plan.plan_key && Number.isInteger(report.level)) out[report.level] = report;
  }
  return out;
}

/** True when a report measured the model the plan was priced for (same shape, text length and dtype). */
export function sameModel(plan, report) {
  const key = plan && plan.model ? plan.model.key : null;
  return Boolean(key) && report && report.model_key === key;
}

/**
 * Seconds per level predicted from the measured throughput of the levels already run.
 * Each measured level gives achieved FLOP/s = its estimated FLOPs / its seconds (same model,
 * steps and guidance); the others are predicted with the pooled throughput (sum of FLOPs /
 * sum of seconds) applied to the plan's FLOPs. Only reports of the model the plan was priced
 * for count (:func:`sameModel`): another model's rate applied to these FLOPs means nothing.
 * Returns an array (null where nothing can be said).
 */
export function predictSeconds(plan, measured) {
  const levels = (plan && plan.cost && plan.cost.levels) || [];
  let flops = 0;
  let seconds = 0;
  for (const report of Object.values(measured || {})) {
    if (sameModel(plan, report) && report.seconds > 0 && report.estimated_flops > 0) {
      flops += report.estimated_flops;
      seconds += report.seconds;
    }
  }
  const rate = seconds > 0 ? flops / seconds : null;
  return levels.map((cost, i) => {
    if (measured && measured[i]) return measured[i].seconds;
    return rate ? cost.dit_flops / rate : null;
  });
}

/** The footer lines of a message: wrapped to the drawing's width, one tone, no positions yet. */
function messageLines(text, maxChars, tone) {
  return wrapText(text, maxChars).map((line) => ({ text: line, tone }));
}

/** Give footer lines their baselines below `top` (one line height apart); returns the bottom. */
function placeLines(lines, top, lineHeight) {
  lines.forEach((line, k) => { line.y = top + (k + 1) * lineHeight; });
  return top + lines.length * lineHeight;
}

/**
 * Layout of the tree drawing.
 * @param {object} plan the route's JSON (or {error: "..."} or null while loading)
 * @param {{style?: object, reports?: object[]}} [options]
 * @returns {{width, height, error, header, rows, footer, axis}}
 *   rows[i] = {level, y, label, sublabel ("436 f · 18.2 s · 4×109", "· 2 dev" on several devices), note (measured
 *              time or first warning), devices (the level on its devices, plan.devices.levels[i], or null), devicesText,
 *              noteX, noteMaxWidth (px before the right column), noteTone, right (PFLOPs), rightSub (peak), tone ("ok"/"warn"), warnings, barY, barHeight,
 *              boxes: [{chunk, x, w, validW, y, h, start, stop, tone}], marks: [{x, y, h, frame, source}],
 *              measured, measuredText}
 *   footer = [{text, tone}]
 */
export function layoutTree(plan, options = {}) {
  const s = { ...DEFAULT_STYLE, ...(options.style || {}) };
  const maxChars = (s.width - 2 * s.padding) / s.charWidth;
  if (!plan || plan.error || !Array.isArray(plan.levels)) {
    // drawn in place of the tree: the same footer lines, placed from the top
    const error = plan && plan.error ? String(plan.error) : null;
    const footer = messageLines(error ? `Plan error: ${error}` : "Planning…", maxChars, error ? "warn" : "info");
    const bottom = placeLines(footer, s.padding, s.lineHeight);
    return { width: s.width, height: bottom + s.padding, error, header: null, rows: [], footer, axis: null };
  }
  const inputs = plan.inputs || {};
  const trained = Number.isFinite(inputs.trained_chunk_frames) ? inputs.trained_chunk_frames : null;
  const budget = Number.isFinite(inputs.memory_budget_bytes) ? inputs.memory_budget_bytes : null;
  const costs = (plan.cost && plan.cost.levels) || [];
  const measured = matchMeasured(plan, options.reports);
  const predicted = predictSeconds(plan, measured);

  // shared time axis: long enough for every chunk, padding included
  let axisSeconds = 0;
  let videoSeconds = 0;
  for (const level of plan.levels) {
    axisSeconds = Math.max(axisSeconds, (level.num_chunks * level.frames_per_chunk) / level.fps);
    videoSeconds = Math.max(videoSeconds, level.num_frames / level.fps);
  }
  const x0 = s.padding + s.labelWidth;
  const x1 = s.width - s.padding - s.rightWidth;
  const scale = axisSeconds > 0 ? (x1 - x0) / axisSeconds : 0;
  const xAt = (frame, fps) => x0 + (frame / fps) * scale;

  const totalPf = plan.cost ? plan.cost.dit_pflops : null;
  const header = {
    y: s.padding,
    text: `${formatSeconds(videoSeconds)} at ${plan.levels[plan.levels.length - 1].fps} fps · ` +
      `${formatPflops(totalPf)} · peak ${formatGib(plan.cost ? plan.cost.peak_bytes : null)}`,
    tone: (plan.warnings || []).length ? "warn" : "info",
  };

  const rows = plan.levels.map((level, i) => {
    const y = s.padding + s.headerHeight + i * (s.rowHeight + s.rowGap);
    const barY = y;
    const cost = costs[i] || null;
    const overLength = trained != null && level.frames_per_chunk > trained;
    const overMemory = budget != null && cost != null && cost.peak_bytes > budget;
    const warnings = [];
    if (overLength) warnings.push(`chunks of ${level.frames_per_chunk} frames, over the trained ${trained}`);
    if (overMemory) warnings.push(`peak ${formatGib(cost.peak_bytes)}, over the budget ${formatGib(budget)}`);
    const tone = overLength || overMemory ? "warn" : "ok";
    const boxes = level.chunks.map((chunk) => ({
      chunk: chunk.index,
      start: chunk.start,
      stop: chunk.stop,
      x: xAt(chunk.start, level.fps),
      w: (level.frames_per_chunk / level.fps) * scale,
      validW: (chunk.valid_frames / level.fps) * scale,
      y: barY,
      h: s.barHeight,
      tone,
    }));
    const marks = [];
    for (const chunk of level.chunks) {
      for (const [pixel, source] of chunk.conditions) {
        marks.push({ x: xAt(chunk.start + pixel, level.fps), y: barY, h: s.barHeight, frame: chunk.start + pixel, source });
      }
    }
    const chunkText = level.num_chunks === 1 ? `1×${level.frames_per_chunk}` : `${level.num_chunks}×${level.frames_per_chunk}`;
    const report = measured[i] || null;
    let measuredText = null;
    if (report && sameModel(plan, report)) {
      measuredText = `measured ${formatSeconds(report.seconds)} (est. ${formatPflops(report.estimated_pflops)})`;
    } else if (report) {
      measuredText = `measured ${formatSeconds(report.seconds)} (another model than priced here)`;
    } else if (predicted[i] != null) {
      measuredText = `~${formatSeconds(predicted[i])} at the measured rate`;
    }
    const onDevices = plan.devices && Array.isArray(plan.devices.levels) ? plan.devices.levels[i] || null : null;
    const devicesText = onDevices && onDevices.devices > 1 ? `${onDevices.devices} dev` : null;
    const sublabel = `${level.num_frames} f · ${formatSeconds(level.duration_s)} · ${chunkText}` +
      (devicesText ? ` · ${devicesText}` : "");
    // the row's note: a measured time, else the first warning, else the predicted time
    const note = (report && measuredText) || warnings[0] || measuredText || null;
    return {
      level: level.index,
      y,
      barY,
      barHeight: s.barHeight,
      textY: barY + s.barHeight + s.lineHeight - 2,
      label: `${level.fps} fps`,
      sublabel,
      chunkText,
      note,
      noteTone: note === null ? null : note === measuredText ? "measured" : "warn",
      noteX: s.padding + (sublabel.length + 2) * s.charWidth,
      noteMaxWidth: Math.max(20, s.width - s.padding - s.rightWidth - (s.padding + (sublabel.length + 2) * s.charWidth)),
      right: cost ? formatPflops(cost.dit_pflops) : "?",
      rightSub: cost ? formatGib(cost.peak_bytes) : "?",
      tone,
      warnings,
      boxes,
      marks,
      measured: report,
      measuredText,
      devices: onDevices,
      devicesText,
    };
  });

  const footer = [];
  const model = plan.model;
  if (model) {
    const text = model.assumed && model.note ? `⚠ ${model.note}.` : `Estimates for ${model.label}, ${model.weight_dtype} weights.`;
    footer.push(...messageLines(text, maxChars, model.assumed ? "warn" : "info"));
  }
  const limits = inputs.trained_limits;
  if (limits && limits.sentence) {
    // which training limits the plan uses (the connected model's or the widget's), worded in nodes/plan_text.py;
    // in the warning tone while the node will use a model's limits the view could not read
    const pending = limits.source === "pending";
    footer.push(...messageLines(pending ? `⚠ ${limits.sentence}` : limits.sentence, maxChars, pending ? "warn" : "info"));
  }
  const memory = plan.memory;
  if (memory && memory.sentence) {
    // weight dtype, blocks swapped and whether the peak fits the budget (worded in nodes/plan_text.py)
    const runnable = memory.runnable === false ? `⚠ ${memory.sentence}` : memory.sentence;
    footer.push(...messageLines(runnable, maxChars, memory.runnable === false ? "warn" : "info"));
  }
  const fullPf = plan.cost ? plan.cost.full_sequence_pflops : null;
  if (fullPf != null && totalPf) {
    const ratio = fullPf / totalPf;
    footer.push({ text: `one full-sequence pass: ${formatPflops(fullPf)} (${ratio.toFixed(1)}× the tree)`, tone: "info" });
  }
  const continuation = plan.continuation;
  if (continuation && Array.isArray(continuation.lines)) {
    // beyond one trained tree: the segments and their cost against one big tree and a full-sequence pass
    for (const line of continuation.lines) footer.push(...messageLines(line, maxChars, "info"));
  }
  const devices = plan.devices;
  if (devices && Array.isArray(devices.levels)) {
    // the levels shared over the samplers' devices: each device's share, slowest device + communication, speed-up
    footer.push(...messageLines(devices.sentence, maxChars, "info"));
    for (const level of devices.levels) footer.push(...messageLines(level.sentence, maxChars, "info"));
  }
  const auto = plan.auto;
  if (auto && Array.isArray(auto.levels)) {
    for (const choice of auto.levels) footer.push(...messageLines(choice.sentence, maxChars, "info"));
  }
  for (const warning of plan.warnings || []) footer.push(...messageLines(`⚠ ${warning}`, maxChars, "warn"));
  const rowsBottom = s.padding + s.headerHeight + plan.levels.length * (s.rowHeight + s.rowGap);
  const height = placeLines(footer, rowsBottom, s.lineHeight) + s.padding;
  return {
    width: s.width,
    height,
    error: null,
    header,
    rows,
    footer,
    axis: { x0, x1, seconds: axisSeconds, videoSeconds, videoEndX: x0 + videoSeconds * scale },
  };
}
