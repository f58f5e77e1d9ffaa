/**
 * The benchmark runner: Lookout, a raw Deno server (the ceiling for this
 * runtime), the raw server plus Lookout's durable attempt record (the
 * contract's ceiling) and Socket.IO 4, measured one after the other on this machine
 * with the same load generator, then one table of the four side by side.
 *
 *   deno run -A bench/run.ts [--clients 10000] [--concurrency 64] [--only lookout,raw]
 *                            [--quick] [--profile DIR] [--no-readme] [--json FILE]
 *                            [--compare-root DIR]
 *
 * Each server runs alone, in its own process, while the load generator
 * (bench/loadgen.ts) runs in another; nothing is pinned to a core. Every
 * subprocess is stopped on the way out, also on failure and on Ctrl-C.
 * With `--compare-root`, a second Lookout (another checkout, e.g. an older
 * commit) is measured in the same run and gets a column of its own.
 */
import { SignJWT } from "jose";
import {
  addLookoutAdmin,
  ensureNodeModules,
  NODE_DIR,
  REPO_ROOT,
  type ServerProcess,
  type ServerSecrets,
  startServer,
} from "./launch.ts";
import type { LoadConfig, LoadResult } from "./loadgen.ts";
import { machineBusyMs } from "./proc.ts";
import { folders, runLoadProcess, running, stopAll, stopOnSignals } from "./children.ts";
import type { Target } from "./protocols.ts";
import {
  noise,
  README_END,
  README_START,
  replaceBetweenMarkers,
  type Results,
  table,
  verdictLines,
  verdicts,
} from "./report.ts";
import { readFlags } from "./flags.ts";
import { commandOutput, measuredCommit } from "./commit.ts";
import { randomText, sleep } from "./util.ts";

const USAGE = `usage: deno run -A bench/run.ts [options]

  --clients N       sockets held at the end of the ramp; RSS is also read at N/2 (10000)
  --concurrency C   connects in flight at once (64)
  --churn N         connect+auth+close clients for the rate and latency (= --clients)
  --warmup N        unmeasured clients first (200)
  --rounds N        fanout and revocation rounds, median reported (5)
  --only LIST       comma-separated: lookout, raw, rawkv, socketio (all four; rawkv is
                    raw plus Lookout's durable attempt record, the contract's ceiling)
  --quick           a smoke run: 1000 clients, 1000 churn, 50 warm-up, 2 rounds
  --profile DIR     run Lookout (and raw+KV) under --cpu-prof, writing the profiles into DIR
  --timeout-ms T    longest wait for one connect+auth (10000)
  --no-readme       do not write the table into bench/README.md
  --retries N       measure a server again, up to N times, when other processes used over
                    10% of a core meanwhile; the least disturbed run is kept (1; 0 with --quick)
  --json FILE       also write every raw figure as JSON to FILE
  --compare-root DIR  also measure the Lookout checkout in DIR (e.g. an older commit, from
                    git archive), as a "lookout (before)" column beside this one`;

const TARGETS: Target[] = ["lookout", "raw", "rawkv", "socketio"];
/** The order of the runs: the ceiling first, so a broken machine shows at once. */
const ORDER: Target[] = ["raw", "rawkv", "lookout", "socketio"];
const README = new URL("./README.md", import.meta.url);

interface Options {
  clients: number;
  concurrency: number;
  churn: number;
  warmup: number;
  rounds: number;
  only: Target[];
  quick: boolean;
  profile: string | null;
  timeoutMs: number;
  readme: boolean;
  retries: number;
  json: string | null;
  /** Another Lookout checkout measured beside this one; null without --compare-root. */
  compareRoot: string | null;
}

