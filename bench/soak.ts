/**
 * The soak: Lookout holds many authenticated sockets with churn for a long
 * while; the run reports how its RSS drifts and whether any attempt that a
 * client got an answer for is missing from KV.
 *
 *   deno run -A bench/soak.ts [--sockets 10000] [--minutes 10] [--churn-per-s 50]
 *                             [--quick] [--json FILE]
 *
 * Three processes: this one starts Lookout (bench/launch.ts, its one start
 * command, on a KV file in a fresh temporary folder) and the load generator
 * (bench/soak_load.ts); at the end it stops the server with SIGTERM, which
 * drains, and counts the stored attempt records. Every subprocess is stopped
 * on the way out, also on failure and on Ctrl-C.
 */
import {
  REPO_ROOT,
  type ServerProcess,
  type ServerSecrets,
  startServer,
  stoppable,
} from "./launch.ts";
import type { SoakLoadConfig, SoakLoadResult, SoakShutdown } from "./soak_load.ts";
import { countStore } from "./soak_store.ts";
import {
  type GcPoint,
  n,
  parseGcLine,
  report,
  rssDrift,
  type SoakOptions,
  type SoakResult,
  TARGET_MINUTES,
  verdicts,
} from "./soak_report.ts";
import { readFlags } from "./flags.ts";
import { measuredCommit } from "./commit.ts";
import { randomText, sleep } from "./util.ts";

const USAGE = `usage: deno run -A bench/soak.ts [options]

  --sockets N         authenticated sockets held (10000)
  --minutes M         how long they are held with churn, fractions allowed (10)
  --churn-per-s R     held sockets disconnected and replaced by a new connect+auth a second (50)
  --fail-fraction F   failing attempts (expired token, bad signature) per churn cycle (0.02)
  --warmup-s S        seconds into the hold where the warm-up ends (10% of the hold, at most 60);
                      the drift compares the median RSS of the window after it (10% of the hold,
                      at most 60 s) with the median of the hold's last window
  --sample-s S        seconds between RSS samples (10)
  --concurrency C     connects in flight at once during the ramp (64)
  --timeout-ms T      longest wait for one connect+auth (10000)
  --quick             a smoke run: 1000 sockets for 1 minute
  --trace-gc          start Lookout with --v8-flags=--trace-gc and report its heap after each
                      full collection: what is live, apart from what V8 has not collected yet
  --json FILE         also write every figure as JSON to FILE

Exit status: 0 when both targets pass, 3 when one is missed, 1 when the run failed.`;

/** How long the server gets after the load stops before SIGTERM. */
const FLUSH_MS = 2000;

/** Reads the command line. */
function readOptions(args: string[]): SoakOptions {
  const flags = readFlags(args, {
    sockets: { type: "string" },
    minutes: { type: "string" },
    "churn-per-s": { type: "string" },
    "fail-fraction": { type: "string" },
    "warmup-s": { type: "string" },
    "sample-s": { type: "string" },
    concurrency: { type: "string" },
    "timeout-ms": { type: "string" },
    quick: { type: "boolean", default: false },
    "trace-gc": { type: "boolean", default: false },
    json: { type: "string" },
  }, { usage: USAGE, doing: "run the soak" });
  const { values } = flags;
  const quick = values.quick;
  const minutes = flags.number("minutes", quick ? 1 : TARGET_MINUTES, { min: 0.1, max: 24 * 60 });
  return {
    sockets: flags.number("sockets", quick ? 1000 : 10_000, {
      min: 1,
      max: 60_000,
      integer: true,
    }),
    minutes,
    churnPerS: flags.number("churn-per-s", 50, { min: 0, max: 2000 }),
    failFraction: flags.number("fail-fraction", 0.02, { min: 0, max: 1 }),
    warmupS: flags.number("warmup-s", Math.min(60, minutes * 6), { min: 0, max: minutes * 60 }),
    sampleS: flags.number("sample-s", 10, { min: 1, max: 600 }),
    concurrency: flags.number("concurrency", 64, { min: 1, max: 1000, integer: true }),
    timeoutMs: flags.number("timeout-ms", 10_000, { min: 100, max: 120_000, integer: true }),
    quick,
    traceGc: values["trace-gc"],
    json: values.json ?? null,
  };
}

/** The load generator's process: its JSON lines one event at a time. */
interface LoadProcess {
  /** The next line whose `event` is `name`; rejects when the process ends first. */
  next<T>(name: string): Promise<T>;
  /** Tells it the server has stopped. */
  release(): Promise<void>;
  kill(): Promise<void>;
}

function startLoad(config: SoakLoadConfig): LoadProcess {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "bench/soak_load.ts"],
    cwd: REPO_ROOT,
    env: { SOAK_LOAD: JSON.stringify(config), NO_COLOR: "1" },
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const { status, stop } = stoppable(child);
  const lines = (async function* () {
    let buffer = "";
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
      buffer += chunk;
      let nl;
      while ((nl = buffer.indexOf("\n")) >= 0) {
        yield buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
      }
    }
  })();
  const stdin = child.stdin.getWriter();
  return {
    async next<T>(name: string): Promise<T> {
      // Not `for await`: leaving that loop would close the generator for the next call.
      while (true) {
        const { value: line, done } = await lines.next();
        if (done) break;
        if (!line.startsWith("{")) continue;
        const msg = JSON.parse(line);
        if (msg.event === name) return msg as T;
      }
      const { code } = await status;
      throw new Error(`Cannot run the soak: the load generator exited with ${code}`);
    },
    async release() {
      await stdin.write(new TextEncoder().encode("stopped\n")).catch(() => {});
      await stdin.close().catch(() => {});
    },
    kill: () => stop(3000),
  };
}

