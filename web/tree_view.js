// TempoMaster: the live tree view drawn on the TreeScheduler node.
//
// Whenever a widget of the node (or the steps/cfg/devices of the samplers it feeds) changes,
// the widget values are sent, debounced, to POST /tempomaster/plan (nodes/plan_route.py),
// which plans with the same Python code as the node and answers the plan, its cost and
// warnings as JSON. This file only draws that answer (layout: ./tree_layout.js):
// one row per level labelled with its fps, the chunks as boxes on a shared time axis,
// condition frames as ticks, frames/seconds/PFLOPs/peak memory per level, warning colour
// over the trained chunk length or the memory budget, and, when the samplers list several devices, each
// level's share per device, its time (slowest device + communication) and speed-up. The estimates are for the model the chain
// uses: the widgets of the Load TempoMaster Model node feeding the samplers go with the request, and the
// model linked to the scheduler's own model input (whose training limits the node plans with).
// During and after a run, the samplers' "tempomaster.level_time" messages add the measured time
// per level; they are kept on this node, only from the samplers of its own chain, and a new run
// of that chain clears the previous run's.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";
import { RunReports } from "./run_reports.js";
import { DEVICES_WIDGET, LEVEL_TIME_EVENT as EVENT, MODEL_INPUT, NODE_IDS, PLAN_ROUTE as ROUTE } from "./scheduler_schema.js";
import { layoutTree, requestFromWidgets } from "./tree_layout.js";

const NODE_TYPE = NODE_IDS.scheduler;
const BLUEPRINT_TYPE = NODE_IDS.blueprint;
const REFINER_TYPE = NODE_IDS.refiner;
const LOADER_TYPE = NODE_IDS.loader;
const LORA_TYPE = NODE_IDS.lora;
const DEBOUNCE_MS = 300;
const MAX_REPORTS = 64;

const COLORS = {
  background: "#1d2026",
  axis: "#3a3f48",
  ok: "#3b6ea8",
  okEdge: "#8fb8e8",
  warn: "#b8473a",
  warnEdge: "#ff9c8c",
  padding: "rgba(255,255,255,0.12)",
  mark: "#f4c430",
  text: "#e0e0e0",
  info: "#a8adb5",
  warnText: "#ff8a7a",
  measured: "#8fd18f",
};

let runningPromptId = null; // the prompt ComfyUI runs now (execution_start)

function linkById(graph, id) {
  if (!graph || id == null) return null;
  const links = graph.links;
  if (links instanceof Map) return links.get(id) ?? null;
  return links ? links[id] ?? null : null;
}

function firstTarget(node, slot, type) {
  const graph = node.graph;
  for (const id of node.outputs?.[slot]?.links ?? []) {
    const link = linkById(graph, id);
    const target = link ? graph.getNodeById(link.target_id) : null;
    if (target && target.type === type) return target;
  }
  return null;
}

function widgetValue(node, name) {
  const widget = node.widgets?.find((w) => w.name === name);
  return widget ? widget.value : undefined;
}

/** The BlueprintSampler fed by this scheduler and the chain of refiners after it, in level order. */
function samplerChain(node) {
  const chain = [];
  let current = firstTarget(node, 0, BLUEPRINT_TYPE);
  const seen = new Set();
  while (current && !seen.has(current.id)) {
    seen.add(current.id);
    chain.push(current);
    current = firstTarget(current, 0, REFINER_TYPE);
  }
  return chain;
}

/** steps/cfg and device lists of the chain's samplers, blueprint first. */
function samplerSettings(chain) {
  const steps = chain.map((sampler) => Number(widgetValue(sampler, "steps")));
  const cfg = chain.map((sampler) => Number(widgetValue(sampler, "cfg")));
  const devices = chain.map((sampler) => widgetValue(sampler, DEVICES_WIDGET) ?? "");
  return { steps: steps.filter(Number.isFinite), cfg: cfg.filter(Number.isFinite), devices };
}

/** The node an input of `node` is linked from, through legacy Reroute nodes (null when unlinked). */
function inputSource(node, name) {
  const seen = new Set();
  let input = node.inputs?.find((i) => i.name === name);
  while (input) {
    const link = linkById(node.graph, input.link);
    const origin = link ? node.graph.getNodeById(link.origin_id) : null;
    if (!origin || origin.type !== "Reroute" || seen.has(origin.id)) return origin ?? null;
    seen.add(origin.id);
    input = origin.inputs?.[0]; // a Reroute has one input
  }
  return null;
}

