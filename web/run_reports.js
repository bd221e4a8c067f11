// TempoMaster tree view: the measured level times of one TreeScheduler (no DOM, no ComfyUI).
//
// Each TreeScheduler node keeps its own RunReports: the "tempomaster.level_time" reports of the
// samplers of its own chain (web/tree_view.js dispatches them by the reporting node's id), from the
// latest run only. A run is a ComfyUI prompt id: when the chain starts running in a new prompt, or a
// report of a new prompt arrives, the previous run's times are dropped, so a time measured in an
// earlier run (or for another workflow) is never shown as this run's.

/** Measured level times of the latest run of one chain. */
export class RunReports {
  /** @param {number} [limit] most reports kept (one per level is all a plan needs) */
  constructor(limit = 64) {
    this.runId = null;
    this.reports = [];
    this.limit = limit;
    this.version = 0; // changes whenever the reports change (the view re-lays out then)
  }

  /** The chain runs in prompt `runId`: forget another run's reports. Returns true when they were dropped. */
  start(runId) {
    if (runId == null || runId === this.runId) return false;
    this.runId = runId;
    this.reports = [];
    this.version += 1;
    return true;
  }

  /** Add a report (``{plan_key, level, seconds, prompt_id, ...}``); a later one of the same level replaces it. */
  add(report) {
    if (!report || !Number.isInteger(report.level)) return;
    if (report.prompt_id != null) this.start(report.prompt_id);
    const others = this.reports.filter((r) => !(r.level === report.level && r.plan_key === report.plan_key));
    this.reports = others.concat([report]).slice(-this.limit);
    this.version += 1;
  }
}
