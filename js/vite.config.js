// Builds dist/index.umd.js: React and @fiftyone/* are not bundled, they are the App's
// window globals (React, __fop__, __foo__...), as configured by FiftyOne's build helper.
import { defineConfig } from "@voxel51/fiftyone-js-plugin-build";
import { dirname } from "path";
import { fileURLToPath } from "url";

export default defineConfig(dirname(fileURLToPath(import.meta.url)), {
  buildConfigOverride: { sourcemap: false },
});