/** The Load TempoMaster Model widgets of the first sampler of the chain whose model comes from one. */
function modelOfChain(chain) {
  for (const sampler of chain) {
    const loader = inputSource(sampler, "model");
    if (loader && loader.type === LOADER_TYPE) {
      return { model_name: widgetValue(loader, "model_name"), weight_dtype: widgetValue(loader, "weight_dtype") };
    }
  }
  return null;
}

/**
 * What is linked to the scheduler's model input: null when nothing, the Load TempoMaster Model's name when the
 * link comes from one (through Reroutes and TempoMaster LoRA nodes, which keep the model's training), else {}.
 */
function limitsModel(node) {
  const input = node.inputs?.find((i) => i.name === MODEL_INPUT);
  if (!input || input.link == null) return null;
  let source = inputSource(node, MODEL_INPUT);
  const seen = new Set();
  while (source && source.type === LORA_TYPE && !seen.has(source.id)) {
    seen.add(source.id);
    source = inputSource(source, "model");
  }
  return source && source.type === LOADER_TYPE ? { model_name: widgetValue(source, "model_name") } : {};
}

function widgetValues(node) {
  const values = {};
  for (const widget of node.widgets ?? []) {
    if (widget.name && widget.options?.serialize !== false) values[widget.name] = widget.value;
  }
  return values;
}

async function fetchPlan(node, body) {
  const state = node.tempoTreeView;
  state.inFlight = true;
  state.requests += 1;
  try {
    const response = await api.fetchApi(ROUTE, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body,
    });
    let data;
    try {
      data = await response.json();
    } catch {
      data = { error: `the plan route answered HTTP ${response.status} without JSON` };
    }
    state.data = data;
    state.sentBody = body;
  } catch (err) {
    state.data = { error: `could not reach the plan route: ${err}` };
  } finally {
    state.inFlight = false;
    state.layoutWidth = null; // re-layout
    node.setDirtyCanvas(true, true);
  }
}

/** Called on every draw: (re)plan when the request body changed, debounced, one request at a time. */
function maybeReplan(node) {
  const state = node.tempoTreeView;
  const chain = samplerChain(node);
  const body = JSON.stringify(requestFromWidgets(widgetValues(node), samplerSettings(chain), modelOfChain(chain),
    limitsModel(node)));
  if (body === state.sentBody || body === state.pendingBody || state.inFlight) return;
  state.pendingBody = body;
  clearTimeout(state.timer);
  state.timer = setTimeout(() => {
    state.pendingBody = null;
    fetchPlan(node, body);
  }, DEBOUNCE_MS);
}

function currentLayout(node, width) {
  const state = node.tempoTreeView;
  const key = `${width}|${state.measured.version}`;
  if (!state.layout || state.layoutWidth !== width || state.layoutKey !== key || state.layoutData !== state.data) {
    state.layout = layoutTree(state.data, { style: { width }, reports: state.measured.reports });
    state.layoutWidth = width;
    state.layoutKey = key;
    state.layoutData = state.data;
  }
  return state.layout;
}

