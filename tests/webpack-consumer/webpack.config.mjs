// webpack 5 with its defaults and no plugins, as a user who just installed chorus-client
// would have it: the package's `new URL("chorus_client_bg.wasm", import.meta.url)` becomes
// an asset module (asset/resource), emitted into dist/ beside the bundle. index.html is
// static (it names main.js); the build script copies it into dist/.

import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));

export default {
  mode: "production",
  target: "web",
  context: here,
  entry: "./src/main.js",
  output: { path: join(here, "dist"), filename: "main.js", clean: true },
  stats: "errors-warnings",
};
