/**
 * Starts the four servers as subprocesses on loopback and stops them again.
 * The Lookout command is defined once, in {@linkcode lookoutCommand}.
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { Target } from "./protocols.ts";
import { sleep } from "./util.ts";

/** The repository root, the working directory of every server. */
export const REPO_ROOT = fileURLToPath(new URL("../", import.meta.url));
/** Where the Node servers and their node_modules live. */
export const NODE_DIR = fileURLToPath(new URL("./servers/", import.meta.url));

/** What every server is told about tokens. */
export interface ServerSecrets {
  secret: string;
  issuer: string;
  audience: string;
  /** Lookout's admin, created with `deno task user:add`, who logs in for the revocation rounds. */
  admin: { username: string; password: string };
}

/** A running server subprocess. */
export interface ServerProcess {
  target: Target;
  pid: number;
  base: string;
  /** The last lines it wrote, for a failure report. */
  output(): string;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once it exited. */
  stop(graceMs?: number): Promise<void>;
}

/** How one server is run. */
interface Command {
  cmd: string;
  args: string[];
  env: Record<string, string>;
}

/**
 * THE Lookout start command: the one place that says how the benchmark runs
 * Lookout, as production runs it. To benchmark `deno serve --parallel`
 * instead, return
 * `["serve", "--parallel", ...flags, "-A", "--host", "127.0.0.1", "--port", String(port), "main.ts"]`
 * (deno serve takes its address from flags, not from PORT and HOSTNAME).
 * `flags` are extra Deno flags such as `--cpu-prof`.
 */
export function lookoutCommand(
  port: number,
  secrets: ServerSecrets,
  options: { kvPath: string; flags: string[] },
): Command {
  const env: Record<string, string> = {
    PORT: String(port),
    HOSTNAME: "127.0.0.1",
    KV_PATH: options.kvPath,
    JWT_SECRET: secrets.secret,
    JWT_ISSUER: secrets.issuer,
    JWT_AUDIENCE: secrets.audience,
    // Each load-generator worker sends its own X-Forwarded-For address, so
    // the per-IP limits (16 pending sockets, 20 failures a minute) see
    // clients, not the one loopback address.
    TRUST_PROXY: "true",
    NO_COLOR: "1",
  };
  // One instance, like the raw server and Socket.IO (one JS thread each): on
  // two cores the load generator takes the other one. LOOKOUT_WORKERS=2 in
  // the environment measures production's one-per-core instead.
  env.LOOKOUT_WORKERS = Deno.env.get("LOOKOUT_WORKERS") ?? "1";
  return {
    cmd: Deno.execPath(),
    args: ["run", ...options.flags, "-A", "main.ts"],
    env,
  };
}

/**
 * Creates Lookout's admin in its KV file with `deno task user:add`, before
 * the start. (ADMIN_USERNAME/ADMIN_PASSWORD would do it at start-up, but with
 * one instance per worker on one file the instances race to create it and
 * one can die of "database is locked".) `root` is the checkout whose task
 * runs: the one the server will start from.
 */
export async function addLookoutAdmin(
  secrets: ServerSecrets,
  kvPath: string,
  root: string = REPO_ROOT,
): Promise<void> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["task", "-q", "user:add", secrets.admin.username, "--role", "admin"],
    cwd: root,
    env: { KV_PATH: kvPath, LOOKOUT_PASSWORD: secrets.admin.password, NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(
      `Cannot create Lookout's admin with deno task user:add: ${
        new TextDecoder().decode(out.stderr).trim()
      }`,
    );
  }
}

/**
 * Installs the comparison servers' packages (`npm install` in bench/servers)
 * when they are missing: raw_deno.ts resolves jose from that folder's
 * node_modules (its package.json makes Deno skip deno.json).
 */
