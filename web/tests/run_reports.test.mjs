// The measured times a TreeScheduler keeps: only the latest run's (web/run_reports.js).
// Run: node --test web/tests/
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { RunReports } from "../run_reports.js";
import { layoutTree } from "../tree_layout.js";

const here = dirname(fileURLToPath(import.meta.url));
const { response } = JSON.parse(readFileSync(join(here, "fixtures", "small_model.json"), "utf8"));
const report = (level, seconds, promptId) => ({
  plan_key: response.plan_key, level, seconds, prompt_id: promptId, model_key: response.model.key,
  estimated_flops: response.cost.levels[level].dit_flops, estimated_pflops: response.cost.levels[level].dit_pflops,
});
const notes = (store) => layoutTree(response, { reports: store.reports }).rows.map((r) => r.measuredText);

test("a new run drops the previous run's times, at its start and at its first report", () => {
  const store = new RunReports();
  store.add(report(0, 10, "run-a"));
  store.add(report(1, 20, "run-a"));
  store.add(report(2, 40, "run-a"));
  const before = notes(store);
  [10, 20, 40].forEach((seconds, i) => assert.match(before[i], new RegExp(`^measured ${seconds}\\.0 s \\(est\\. `)));
  // the chain starts running in run B: nothing measured yet, nothing predicted
  assert.equal(store.start("run-b"), true);
  assert.deepEqual(notes(store), [null, null, null]);
  assert.equal(store.start("run-b"), false); // the same run again changes nothing
  store.add(report(0, 12.4, "run-b"));
  const rows = notes(store);
  assert.match(rows[0], /^measured 12\.4 s/);
  assert.match(rows[1], /^~\d+\.\d s at the measured rate$/); // predicted from run B's level only
  // a report of a run nobody announced (another browser tab queued it) also starts a run
  store.add(report(1, 3, "run-c"));
  assert.deepEqual(store.reports.map((r) => [r.level, r.prompt_id]), [[1, "run-c"]]);
});

test("a later report of the same level replaces the earlier; the version tells the view to re-lay out", () => {
  const store = new RunReports(2);
  const v0 = store.version;
  store.add(report(0, 10, "run-a"));
  store.add(report(0, 11, "run-a"));
  assert.deepEqual(store.reports.map((r) => r.seconds), [11]);
  store.add(report(1, 5, "run-a"));
  store.add(report(2, 5, "run-a"));
  assert.equal(store.reports.length, 2); // the limit
  assert.ok(store.version > v0);
  store.add({ level: "x" }); // not a report: ignored
  assert.equal(store.reports.length, 2);
});
