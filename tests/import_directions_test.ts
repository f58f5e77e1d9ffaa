/**
 * The allowed import directions between the repository's folders (README,
 * "Repository layout"), checked by reading every .ts/.tsx file's import and
 * export-from lines, `import type` and `import("...")` included.
 */
import assert from "node:assert/strict";
import { relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

/**
 * For each folder, the folders its files may import from. Bare specifiers
 * (npm packages through the import map, `node:`) are not folders and are not
 * limited here; a folder that is not listed (bench/, tests/, scripts/, the
 * root files) may import anything.
 */
const ALLOWED: Record<string, readonly string[]> = {
  // Imported by the server, the browser bundle and the CLIs alike.
  shared: ["shared"],
  // Bundled for the browser: nothing from lib/ may end up there.
  client: ["shared", "client", "islands", "components"],
  islands: ["shared", "client", "islands", "components"],
  components: ["shared", "client", "islands", "components"],
  // The server's parts; the composition root (server.ts) imports routes/, never lib/.
  lib: ["lib", "shared"],
  // client/ too: routes render islands, which import client/ already (FEED_SIZE).
  routes: ["lib", "shared", "components", "islands", "routes", "client"],
  // A client tool: its entry (cli/probe.ts) reads secrets or KV and passes them in.
  probe: ["probe", "shared"],
};

/** cli/ may import anything but these. */
const CLI_FORBIDDEN = ["routes", "tests"];

const SKIP_DIRS = new Set(["node_modules", "data", "test_output", "static", ".git"]);

async function* sourceFiles(dir: string): AsyncGenerator<string> {
  for await (const entry of Deno.readDir(dir)) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) {
      if (!SKIP_DIRS.has(entry.name) && !entry.name.startsWith(".")) yield* sourceFiles(path);
    } else if (/\.tsx?$/.test(entry.name)) {
      yield path;
    }
  }
}

// `import ... from "x"`, `export ... from "x"` (over several lines), `import "x"`, `import("x")`.
const SPECIFIER =
  /(?:^|[\s;}])(?:import|export)\b[^"'`;]*?\bfrom\s*["']([^"']+)["']|(?:^|[\s;])import\s*["']([^"']+)["']|\bimport\s*\(\s*["']([^"']+)["']\s*\)/gm;

/** Every specifier a source text imports or re-exports from. */
export function specifiers(source: string): string[] {
  const found: string[] = [];
  for (const match of source.matchAll(SPECIFIER)) {
    found.push(match[1] ?? match[2] ?? match[3]);
  }
  return found;
}

/** The top folder of a repository-relative path, or "" for a file at the root. */
function topFolder(path: string): string {
  const slash = path.indexOf("/");
  return slash === -1 ? "" : path.slice(0, slash);
}

/** The import-direction violations in one file, as "file imports spec (folder/)" lines. */
function violations(file: string, source: string): string[] {
  const from = relative(ROOT, file);
  const folder = topFolder(from);
  const allowed = ALLOWED[folder];
  if (!allowed && folder !== "cli") return [];
  const bad: string[] = [];
  for (const spec of specifiers(source)) {
    if (!spec.startsWith(".") && !spec.startsWith("/")) continue; // a package
    const target = relative(ROOT, resolve(file, "..", spec));
    const to = topFolder(target) || target;
    const ok = folder === "cli" ? !CLI_FORBIDDEN.includes(to) : allowed.includes(to);
    if (!ok) bad.push(`${from} imports "${spec}" (${target}): ${folder}/ may not import ${to}`);
  }
  return bad;
}

Deno.test("specifiers: reads import, import type, export-from, multi-line and dynamic imports", () => {
  const source = [
    `import { a } from "./a.ts";`,
    `import type { B } from '../b.ts';`,
    `import {\n  c,\n  d,\n} from "../c/d.ts";`,
    `export { e } from "./e.ts";`,
    `export * from "./f.ts";`,
    `import "./side.ts";`,
    `const g = await import("../g.ts");`,
    `// "from" in a comment without a quote is not an import`,
    `const s = "import me";`,
  ].join("\n");
  assert.deepEqual(specifiers(source), [
    "./a.ts",
    "../b.ts",
    "../c/d.ts",
    "./e.ts",
    "./f.ts",
    "./side.ts",
    "../g.ts",
  ]);
});

Deno.test("violations: names the file and the import that break a direction", () => {
  assert.deepEqual(violations(`${ROOT}lib/auth/x.ts`, `import { y } from "../../routes/ws.ts";`), [
    `lib/auth/x.ts imports "../../routes/ws.ts" (routes/ws.ts): lib/ may not import routes`,
  ]);
  assert.deepEqual(violations(`${ROOT}islands/X.tsx`, `import type { Y } from "../lib/log.ts";`), [
    `islands/X.tsx imports "../lib/log.ts" (lib/log.ts): islands/ may not import lib`,
  ]);
  assert.deepEqual(violations(`${ROOT}lib/x.ts`, `import { s } from "../server.ts";`), [
    `lib/x.ts imports "../server.ts" (server.ts): lib/ may not import server.ts`,
  ]);
  assert.deepEqual(violations(`${ROOT}cli/x.ts`, `import { t } from "../tests/helpers.ts";`), [
    `cli/x.ts imports "../tests/helpers.ts" (tests/helpers.ts): cli/ may not import tests`,
  ]);
  assert.deepEqual(violations(`${ROOT}cli/x.ts`, `import { t } from "../lib/log.ts";`), []);
  assert.deepEqual(violations(`${ROOT}shared/x.ts`, `import * as z from "zod/mini";`), []);
});

Deno.test("every import in the repository keeps to the allowed directions", async () => {
  const bad: string[] = [];
  let files = 0;
  for await (const file of sourceFiles(ROOT.replace(/\/$/, ""))) {
    files++;
    bad.push(...violations(file, await Deno.readTextFile(file)));
  }
  assert.ok(files > 100, `Cannot check import directions as only ${files} files were found`);
  assert.deepEqual(bad, []);
});
