/**
 * Lists where a V8 `.cpuprofile` spent its time: the heaviest functions by
 * self time, and self time summed per source file.
 *
 *   deno run -A bench/profile_top.ts DIR_OR_FILE [--top 30]
 *
 * It also breaks the time down into Lookout's parts ({@linkcode PARTS}):
 * each sample goes to the innermost frame on its stack that belongs to a
 * part, so the runtime work a part asks for (crypto for jose, the KV commit
 * for the record, a socket send for the hub) counts as that part's.
 */
import { parseArgs } from "node:util";

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface Profile {
  nodes: Node[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** Self time in ms of every node id. */
function selfTimes(profile: Profile): Map<number, number> {
  const self = new Map<number, number>();
  for (let i = 0; i < profile.samples.length; i++) {
    // timeDeltas[i] is the gap before sample i; the next gap is this sample's length.
    const ms = (profile.timeDeltas[i + 1] ?? 0) / 1000;
    self.set(profile.samples[i], (self.get(profile.samples[i]) ?? 0) + ms);
  }
  return self;
}

/** This checkout's root as a file URL, whichever worktree it is. */
const ROOT = new URL("../", import.meta.url).href;

function shortUrl(url: string): string {
  return url.replace(ROOT, "").replace(/^file:\/\/.*?\/main\//, "").replace(
    /^.*\/node_modules\/\.deno\//,
    "npm:",
  )
    .replace(/^.*\/registry\.npmjs\.org\//, "npm:");
}

/**
 * Total time (self and callees) per function; a function that is on the
 * stack twice (recursion) is counted once.
 */
function totalTimes(profile: Profile, self: Map<number, number>, key: (n: Node) => string) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const totals = new Map<string, number>();
  for (const [id, ms] of self) {
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const k = key(byId.get(at)!);
      if (seen.has(k)) continue;
      seen.add(k);
      totals.set(k, (totals.get(k) ?? 0) + ms);
    }
  }
  return totals;
}

const RUNTIME = "runtime (HTTP, WebSocket, event loop)";

/**
 * Lookout's parts, by the short URL or name of a frame; the first match, from
 * the innermost frame out, takes the sample. A stack with none is the runtime.
 */
export const PARTS: { part: string; match: (url: string, name: string) => boolean }[] = [
  {
    // The upgrade and the socket's own sends and closes: every server pays
    // them, whichever of its functions asks.
    part: RUNTIME,
    match: (u, n) => u.startsWith("ext:deno_websocket/") || n === "upgradeWebSocket",
  },
  {
    part: "timers",
    match: (u, n) => u === "lib/realtime/deadlines.ts" || /^(set|clear)Timeout$/.test(n),
  },
  { part: "logging", match: (u) => u === "lib/log.ts" },
  {
    part: "verification (jose, tokens, revocations, keys)",
    match: (u) => u.startsWith("lib/auth/") || u.startsWith("lib/api_keys/") || u.includes("jose"),
  },
  {
    part: "attempt record (AttemptLog, KV commit)",
    match: (u) => u.startsWith("lib/attempts/") || u.startsWith("lib/store/"),
  },
  {
    part: "hub, stats, feed, fanout",
    match: (u) =>
      u.startsWith("lib/stats/") ||
      /^lib\/realtime\/(feed|registry|connections|attempts|metrics)\.ts$/.test(u),
  },
  {
    part: "socket protocol (connection.ts, frames, limits)",
    match: (u) => /^lib\/realtime\/(connection|frames|limits)\.ts$/.test(u),
  },
  {
    part: "routing (Hono, routes/, lib/http, server.ts)",
    match: (u) =>
      u.includes("hono") || u.startsWith("routes/") || u.startsWith("lib/http/") ||
      u === "server.ts" || u === "main.ts" || u === "worker.ts",
  },
  { part: "other Lookout code", match: (u) => /^(lib|shared)\//.test(u) },
  { part: "the raw servers' own code", match: (u) => u.startsWith("bench/servers/") },
];

/** Self time per part ({@linkcode PARTS}), plus the runtime, GC and idle. */
export function partTimes(profile: Profile): Map<string, number> {
  const self = selfTimes(profile);
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const out = new Map<string, number>();
  for (const [id, ms] of self) {
    let part = RUNTIME;
    const leaf = byId.get(id)!.callFrame.functionName;
    if (leaf === "(idle)") part = "(idle)";
    else if (leaf === "(garbage collector)") part = "garbage collector";
    else {
      search: for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
        const { url, functionName } = byId.get(at)!.callFrame;
        const short = shortUrl(url);
        for (const p of PARTS) {
          if (p.match(short, functionName)) {
            part = p.part;
            break search;
          }
        }
      }
    }
    out.set(part, (out.get(part) ?? 0) + ms);
  }
  return out;
}

function summarize(path: string, profile: Profile, top: number): string {
  const self = selfTimes(profile);
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  const byFunction = new Map<string, number>();
  const byFile = new Map<string, number>();
  const nameOf = (node: Node) => {
    const { functionName, url, lineNumber } = node.callFrame;
    return `${functionName || "(anonymous)"}  ${shortUrl(url) || "(native)"}${
      url ? `:${lineNumber + 1}` : ""
    }`;
  };
  for (const node of profile.nodes) {
    const ms = self.get(node.id) ?? 0;
    if (ms === 0) continue;
    const file = shortUrl(node.callFrame.url) || "(native)";
    const name = nameOf(node);
    byFunction.set(name, (byFunction.get(name) ?? 0) + ms);
    byFile.set(file, (byFile.get(file) ?? 0) + ms);
  }
  const inclusive = totalTimes(profile, self, nameOf);
  for (const k of [...inclusive.keys()]) {
    // Only the app's own code: the runtime's frames are in the self-time list.
    if (!/ (lib|routes|main|worker)[/.]/.test(k) || k.startsWith("(idle)")) inclusive.delete(k);
  }
  const list = (m: Map<string, number>) =>
    [...m].sort((a, b) => b[1] - a[1]).slice(0, top)
      .map(([k, ms]) =>
        `${ms.toFixed(0).padStart(8)} ms ${(100 * ms / total).toFixed(1).padStart(5)}%  ${k}`
      )
      .join("\n");
  const parts = partTimes(profile);
  const busy = total - (parts.get("(idle)") ?? 0);
  const partList = [...parts].filter(([k]) => k !== "(idle)").sort((a, b) => b[1] - a[1])
    .map(([k, ms]) =>
      `${ms.toFixed(0).padStart(8)} ms ${(100 * ms / busy).toFixed(1).padStart(5)}%  ${k}`
    ).join("\n");
  return `${path}: ${total.toFixed(0)} ms sampled, ${
    busy.toFixed(0)
  } ms not idle\n\nby part (share of the time not idle)\n${partList}\n\nby function (self time)\n${
    list(byFunction)
  }\n\napp functions (total time, callees included)\n${list(inclusive)}\n\nby file (self time)\n${
    list(byFile)
  }\n`;
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    options: { top: { type: "string", default: "30" } },
    allowPositionals: true,
  });
  const target = positionals[0];
  if (!target) {
    console.error("usage: deno run -A bench/profile_top.ts DIR_OR_FILE [--top 30]");
    Deno.exit(2);
  }
  const files = (await Deno.stat(target)).isDirectory
    ? [...Deno.readDirSync(target)].filter((e) => e.name.endsWith(".cpuprofile"))
      .map((e) => `${target}/${e.name}`)
    : [target];
  for (const file of files) {
    console.log(summarize(file, JSON.parse(await Deno.readTextFile(file)), Number(values.top)));
  }
}
