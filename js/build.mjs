// Bundle the widget front end (and vega-embed + vega + vega-lite) into farms_viz/widget/static/.
// Usage: node build.mjs [--watch] [--outdir=DIR]   (tests build into a temporary DIR and compare)
import * as esbuild from "esbuild";

const options = {
  entryPoints: { widget: "src/widget.js" },
  outdir: process.argv.find((a) => a.startsWith("--outdir="))?.slice("--outdir=".length) ?? "../farms_viz/widget/static",
  bundle: true,
  format: "esm",
  minify: true,
  target: ["es2020"],
  // UMD dependencies would register with a page's require.js instead of the bundle
  define: { "define.amd": "false" },
  legalComments: "none",
  logLevel: "warning",
};

if (process.argv.includes("--watch")) {
  const context = await esbuild.context(options);
  await context.watch();
} else {
  await esbuild.build(options);
}
