/**
 * `deno task build`: bundles the islands (client/main.ts) with `deno bundle`
 * and the stylesheet into `static/build/`, names each file by a hash of its
 * content, writes `manifest.json`, and reports the gzipped sizes. The entry,
 * which every dashboard page loads, must stay within the budget; chunks it
 * imports lazily (uPlot, for the overview's charts) are reported beside it.
 * `--if-stale` builds only when the build is missing or older than a source
 * it is made from (`deno task start`, so an edited island is never served
 * stale); `--if-missing` only when the build is missing. `--out DIR` writes
 * elsewhere than `static/build/` (the tests build into a temp directory).
 */
import { parseArgs } from "node:util";

const BUDGET_GZIP_BYTES = 35 * 1024;
const root = new URL("../", import.meta.url);
/** What the build is made from: a newer file in any of these makes it stale. */
const SOURCES = ["islands/", "client/", "components/", "shared/", "static/app.css", "deno.json"];

async function exists(url: URL): Promise<boolean> {
  try {
    await Deno.stat(url);
    return true;
  } catch {
    return false;
  }
}

async function hash(bytes: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as BufferSource));
  return [...digest.slice(0, 6)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

async function gzipSize(bytes: Uint8Array): Promise<number> {
  const stream = new Blob([bytes as BlobPart]).stream().pipeThrough(new CompressionStream("gzip"));
  return (await new Response(stream).arrayBuffer()).byteLength;
}

/** The newest source file under `url` (a file or a directory), as [mtime ms, path]. */
async function newest(url: URL): Promise<[number, string]> {
  const info = await Deno.stat(url);
  if (!info.isDirectory) return [info.mtime?.getTime() ?? Infinity, url.pathname];
  let best: [number, string] = [0, url.pathname];
  for await (const entry of Deno.readDir(url)) {
    const child = new URL(entry.name + (entry.isDirectory ? "/" : ""), url);
    const found = await newest(child);
    if (found[0] > best[0]) best = found;
  }
  return best;
}

const { values } = parseArgs({
  args: Deno.args,
  options: {
    "if-missing": { type: "boolean" },
    "if-stale": { type: "boolean" },
    out: { type: "string" },
  },
});
const outDir = values.out
  ? new URL(values.out.endsWith("/") ? values.out : values.out + "/", `file://${Deno.cwd()}/`)
  : new URL("static/build/", root);
const manifestUrl = new URL("manifest.json", outDir);

if ((values["if-missing"] || values["if-stale"]) && await exists(manifestUrl)) {
  const manifest = JSON.parse(await Deno.readTextFile(manifestUrl));
  if (await exists(new URL(manifest.js, outDir)) && await exists(new URL(manifest.css, outDir))) {
    if (!values["if-stale"]) Deno.exit(0);
    const built = (await Deno.stat(manifestUrl)).mtime?.getTime() ?? 0;
    let source: [number, string] = [0, ""];
    for (const path of SOURCES) {
      const found = await newest(new URL(path, root));
      if (found[0] > source[0]) source = found;
    }
    if (source[0] <= built) {
      console.log("island assets are up to date");
      Deno.exit(0);
    }
    console.log(`island assets are older than ${source[1]}: rebuilding`);
  }
}

const tmp = await Deno.makeTempDir({ prefix: "lookout-build-" });
try {
  const result = await new Deno.Command(Deno.execPath(), {
    args: [
      "bundle",
      "--platform=browser",
      "--format=esm",
      "--minify",
      "--code-splitting",
      "--quiet",
      `--outdir=${tmp}`,
      new URL("client/main.ts", root).pathname,
    ],
    cwd: root.pathname,
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (!result.success) {
    console.error("Cannot build the islands: deno bundle failed");
    Deno.exit(1);
  }
  const js = await Deno.readFile(`${tmp}/main.js`);
  const css = await Deno.readFile(new URL("static/app.css", root));
  const jsName = `islands-${await hash(js)}.js`;
  const cssName = `app-${await hash(css)}.css`;

  await Deno.mkdir(outDir, { recursive: true });
  for await (const entry of Deno.readDir(outDir)) {
    if (entry.isFile) await Deno.remove(new URL(entry.name, outDir));
  }
  await Deno.writeFile(new URL(jsName, outDir), js);
  await Deno.writeFile(new URL(cssName, outDir), css);
  // Lazy chunks keep esbuild's names, which already carry a content hash.
  const chunks: { name: string; gzip: number }[] = [];
  for await (const entry of Deno.readDir(tmp)) {
    if (!entry.isFile || entry.name === "main.js" || !entry.name.endsWith(".js")) continue;
    const bytes = await Deno.readFile(`${tmp}/${entry.name}`);
    await Deno.writeFile(new URL(entry.name, outDir), bytes);
    chunks.push({ name: entry.name, gzip: await gzipSize(bytes) });
  }
  const jsGzip = await gzipSize(js);
  const totalGzip = jsGzip + chunks.reduce((n, c) => n + c.gzip, 0);
  await Deno.writeTextFile(
    manifestUrl,
    JSON.stringify(
      { js: jsName, css: cssName, jsGzipBytes: jsGzip, chunks, totalGzipBytes: totalGzip },
      null,
      2,
    ) +
      "\n",
  );
  const kb = (n: number) => `${(n / 1024).toFixed(1)} KB`;
  console.log(
    `island JS every page loads: ${kb(jsGzip)} gzip, budget ${kb(BUDGET_GZIP_BYTES)} (${jsName}, ${
      kb(js.length)
    } minified)`,
  );
  for (const chunk of chunks) console.log(`  + lazy chunk ${chunk.name}: ${kb(chunk.gzip)} gzip`);
  console.log(`island JS in all: ${kb(totalGzip)} gzip`);
  console.log(`stylesheet: ${kb(await gzipSize(css))} gzip (${cssName})`);
  if (jsGzip > BUDGET_GZIP_BYTES) {
    console.error(
      `Cannot accept the build as the island JavaScript is over budget: ${
        kb(jsGzip)
      } gzip, at most ${kb(BUDGET_GZIP_BYTES)}`,
    );
    Deno.exit(1);
  }
} finally {
  await Deno.remove(tmp, { recursive: true });
}
