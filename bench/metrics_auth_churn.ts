/**
 * The auth churn of the ingest benchmark (issue 14, part 3), in a process of
 * its own: Lookout's authenticated connect rate while its dashboard sockets
 * are held, without and with ingest. It mints every phase's HS256 tokens
 * first (loadgen.ts's `mintTokens`), prints `{"ready":true}`, then for each
 * line `start LABEL` on stdin runs connect+auth+close clients, `concurrency`
 * at a time (clients.ts's `connect` and `runPool`, the churn bench/run.ts
 * measures), until the line `stop` or until the phase's tokens run out, and
 * prints one JSON line of {@linkcode AuthChurnFigures}. It exits when stdin
 * closes.
 *
 *   BENCH_AUTH_CHURN='{"base","pid","secret","issuer","audience","phases",...}' \
 *     deno run -A bench/metrics_auth_churn.ts
 */
import { addressOf, connect, runPool } from "./clients.ts";
import { type ConnectFigures, figures, mintTokens } from "./loadgen.ts";
import { cpuMs, machineIdleMs } from "./proc.ts";

/** What the process is told, as JSON in BENCH_AUTH_CHURN. */
export interface AuthChurnConfig {
  /** Lookout's HTTP base and process id. */
  base: string;
  pid: number;
  secret: string;
  issuer: string;
  audience: string;
  /** The phases it will be asked to run, each with the tokens minted for it. */
  phases: { label: string; tokens: number }[];
  concurrency: number;
  timeoutMs: number;
  /**
   * The benchmark's other processes (the runner with its senders, the
   * watchers): their CPU is load, not noise, so "other processes" leaves it out.
   */
  loadPids: number[];
}

/** One phase's figures: loadgen.ts's, and what the machine did meanwhile. */
export interface AuthChurnFigures extends ConnectFigures {
  label: string;
  /** True when the phase's tokens ran out before it was told to stop. */
  ranOut: boolean;
  /** Lookout's CPU time per authenticated connect (ms): all of Lookout's, so with ingest, ingest's too. */
  serverCpuMsPerConnect: number;
  /** CPU time of `loadPids` meanwhile. */
  loadCpuMs: number;
  /** Every other process's CPU (other engineers, the kernel), as a share of one core. */
  otherShare: number;
  /** The machine's idle time, as a share of all its cores. */
  idleShare: number;
}

/** Sum of the CPU time of `pids`, in ms. */
async function cpuOf(pids: number[]): Promise<number> {
  let total = 0;
  for (const pid of pids) total += await cpuMs(pid);
  return total;
}

async function main(): Promise<void> {
  const raw = Deno.env.get("BENCH_AUTH_CHURN");
  if (!raw) throw new Error("Cannot start the auth churn as BENCH_AUTH_CHURN is unset");
  const config: AuthChurnConfig = JSON.parse(raw);
  const tokens = new Map<string, string[]>();
  for (const phase of config.phases) {
    tokens.set(phase.label, (await mintTokens(config, phase.tokens)).map((t) => t.token));
  }
  console.log(JSON.stringify({ ready: true }));
  const lines = Deno.stdin.readable.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  const nextLine = async (): Promise<string | null> => {
    while (!buffer.includes("\n")) {
      const { done, value } = await lines.read();
      if (done) return null;
      buffer += value;
    }
    const at = buffer.indexOf("\n");
    const line = buffer.slice(0, at).trim();
    buffer = buffer.slice(at + 1);
    return line;
  };
  while (true) {
    const line = await nextLine();
    if (line === null) break;
    const label = line.startsWith("start ") ? line.slice(6) : "";
    const phaseTokens = tokens.get(label);
    if (!phaseTokens) {
      throw new Error(
        `Cannot run an auth churn phase as it must be one of ${
          [...tokens.keys()].join(", ")
        }: current value is ${JSON.stringify(line)}`,
      );
    }
    tokens.delete(label);
    let stopped = false;
    const told = nextLine().then((l) => {
      stopped = true;
      return l;
    });
    const [load0, idle0] = [await cpuOf(config.loadPids), await machineIdleMs()];
    let ran = 0;
    const f = await figures(config, async () => {
      const run = await runPool(
        phaseTokens.length,
        config.concurrency,
        (i, w) =>
          connect("lookout", config.base, phaseTokens[i], {
            // One address per worker, as loadgen.ts's churn: Lookout's
            // per-IP limits (TRUST_PROXY) are not what is measured.
            ip: addressOf(120, w),
            timeoutMs: config.timeoutMs,
            keep: false,
          }),
        { stop: () => stopped },
      );
      ran = run.results.length;
      return run;
    });
    const [load1, idle1] = [await cpuOf(config.loadPids), await machineIdleMs()];
    const ranOut = !stopped && ran >= phaseTokens.length;
    const stop = await told;
    const loadCpuMs = load1 - load0;
    const otherMs = Math.max(0, f.otherCpuMs - loadCpuMs);
    const busy = f.serverCpuMs + f.loadgenCpuMs + f.otherCpuMs;
    const idle = idle1 - idle0;
    const result: AuthChurnFigures = {
      ...f,
      label,
      ranOut,
      serverCpuMsPerConnect: f.serverCpuMs / f.ok,
      loadCpuMs,
      otherShare: otherMs / f.wallMs,
      idleShare: idle / (busy + idle),
    };
    console.log(JSON.stringify(result));
    if (stop === null) break;
  }
  Deno.exit(0);
}

if (import.meta.main) {
  try {
    await main();
  } catch (error) {
    console.error(`[auth churn] ${(error as Error).message}`);
    Deno.exit(1);
  }
}