function waitOrKill<T>(p: Promise<T>, ms: number, what: string, load: LoadProcess): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      load.kill();
      reject(new Error(`Cannot run the soak: ${what} took over ${Math.round(ms / 1000)} s`));
    }, ms);
  });
  return Promise.race([p, limit]).finally(() => clearTimeout(timer));
}

/** Runs the soak once. */
async function soak(options: SoakOptions, cleanups: Set<() => Promise<void>>): Promise<SoakResult> {
  const startedAt = new Date().toISOString();
  const tree = await measuredCommit() ?? "unknown commit";
  const secrets: ServerSecrets = {
    secret: randomText(),
    issuer: "lookout",
    audience: "lookout",
    // Not created: the soak never logs in.
    admin: { username: "soak-admin", password: randomText(18) },
  };
  const dir = await Deno.makeTempDir({ prefix: "lookout-soak-" });
  const removeDir = () => Deno.remove(dir, { recursive: true }).catch(() => {});
  cleanups.add(removeDir);
  const kvPath = `${dir}/lookout.sqlite3`;
  const gc: GcPoint[] = [];
  // Close to the isolate's start, from which V8 counts its time stamps.
  const spawnedAt = Date.now();
  let partial = "";
  const server: ServerProcess = await startServer("lookout", secrets, {
    kvPath,
    lookoutFlags: options.traceGc ? ["--v8-flags=--trace-gc"] : [],
    onStdout: options.traceGc
      ? (chunk) => {
        const lines = (partial + chunk).split("\n");
        partial = lines.pop()!;
        for (const line of lines) {
          const point = parseGcLine(line);
          if (point) gc.push(point);
        }
      }
      : undefined,
  });
  const stopServer = () => server.stop();
  cleanups.add(stopServer);
  console.error(`[soak] lookout pid ${server.pid} on ${server.base}, KV ${kvPath}`);
  const runId = `soak-${Date.now().toString(36)}`;
  const config: SoakLoadConfig = {
    base: server.base,
    pid: server.pid,
    secret: secrets.secret,
    issuer: secrets.issuer,
    audience: secrets.audience,
    sockets: options.sockets,
    holdMs: options.minutes * 60_000,
    warmupMs: options.warmupS * 1000,
    churnPerS: options.churnPerS,
    failFraction: options.failFraction,
    concurrency: options.concurrency,
    timeoutMs: options.timeoutMs,
    sampleMs: options.sampleS * 1000,
    runId,
    ledgerPath: `${dir}/ledger.json`,
  };
  const load = startLoad(config);
  const killLoad = () => load.kill();
  cleanups.add(killLoad);
  try {
    const budgetMs = 120_000 + options.sockets * 20 + config.holdMs + 2 * options.timeoutMs;
    const { result } = await waitOrKill(
      load.next<{ result: SoakLoadResult }>("stopped"),
      budgetMs,
      "the load",
      load,
    );
    // Let the server commit what it still holds, then stop it as production does.
    await sleep(FLUSH_MS);
    const t0 = performance.now();
    await server.stop(12_000);
    const serverStopMs = performance.now() - t0;
    cleanups.delete(stopServer);
    await load.release();
    const { shutdown } = await waitOrKill(
      load.next<{ shutdown: SoakShutdown }>("done"),
      15_000,
      "counting the closes",
      load,
    );
    await load.kill();
    cleanups.delete(killLoad);
    const store = await countStore(kvPath, runId, config.ledgerPath);
    const serverLog = server.output().split("\n")
      .filter((line) => /"level":"(WARN|WARNING|ERROR|FATAL)"/.test(line));
    const drift = rssDrift(result, Math.min(60, options.minutes * 6));
    return {
      options,
      startedAt,
      tree,
      gc: options.traceGc
        ? gc.map((p) => ({
          ...p,
          t: Math.round((spawnedAt + p.ms - result.holdStartedAt) / 100) / 10,
        }))
        : null,
      load: result,
      shutdown,
      serverStopMs,
      store,
      serverLog,
      drift,
      verdicts: verdicts(options.minutes, drift, store),
    };
  } catch (error) {
    console.error(`[soak] server output:\n${server.output()}`);
    throw error;
  }
}

/** Runs the soak with command-line `args`; resolves with the exit status. */
export async function main(args: string[]): Promise<number> {
  const options = readOptions(args);
  const cleanups = new Set<() => Promise<void>>();
  const cleanUp = async () => {
    // The load generator first, then the server, then the folder.
    for (const c of [...cleanups].reverse()) await c().catch(() => {});
    cleanups.clear();
  };
  const onSignal = () => cleanUp().finally(() => Deno.exit(130));
  for (const s of ["SIGINT", "SIGTERM"] as const) Deno.addSignalListener(s, onSignal);
  try {
    console.error(
      `[soak] ${
        n(options.sockets)
      } sockets for ${options.minutes} min, ${options.churnPerS} churn cycles/s, ${
        options.failFraction * 100
      }% failing, warm-up ${options.warmupS} s`,
    );
    const result = await soak(options, cleanups);
    console.log(
      `\nSoak ${result.startedAt.slice(0, 16).replace("T", " ")} UTC: \`deno run -A bench/soak.ts${
        args.length ? ` ${args.join(" ")}` : ""
      }\`, Lookout at ${result.tree}\n\n${report(result)}`,
    );
    if (options.json) await Deno.writeTextFile(options.json, JSON.stringify(result, null, 2));
    return result.verdicts.every((v) => v.pass) ? 0 : 3;
  } finally {
    await cleanUp();
    for (const s of ["SIGINT", "SIGTERM"] as const) Deno.removeSignalListener(s, onSignal);
  }
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (error) {
    console.error((error as Error).message);
    Deno.exit(1);
  }
}
