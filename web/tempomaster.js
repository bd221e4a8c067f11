// TempoMaster node pack: front-end extension entry point (served through WEB_DIRECTORY).
// Registers the pack's extension; the Tree Scheduler's live tree view is its own module (tree_view.js,
// layout in tree_layout.js).
import { app } from "../../scripts/app.js";

app.registerExtension({
  name: "TempoMaster.Nodes",
});