/** Reads the command line. */
function readOptions(args: string[]): Options {
  const flags = readFlags(args, {
    clients: { type: "string" },
    concurrency: { type: "string" },
    churn: { type: "string" },
    warmup: { type: "string" },
    rounds: { type: "string" },
    only: { type: "string" },
    quick: { type: "boolean", default: false },
    profile: { type: "string" },
    "timeout-ms": { type: "string" },
    "no-readme": { type: "boolean", default: false },
    retries: { type: "string" },
    json: { type: "string" },
    "compare-root": { type: "string" },
  }, { usage: USAGE, doing: "run the benchmark" });
  const { values } = flags;
  const count = (name: Parameters<typeof flags.number>[0], fallback: number, min: number) =>
    flags.number(name, fallback, { min, integer: true });
  const quick = values.quick;
  const clients = count("clients", quick ? 1000 : 10_000, 2);
  const only = (values.only ?? TARGETS.join(",")).split(",").map((s) => s.trim()).filter(Boolean);
  for (const t of only) {
    if (!TARGETS.includes(t as Target)) {
      flags.fail(
        `Cannot run the benchmark as --only must list lookout, raw, rawkv or socketio: current value is ${
          JSON.stringify(t)
        }`,
      );
    }
  }
  return {
    clients,
    concurrency: count("concurrency", 64, 1),
    churn: count("churn", clients, 1),
    warmup: count("warmup", quick ? 50 : 200, 0),
    rounds: count("rounds", quick ? 2 : 5, 1),
    only: ORDER.filter((t) => only.includes(t)),
    quick,
    profile: values.profile ?? null,
    timeoutMs: count("timeout-ms", 10_000, 100),
    readme: !values["no-readme"],
    retries: count("retries", quick ? 0 : 1, 0),
    json: values.json ?? null,
    compareRoot: compareRoot(values["compare-root"], flags.fail),
  };
}

/** `--compare-root`, checked: a folder with Lookout's main.ts and deno.json. */
function compareRoot(dir: string | undefined, fail: (message: string) => never): string | null {
  if (dir === undefined) return null;
  const root = dir.endsWith("/") ? dir : `${dir}/`;
  for (const file of ["main.ts", "deno.json"]) {
    try {
      Deno.statSync(`${root}${file}`);
    } catch {
      fail(
        `Cannot run the benchmark as --compare-root must hold Lookout's ${file}: current value is ${
          JSON.stringify(dir)
        }`,
      );
    }
  }
  return root;
}

/** One line about the machine and the software measured. */
async function machine(): Promise<string> {
  const cpuinfo = await Deno.readTextFile("/proc/cpuinfo").catch(() => "");
  const meminfo = await Deno.readTextFile("/proc/meminfo").catch(() => "");
  const cpu = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1].trim() ?? "unknown CPU";
  const memKib = Number(/^MemTotal:\s+(\d+)/m.exec(meminfo)?.[1] ?? NaN);
  const node = await commandOutput("node", ["--version"]);
  const sio = await Deno.readTextFile(`${NODE_DIR}node_modules/socket.io/package.json`)
    .then((t) => JSON.parse(t).version as string).catch(() => "?");
  return `${navigator.hardwareConcurrency} cores (${cpu}), ${
    (memKib / 1024 / 1024).toFixed(0)
  } GiB RAM, ` +
    `Linux ${Deno.osRelease()} ${Deno.build.arch}; Deno ${Deno.version.deno} (V8 ${Deno.version.v8}), ` +
    `Node ${node || "?"}, Socket.IO ${sio}`;
}