function paint(ctx, layout, top) {
  ctx.save();
  ctx.translate(0, top);
  ctx.fillStyle = COLORS.background;
  ctx.fillRect(4, 0, layout.width - 8, layout.height);
  ctx.textBaseline = "alphabetic";
  if (layout.header) {
    ctx.font = "bold 11px sans-serif";
    ctx.fillStyle = layout.header.tone === "warn" ? COLORS.warnText : COLORS.text;
    ctx.textAlign = "left";
    ctx.fillText(layout.header.text, 8, layout.header.y + 10);
  }
  if (layout.axis) {
    ctx.strokeStyle = COLORS.axis;
    ctx.beginPath();
    ctx.moveTo(layout.axis.videoEndX + 0.5, 14);
    ctx.lineTo(layout.axis.videoEndX + 0.5, layout.rows.length ? layout.rows[layout.rows.length - 1].textY : 14);
    ctx.stroke();
  }
  for (const row of layout.rows) {
    ctx.font = "bold 11px sans-serif";
    ctx.textAlign = "left";
    ctx.fillStyle = row.tone === "warn" ? COLORS.warnText : COLORS.text;
    ctx.fillText(row.label, 8, row.barY + 11);
    ctx.font = "10px sans-serif";
    ctx.fillStyle = COLORS.info;
    ctx.fillText(row.sublabel, 8, row.textY);
    for (const box of row.boxes) {
      const warn = box.tone === "warn";
      ctx.fillStyle = warn ? COLORS.warn : COLORS.ok;
      ctx.fillRect(box.x, box.y, Math.max(1, box.validW), box.h);
      if (box.w > box.validW) {
        ctx.fillStyle = COLORS.padding;
        ctx.fillRect(box.x + box.validW, box.y, box.w - box.validW, box.h);
      }
      ctx.strokeStyle = warn ? COLORS.warnEdge : COLORS.okEdge;
      ctx.strokeRect(box.x + 0.5, box.y + 0.5, Math.max(1, box.w - 1), box.h - 1);
    }
    ctx.fillStyle = COLORS.mark;
    for (const mark of row.marks) ctx.fillRect(mark.x - 0.5, mark.y, 1, Math.ceil(mark.h / 2));
    ctx.textAlign = "right";
    ctx.font = "10px sans-serif";
    ctx.fillStyle = row.tone === "warn" ? COLORS.warnText : COLORS.text;
    ctx.fillText(row.right, layout.width - 8, row.barY + 11);
    ctx.fillStyle = COLORS.info;
    ctx.fillText(row.rightSub, layout.width - 8, row.textY);
    ctx.textAlign = "left";
    if (row.note) {
      ctx.fillStyle = row.noteTone === "measured" ? COLORS.measured : COLORS.warnText;
      ctx.fillText(row.note, row.noteX, row.textY, row.noteMaxWidth); // squeezed to stay left of the right column
    }
  }
  ctx.font = "10px sans-serif";
  ctx.textAlign = "left";
  for (const line of layout.footer) {
    ctx.fillStyle = line.tone === "warn" ? COLORS.warnText : COLORS.info;
    ctx.fillText(line.text, 8, line.y);
  }
  ctx.restore();
}

function addTreeView(node) {
  node.tempoTreeView = {
    data: null, layout: null, sentBody: null, pendingBody: null, inFlight: false, timer: null,
    requests: 0, draws: 0,
    measured: new RunReports(MAX_REPORTS), // level times of the latest run of this node's chain
  };
  const widget = {
    name: "tempomaster_tree",
    type: "tempomaster_tree_view",
    value: null,
    serialize: false, // not a widget value: not saved in workflows, not sent with the prompt
    options: { serialize: false },
    draw(ctx, drawnNode, width, y) {
      const state = drawnNode.tempoTreeView;
      maybeReplan(drawnNode);
      const layout = currentLayout(drawnNode, width);
      paint(ctx, layout, y + 4);
      state.draws += 1;
      const needed = drawnNode.computeSize?.()[1];
      if (needed && drawnNode.size[1] < needed) {
        drawnNode.setSize([drawnNode.size[0], needed]); // grow to show the whole tree (never shrink a user's size)
        drawnNode.setDirtyCanvas(true, true);
      }
    },
    computeSize(width) {
      const layout = node.tempoTreeView.layout ?? layoutTree(node.tempoTreeView.data, { style: { width } });
      return [width, layout.height + 8];
    },
  };
  node.addCustomWidget(widget);
}

/** TreeScheduler nodes of the graph on screen whose sampler chain holds the node `nodeId`. */
function schedulersOf(nodeId) {
  const graph = app.canvas?.graph ?? app.graph;
  const found = [];
  for (const node of graph?.nodes ?? []) {
    if (node.type === NODE_TYPE && node.tempoTreeView && samplerChain(node).some((s) => String(s.id) === String(nodeId))) {
      found.push(node);
    }
  }
  return found;
}

function onLevelTime(detail) {
  if (!detail) return;
  for (const node of schedulersOf(detail.node)) {
    node.tempoTreeView.measured.add(detail);
    node.setDirtyCanvas(true, true);
  }
}

app.registerExtension({
  name: "TempoMaster.TreeView",
  setup() {
    api.addEventListener("execution_start", ({ detail }) => { runningPromptId = detail?.prompt_id ?? null; });
    // a sampler of a chain starts running in a new prompt: that chain's old measurements go
    api.addEventListener("executing", ({ detail }) => {
      if (detail == null || runningPromptId == null) return;
      for (const node of schedulersOf(detail)) {
        if (node.tempoTreeView.measured.start(runningPromptId)) node.setDirtyCanvas(true, true);
      }
    });
    api.addEventListener(EVENT, ({ detail }) => onLevelTime(detail));
  },
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData.name !== NODE_TYPE) return;
    const onNodeCreated = nodeType.prototype.onNodeCreated;
    nodeType.prototype.onNodeCreated = function () {
      const result = onNodeCreated?.apply(this, arguments);
      addTreeView(this);
      return result;
    };
  },
});
