/**
 * JavaScript heap per held socket, Lookout against the raw Deno server, after
 * full garbage collections: the part of RSS per socket that is the server's
 * own objects, without the V8 heap's slack or garbage that moves an RSS
 * reading by tens of MiB. With `--objects`, heap snapshots before and after
 * name what each socket keeps, by kind, Lookout's beside raw's.
 *
 *   deno run -A bench/heap_per_socket.ts                  # 4,000 sockets each
 *   deno run -A bench/heap_per_socket.ts --sockets 2000 --objects
 *
 * Each server runs in bench/heap_host.ts (its own process, started
 * with --expose-gc); the sockets are real WebSocket clients of this process,
 * authenticated with HS256 tokens, held while the heap is read.
 */
import { addressOf, connect, runPool } from "./clients.ts";
import { readFlags } from "./flags.ts";
import { mintTokens } from "./loadgen.ts";
import { randomText } from "./util.ts";

const USAGE = `usage: deno run -A bench/heap_per_socket.ts [--sockets N] [--objects]

  --sockets N   sockets held by each server (default 4000)
  --objects     also diff heap snapshots: what each socket keeps, by kind`;

const flags = readFlags(Deno.args, {
  sockets: { type: "string" },
  objects: { type: "boolean", default: false },
}, { usage: USAGE, doing: "measure the heap per socket" });
const sockets = flags.number("sockets", 4000, { min: 1, max: 50_000, integer: true });

type Target = "raw" | "lookout";

/** Bytes per socket by kind of heap object: after minus before, over the sockets held. */
type Kinds = Map<string, { bytes: number; count: number }>;

interface Measured {
  idle: number;
  held: number;
  sockets: number;
  kinds: Kinds | null;
}

async function measure(target: Target): Promise<Measured> {
  const secret = randomText();
  const port = freePort();
  const host = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--v8-flags=--expose-gc",
      new URL("./heap_host.ts", import.meta.url).pathname,
      target,
      String(port),
      secret,
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const lines = readLines(host.stdout);
  const writer = host.stdin.getWriter();
  const ask = async (command: string) => {
    await writer.write(new TextEncoder().encode(command + "\n"));
    // Lookout's own log lines may come first: the answer is the line we asked for.
    while (true) {
      const line = await lines.next();
      if (line.done) throw new Error(`${target} ended before answering ${command}`);
      const value = JSON.parse(line.value);
      if ("heapUsed" in value || "snapshot" in value) return value;
    }
  };
  const held: WebSocket[] = [];
  const dir = await Deno.makeTempDir({ prefix: "lookout-heap-bench-" });
  try {
    while (true) {
      const line = await lines.next();
      if (line.done) throw new Error(`${target} did not start`);
      if (line.value.includes('"ready"')) break;
    }
    const tokens = await mintTokens({ secret, issuer: "lookout", audience: "lookout" }, sockets);
    const snapshots = flags.values.objects ? [`${dir}/before.heapsnapshot`] : [];
    if (snapshots.length) await ask(`snapshot ${snapshots[0]}`);
    const idle = (await ask("measure")).heapUsed as number;
    const pool = await runPool(
      sockets,
      32,
      (i, w) =>
        connect("lookout", `http://127.0.0.1:${port}`, tokens[i].token, {
          ip: addressOf(10 + (w >> 8), w & 255),
          timeoutMs: 10_000,
          keep: true,
        }),
    );
    for (const r of pool.results) if (r.ok) held.push(r.ws);
    const busy = (await ask("measure")).heapUsed as number;
    let kinds: Kinds | null = null;
    if (snapshots.length) {
      await ask(`snapshot ${dir}/after.heapsnapshot`);
      kinds = diffKinds(
        await kindsOf(snapshots[0]),
        await kindsOf(`${dir}/after.heapsnapshot`),
        held.length,
      );
    }
    return { idle, held: busy, sockets: held.length, kinds };
  } finally {
    for (const ws of held) ws.close();
    await writer.close().catch(() => {});
    await host.status;
    await Deno.remove(dir, { recursive: true });
  }
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

async function* readLines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let rest = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    rest += chunk;
    let end;
    while ((end = rest.indexOf("\n")) >= 0) {
      yield rest.slice(0, end);
      rest = rest.slice(end + 1);
    }
  }
}

