import { boot } from "./app.js";

await boot({ notifications: false });
document.body.dataset.ready = "1";
