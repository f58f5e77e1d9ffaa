/**
 * Hosts one server in this process for bench/heap_per_socket.ts and reads
 * its JavaScript heap on request, after full garbage collections:
 *
 *   deno run -A --v8-flags=--expose-gc bench/heap_host.ts lookout|raw PORT SECRET
 *
 * It prints `{"ready":true}` once it serves. Each line on stdin is a
 * command: `measure` prints `{"heapUsed"}` (bytes, after two full GCs);
 * `snapshot PATH` writes a V8 heap snapshot there and prints `{"snapshot"}`.
 * It exits when stdin closes.
 */
import v8 from "node:v8";
import { loadConfig } from "../lib/config.ts";
import { startLookout } from "../server.ts";
import { serveRaw } from "./servers/raw_deno.ts";

const [target, port, secret] = Deno.args;
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc || (target !== "lookout" && target !== "raw") || !port || !secret) {
  console.error(
    "usage: deno run -A --v8-flags=--expose-gc bench/heap_host.ts lookout|raw PORT SECRET",
  );
  Deno.exit(2);
}

let stop: () => Promise<void> = () => Promise.resolve();
if (target === "lookout") {
  const dir = await Deno.makeTempDir({ prefix: "lookout-heap-" });
  const lookout = await startLookout(loadConfig({
    PORT: port,
    HOSTNAME: "127.0.0.1",
    KV_PATH: `${dir}/kv.sqlite3`,
    JWT_SECRET: secret,
    TRUST_PROXY: "true",
    LOOKOUT_WORKERS: "1",
  }));
  stop = async () => {
    await lookout.close();
    await Deno.remove(dir, { recursive: true });
  };
} else {
  Deno.env.set("PORT", port);
  Deno.env.set("JWT_SECRET", secret);
  serveRaw();
}
console.log(JSON.stringify({ ready: true }));

let rest = "";
for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
  rest += chunk;
  let end;
  while ((end = rest.indexOf("\n")) >= 0) {
    const [command, arg] = rest.slice(0, end).trim().split(" ");
    rest = rest.slice(end + 1);
    gc();
    gc();
    if (command === "measure") {
      console.log(JSON.stringify({ heapUsed: Deno.memoryUsage().heapUsed }));
    } else if (command === "snapshot") {
      console.log(JSON.stringify({ snapshot: v8.writeHeapSnapshot(arg) }));
    }
  }
}
await stop();
Deno.exit(0);