/** Self sizes of a heap snapshot's nodes by kind: constructor name, or the node type. */
async function kindsOf(path: string): Promise<Map<string, { bytes: number; count: number }>> {
  const snapshot = JSON.parse(await Deno.readTextFile(path));
  const fields: string[] = snapshot.snapshot.meta.node_fields;
  const types: string[] = snapshot.snapshot.meta.node_types[0];
  const [typeAt, nameAt, sizeAt] = ["type", "name", "self_size"].map((f) => fields.indexOf(f));
  const nodes: number[] = snapshot.nodes;
  const strings: string[] = snapshot.strings;
  const kinds = new Map<string, { bytes: number; count: number }>();
  for (let i = 0; i < nodes.length; i += fields.length) {
    const type = types[nodes[i + typeAt]];
    const name = String(strings[nodes[i + nameAt]]);
    // Objects by constructor; contexts by their kind, not the scope's id.
    const kind = type === "object"
      ? (name.startsWith("system / Context") ? "closure context" : `object ${name.slice(0, 40)}`)
      : type === "closure"
      ? "closure"
      : type.endsWith("string")
      ? "string"
      : type;
    const entry = kinds.get(kind) ?? { bytes: 0, count: 0 };
    entry.bytes += nodes[i + sizeAt];
    entry.count++;
    kinds.set(kind, entry);
  }
  return kinds;
}

function diffKinds(before: Kinds, after: Kinds, held: number): Kinds {
  const out: Kinds = new Map();
  for (const [kind, a] of after) {
    const b = before.get(kind) ?? { bytes: 0, count: 0 };
    out.set(kind, { bytes: (a.bytes - b.bytes) / held, count: (a.count - b.count) / held });
  }
  return out;
}

const results = new Map<Target, Measured>();
for (const target of ["raw", "lookout"] as const) {
  console.error(`[${target}] holding ${sockets} sockets`);
  results.set(target, await measure(target));
}
const perSocket = (m: Measured) => (m.held - m.idle) / m.sockets;
const raw = results.get("raw")!;
const lookout = results.get("lookout")!;
const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(1);
console.log(`JS heap after full GCs, ${sockets} sockets each (${new Date().toISOString()})\n`);
console.log("|                          | raw deno | lookout | lookout/raw |");
console.log("| ------------------------ | -------: | ------: | ----------: |");
console.log(`| sockets held             | ${raw.sockets} | ${lookout.sockets} | |`);
console.log(`| heap idle (MiB)          | ${mib(raw.idle)} | ${mib(lookout.idle)} | |`);
console.log(`| heap with sockets (MiB)  | ${mib(raw.held)} | ${mib(lookout.held)} | |`);
console.log(
  `| heap per socket (bytes)  | ${perSocket(raw).toFixed(0)} | ${perSocket(lookout).toFixed(0)} | ${
    (perSocket(lookout) / perSocket(raw)).toFixed(2)
  }x |`,
);
if (raw.kinds && lookout.kinds) {
  console.log("\nWhat each socket keeps, by kind (bytes per socket; Lookout's extra first)\n");
  console.log("| kind | raw deno | lookout | extra |");
  console.log("| ---- | -------: | ------: | ----: |");
  const kinds = new Set([...raw.kinds.keys(), ...lookout.kinds.keys()]);
  const rows = [...kinds].map((kind) => {
    const r = raw.kinds!.get(kind)?.bytes ?? 0;
    const l = lookout.kinds!.get(kind)?.bytes ?? 0;
    return { kind, r, l, extra: l - r };
  }).filter((row) => Math.abs(row.r) >= 8 || Math.abs(row.l) >= 8)
    .sort((a, b) => b.extra - a.extra);
  for (const row of rows) {
    console.log(
      `| ${row.kind} | ${row.r.toFixed(0)} | ${row.l.toFixed(0)} | ${row.extra.toFixed(0)} |`,
    );
  }
}