export async function ensureNodeModules(): Promise<void> {
  if (existsSync(`${NODE_DIR}node_modules/socket.io`)) return;
  console.error("installing the comparison servers' packages (npm install in bench/servers)");
  const out = await new Deno.Command("npm", {
    args: ["install", "--no-audit", "--no-fund"],
    cwd: NODE_DIR,
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (!out.success) {
    throw new Error("Cannot install the comparison servers' packages: npm install failed");
  }
}

function rawCommand(port: number, secrets: ServerSecrets): Command {
  return {
    cmd: Deno.execPath(),
    args: ["run", "-A", "bench/servers/raw_deno.ts"],
    env: tokenEnv(port, secrets),
  };
}

/** The raw server plus one durable attempt record per authentication (bench/servers/raw_kv.ts). */
function rawKvCommand(
  port: number,
  secrets: ServerSecrets,
  kvPath: string,
  flags: string[],
): Command {
  return {
    cmd: Deno.execPath(),
    // bench/servers/package.json makes Deno skip deno.json's "unstable" list.
    args: ["run", ...flags, "-A", "--unstable-kv", "bench/servers/raw_kv.ts"],
    env: { ...tokenEnv(port, secrets), KV_PATH: kvPath },
  };
}

function socketIoCommand(port: number, secrets: ServerSecrets): Command {
  return { cmd: "node", args: [`${NODE_DIR}socketio.mjs`], env: tokenEnv(port, secrets) };
}

function tokenEnv(port: number, secrets: ServerSecrets): Record<string, string> {
  return {
    PORT: String(port),
    JWT_SECRET: secrets.secret,
    JWT_ISSUER: secrets.issuer,
    JWT_AUDIENCE: secrets.audience,
    NO_COLOR: "1",
  };
}

/** A free TCP port on loopback: bind port 0, note what the OS picked, let it go. */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/**
 * Keeps the last `max` characters of a stream (and so keeps the pipe
 * drained); `listen`, when given, sees every chunk as it arrives.
 */
export function tail(
  stream: ReadableStream<Uint8Array>,
  max = 6000,
  listen?: (chunk: string) => void,
): () => string {
  let text = "";
  (async () => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      text = (text + chunk).slice(-max);
      listen?.(chunk);
    }
  })().catch(() => {});
  return () => text;
}

/** Options of {@linkcode startServer}. */
export interface StartOptions {
  /** Lookout's KV file. */
  kvPath: string;
  /** Extra Deno flags for Lookout and the raw+KV server (profiling). */
  lookoutFlags: string[];
  /** Longest wait for `/healthz`. */
  readyMs?: number;
  /** Sees everything the server writes to stdout, chunk by chunk (V8's `--trace-gc` lines). */
  onStdout?: (chunk: string) => void;
  /** Where the server runs from: this repository unless given (another checkout of Lookout). */
  cwd?: string;
  /** More environment for Lookout (a limit a benchmark must not measure). */
  lookoutEnv?: Record<string, string>;
}

/**
 * `child`'s exit, and a stop that sends SIGTERM, then SIGKILL if it is still
 * running after `graceMs`, and resolves once it has exited.
 */
export function stoppable(child: Deno.ChildProcess): {
  exited: () => boolean;
  status: Promise<Deno.CommandStatus>;
  stop: (graceMs: number) => Promise<void>;
} {
  let exited = false;
  const status = child.status.finally(() => exited = true);
  const stop = async (graceMs: number) => {
    if (exited) return;
    try {
      child.kill("SIGTERM");
    } catch {
      // Gone already.
    }
    const timer = setTimeout(() => {
      if (!exited) child.kill("SIGKILL");
    }, graceMs);
    await status;
    clearTimeout(timer);
  };
  return { exited: () => exited, status, stop };
}

/** Starts `target` on a free loopback port and waits for its `/healthz`. */
export async function startServer(
  target: Target,
  secrets: ServerSecrets,
  options: StartOptions,
): Promise<ServerProcess> {
  const port = freePort();
  const command = target === "lookout"
    ? lookoutCommand(port, secrets, { kvPath: options.kvPath, flags: options.lookoutFlags })
    : target === "raw"
    ? rawCommand(port, secrets)
    : target === "rawkv"
    ? rawKvCommand(port, secrets, options.kvPath, options.lookoutFlags)
    : socketIoCommand(port, secrets);
  const child = new Deno.Command(command.cmd, {
    args: command.args,
    cwd: options.cwd ?? REPO_ROOT,
    env: target === "lookout" ? { ...command.env, ...options.lookoutEnv } : command.env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stdout = tail(child.stdout, 6000, options.onStdout);
  const stderr = tail(child.stderr);
  const output = () => `${stdout()}\n${stderr()}`.trim();
  const { exited, status, stop: stopChild } = stoppable(child);
  const stop = (graceMs = 12_000) => stopChild(graceMs);
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + (options.readyMs ?? 60_000);
  while (true) {
    if (exited()) {
      throw new Error(
        `Cannot start ${target}: it exited with ${(await status).code}\n${output()}`,
      );
    }
    try {
      const res = await fetch(`${base}/healthz`);
      await res.body?.cancel();
      if (res.ok) return { target, pid: child.pid, base, output, stop };
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) {
      await stop(2000);
      throw new Error(`Cannot start ${target}: /healthz did not answer in time\n${output()}`);
    }
    await sleep(100);
  }
}
