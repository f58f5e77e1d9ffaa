/**
 * Lookout's entry point. It only wires: configuration, the instances (one
 * per worker, server.ts) and a clean shutdown on a signal.
 */
import { type Config, ConfigError, loadConfig } from "./lib/config.ts";
import { portInUse } from "./lib/http/port.ts";
import { createLogger, setupLogging } from "./lib/log.ts";
import { startLookout } from "./server.ts";
import { displayUrl, startupBanner } from "./lib/banner.ts";

/** How long a stop may take before the process exits regardless. */
const STOP_DEADLINE_MS = 9_000;

/**
 * Runs Lookout: one instance per worker (one worker per core, sharing the
 * port), each a full instance with its own KV handle; the main thread only
 * supervises. On SIGINT or SIGTERM every instance drains (new upgrades get
 * 503, sockets close 1001, pending attempt records are committed) and the
 * process exits within 10 s. Resolves with the address served.
 */
async function run(config: Config): Promise<URL> {
  if (config.workers === 1) {
    const lookout = await startLookout(config);
    onStopSignal(async () => {
      await lookout.close();
    });
    return lookout.url;
  }
  const workers = Array.from(
    { length: config.workers },
    (_, i) =>
      new Worker(new URL("./worker.ts", import.meta.url), { type: "module", name: `worker-${i}` }),
  );
  const started = workers.map((w) =>
    new Promise<void>((resolve, reject) => {
      w.onmessage = (e) => e.data?.type === "started" ? resolve() : undefined;
      w.onerror = (e) => reject(e.error ?? new Error(e.message));
      w.postMessage({ type: "start", config });
    })
  );
  await Promise.all(started);
  onStopSignal(async () => {
    await Promise.all(workers.map((w) =>
      new Promise<void>((resolve) => {
        w.onmessage = (e) => e.data?.type === "stopped" ? resolve() : undefined;
        w.postMessage({ type: "stop" });
      })
    ));
  });
  // Workers only share a fixed port (config makes PORT=0 one worker).
  return displayUrl(config.hostname, config.port);
}

/** On SIGINT or SIGTERM: stop, then exit; exit anyway at the deadline. */
function onStopSignal(stop: () => Promise<void>): void {
  let stopping = false;
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, async () => {
      if (stopping) return;
      stopping = true;
      createLogger().info("stopping", { signal });
      setTimeout(() => Deno.exit(1), STOP_DEADLINE_MS);
      await stop();
      Deno.exit(0);
    });
  }
}

if (import.meta.main) {
  let config: Config;
  try {
    config = loadConfig(Deno.env.toObject());
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    console.error(error.message);
    Deno.exit(1);
  }
  // Before the workers bind with reusePort, which would share the port
  // with whoever serves it already.
  if (portInUse(config.hostname, config.port)) {
    console.error(`Cannot start as port ${config.port} is already in use by another process`);
    Deno.exit(1);
  }
  setupLogging(config.logLevel, { console: config.logToConsole });
  const url = await run(config);
  // For a person at a terminal only; elsewhere (CI, containers, a pipe) the
  // JSON lines are the interface. On stderr, so `| jq` still reads only JSON.
  if (Deno.stderr.isTerminal()) console.error(startupBanner(config, url));
}
