// TempoMaster node pack: front-end extension entry point (served through WEB_DIRECTORY).
// The nodes need no custom widgets yet; this registers the extension so later
// front-end features (e.g. the TreeScheduler's tree view) have a home.
import { app } from "../../scripts/app.js";

app.registerExtension({
  name: "TempoMaster.Nodes",
});