/** Runs the official socket.io-client against the Socket.IO server (bench/servers/sio_check.mjs). */
async function checkSocketIo(server: ServerProcess, secrets: ServerSecrets): Promise<void> {
  const jti = crypto.randomUUID();
  const iat = Math.floor(Date.now() / 1000);
  const token = await new SignJWT({ role: "admin" })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject("bench-check").setIssuer(secrets.issuer).setAudience(secrets.audience)
    .setIssuedAt(iat).setExpirationTime(iat + 600).setJti(jti)
    .sign(new TextEncoder().encode(secrets.secret));
  const child = new Deno.Command("node", {
    args: [`${NODE_DIR}sio_check.mjs`, server.base, token, jti],
    cwd: NODE_DIR,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
  const out = await child.output();
  clearTimeout(timer);
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  if (!out.success) throw new Error(text.trim() || "Socket.IO check failed");
  console.error(`[socketio] ${text.trim()}`);
}

/** Runs the load generator against one server, within `budgetMs`. */
function load(config: LoadConfig, budgetMs: number): Promise<LoadResult> {
  return runLoadProcess(
    "bench/loadgen.ts",
    { BENCH_LOADGEN: JSON.stringify(config) },
    budgetMs,
    config.target,
  );
}

/** Starts one server (Lookout from the checkout `root`), loads it, stops it. */
async function measure(
  target: Target,
  options: Options,
  secrets: ServerSecrets,
  root: string,
): Promise<LoadResult> {
  const dir = await Deno.makeTempDir({ prefix: "lookout-bench-" });
  folders.add(dir);
  let server: ServerProcess | null = null;
  try {
    // raw_deno.ts imports jose too: bench/servers/package.json makes Deno
    // resolve it from that folder's node_modules, not from deno.json.
    if (target !== "lookout") await ensureNodeModules();
    const lookoutFlags = options.profile
      ? ["--cpu-prof", `--cpu-prof-dir=${await Deno.realPath(options.profile)}`]
      : [];
    const kvPath = `${dir}/lookout.sqlite3`;
    if (target === "lookout") await addLookoutAdmin(secrets, kvPath, root);
    server = await startServer(target, secrets, { kvPath, lookoutFlags, cwd: root });
    running.add(server);
    console.error(`[${target}] pid ${server.pid} on ${server.base}`);
    if (target === "socketio") await checkSocketIo(server, secrets);
    const budgetMs = 60_000 + options.clients * 60 + options.churn * 20 + options.rounds * 30_000;
    const result = await load({
      target,
      base: server.base,
      pid: server.pid,
      secret: secrets.secret,
      issuer: secrets.issuer,
      audience: secrets.audience,
      clients: options.clients,
      churn: options.churn,
      warmup: options.warmup,
      concurrency: options.concurrency,
      rounds: options.rounds,
      timeoutMs: options.timeoutMs,
      login: target === "lookout" ? secrets.admin : undefined,
    }, budgetMs);
    for (const e of result.errors) console.error(`[${target}] ${e}`);
    return result;
  } catch (error) {
    if (server) console.error(`[${target}] server output:\n${server.output()}`);
    throw error;
  } finally {
    if (server) {
      await server.stop();
      running.delete(server);
    }
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    folders.delete(dir);
  }
}

/** Share of one core that other processes used during a run's churn and ramp. */
function disturbance(r: LoadResult): number {
  return (r.churn.otherCpuMs + r.ramp.otherCpuMs) / (r.churn.wallMs + r.ramp.wallMs);
}

/** Waits, at most `maxMs`, until the machine is idle: under 10% of a core busy over 2 s. */
async function waitForQuiet(target: Target, maxMs = 120_000): Promise<void> {
  const until = Date.now() + maxMs;
  let said = false;
  while (Date.now() < until) {
    const before = await machineBusyMs();
    await sleep(2000);
    const busy = (await machineBusyMs() - before) / 2000;
    if (busy < 0.1) return;
    if (!said) {
      console.error(
        `[${target}] other processes keep ${(100 * busy).toFixed(0)}% of a core busy: waiting`,
      );
      said = true;
    }
  }
}

/**
 * Measures `target`, again (up to `--retries` times) when other processes
 * disturbed it, and keeps the least disturbed run. Runs are chosen by the
 * disturbance alone, never by their figures.
 */
async function measureQuietly(
  target: Target,
  options: Options,
  secrets: ServerSecrets,
  root = REPO_ROOT,
): Promise<LoadResult> {
  let best: LoadResult | null = null;
  for (let attempt = 0; attempt <= options.retries; attempt++) {
    if (attempt > 0 || options.retries > 0) await waitForQuiet(target);
    const result = await measure(target, options, secrets, root);
    if (best === null || disturbance(result) < disturbance(best)) best = result;
    if (disturbance(best) <= 0.1) break;
    if (attempt < options.retries) {
      console.error(
        `[${target}] other processes used ${
          (100 * disturbance(result)).toFixed(0)
        }% of a core: measuring again`,
      );
    }
  }
  return best!;
}

/** The commit measured, in words for the README. */
async function gitState(): Promise<string> {
  const commit = await measuredCommit();
  return commit ? `the working tree at ${commit}` : "unknown commit";
}

/** The commit of another checkout, or its folder when it is not a git checkout (git archive). */
async function checkoutState(root: string): Promise<string> {
  const commit = await commandOutput("git", ["rev-parse", "--short", "HEAD"], root);
  return commit ? `the checkout ${root} at ${commit}` : `the files in ${root}`;
}

/** Runs the benchmark with command-line `args`; resolves with the exit status. */
export async function main(args: string[]): Promise<number> {
  const options = readOptions(args);
  if (options.profile) await Deno.mkdir(options.profile, { recursive: true });
  const secrets: ServerSecrets = {
    secret: randomText(),
    issuer: "lookout",
    audience: "lookout",
    admin: { username: "bench-admin", password: randomText(18) },
  };
  stopOnSignals();

  const started = new Date();
  const results: Results = {};
  let before: LoadResult | undefined;
  let failed = 0;
  try {
    for (const target of options.only) {
      if (target === "lookout" && options.compareRoot) {
        // The other checkout first, right before this one, so the two
        // Lookouts see the machine as alike as one run allows.
        try {
          before = await measureQuietly(target, options, secrets, options.compareRoot);
        } catch (error) {
          failed++;
          console.error(`[lookout (before)] ${(error as Error).message}`);
        }
      }
      try {
        results[target] = await measureQuietly(target, options, secrets);
      } catch (error) {
        failed++;
        console.error(`[${target}] ${(error as Error).message}`);
      }
    }
  } finally {
    await stopAll();
  }

  const shape = {
    half: Math.floor(options.clients / 2),
    full: options.clients,
    concurrency: options.concurrency,
  };
  const lookoutEnv = Deno.env.get("LOOKOUT_WORKERS");
  const about = [
    `- Run ${started.toISOString().slice(0, 16).replace("T", " ")} UTC: \`deno run -A bench/run.ts${
      args.length ? ` ${args.join(" ")}` : ""
    }\`: ${options.clients} held sockets (RSS also at ${shape.half}), ${options.churn} churn clients, ` +
    `${options.concurrency} connects in flight, ${options.warmup} warm-up, ${options.rounds} fanout and revocation rounds.`,
    `- Machine: ${await machine()}.`,
    `- Lookout: ${await gitState()}, started as \`deno run -A main.ts\`` +
    (lookoutEnv ? ` with LOOKOUT_WORKERS=${lookoutEnv}` : "") +
    (options.profile ? ", under --cpu-prof" : "") + "." +
    (options.compareRoot
      ? ` Lookout (before): ${await checkoutState(options.compareRoot)}, started the same way.`
      : ""),
    "- The load generator and the server run as two processes on the same cores; nothing is pinned.",
  ].join("\n");
  const noisy = noise(before ? { ...results, "lookout (before)": before } : results);
  const text = `${about}\n\n${
    table(results, shape, before)
  }\n\nTargets (Lookout against the others):\n\n${verdictLines(verdicts(results))}\n${
    noisy.length ? `\n${noisy.join("\n")}\n` : ""
  }`;
  console.log(`\n${text}`);

  const complete = TARGETS.every((t) => results[t]);
  if (options.readme && complete && !options.quick && !options.profile && !options.compareRoot) {
    const readme = await Deno.readTextFile(README);
    await Deno.writeTextFile(README, replaceBetweenMarkers(readme, text));
    // deno fmt wraps Markdown prose: keep the file as `deno fmt --check` wants it.
    await new Deno.Command(Deno.execPath(), {
      args: ["fmt", "-q", "bench/README.md"],
      cwd: REPO_ROOT,
    })
      .output();
    console.error(
      `wrote the table into bench/README.md (between ${README_START} and ${README_END})`,
    );
  } else if (options.readme) {
    console.error(
      "bench/README.md left as it was: it only takes a full run of all four servers, without --quick, --profile or --compare-root",
    );
  }
  if (options.json) {
    await Deno.writeTextFile(
      options.json,
      JSON.stringify({ options, results, before: before ?? null }, null, 2),
    );
  }
  if (options.profile) console.error(`Lookout's CPU profile is in ${options.profile}`);
  return failed ? 1 : 0;
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (error) {
    console.error((error as Error).message);
    await stopAll();
    Deno.exit(1);
  }
}
