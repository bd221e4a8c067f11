// TempoMaster: the live tree view drawn on the TreeScheduler node.
//
// Whenever a widget of the node (or the steps/cfg of the samplers it feeds) changes,
// the widget values are sent, debounced, to POST /tempomaster/plan (nodes/plan_route.py),
// which plans with the same Python code as the node and answers the plan, its cost and
// warnings as JSON. This file only draws that answer (layout: ./tree_layout.js):
// one row per level labelled with its fps, the chunks as boxes on a shared time axis,
// condition frames as ticks, frames/seconds/PFLOPs/peak memory per level, warning colour
// over the trained chunk length or the memory budget. After a run, the samplers'
// "tempomaster.level_time" messages add the measured time per level.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";
import { layoutTree, requestFromWidgets } from "./tree_layout.js";

const NODE_TYPE = "TempoMasterTreeScheduler";
const ROUTE = "/tempomaster/plan";
const EVENT = "tempomaster.level_time";
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

const reports = []; // tempomaster.level_time payloads of this session (matched by plan key)

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

/** steps/cfg of the BlueprintSampler fed by this scheduler and the chain of refiners after it. */
function samplerSettings(node) {
  const steps = [];
  const cfg = [];
  let current = firstTarget(node, 0, "TempoMasterBlueprintSampler");
  const seen = new Set();
  while (current && !seen.has(current.id)) {
    seen.add(current.id);
    steps.push(Number(widgetValue(current, "steps")));
    cfg.push(Number(widgetValue(current, "cfg")));
    current = firstTarget(current, 0, "TempoMasterFrameRateRefiner");
  }
  return { steps: steps.filter(Number.isFinite), cfg: cfg.filter(Number.isFinite) };
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
  const body = JSON.stringify(requestFromWidgets(widgetValues(node), samplerSettings(node)));
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
  const key = `${width}|${reports.length}`;
  if (!state.layout || state.layoutWidth !== width || state.layoutKey !== key || state.layoutData !== state.data) {
    state.layout = layoutTree(state.data, { style: { width }, reports });
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

app.registerExtension({
  name: "TempoMaster.TreeView",
  setup() {
    api.addEventListener(EVENT, ({ detail }) => {
      reports.push(detail);
      if (reports.length > MAX_REPORTS) reports.splice(0, reports.length - MAX_REPORTS);
      app.graph?.setDirtyCanvas(true, true);
    });
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
