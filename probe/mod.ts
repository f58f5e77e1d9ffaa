/**
 * The connection doctor behind `deno task probe`: DNS, TCP, TLS, the HTTP
 * upgrade, auth and the first stats, run in order until one fails. Each
 * step is also exported on its own, returning what it saw and, on failure,
 * the cause and what to do in one sentence; the CLI prints these, the tests
 * call them.
 */
import { parseTarget, type ProbeOptions, type Step, step, type Target } from "./core.ts";
import { connectStep, lookupStep, tlsStep } from "./net.ts";
import { authStep, holdStep, statsStep } from "./session.ts";
import { type UpgradeStep, upgradeStep } from "./upgrade.ts";
import type { FrameSocket } from "./ws_wire.ts";

export {
  DEFAULT_PATH,
  DEFAULT_TIMEOUT_MS,
  parseTarget,
  type ProbeOptions,
  ProbeUsageError,
  type Step,
  type StepName,
  type Target,
} from "./core.ts";
export { connectStep, type DnsStep, lookupStep, tlsStep } from "./net.ts";
export { type UpgradeStep, upgradeStep } from "./upgrade.ts";
export {
  type AuthStep,
  authStep,
  type HoldStep,
  holdStep,
  type StatsStep,
  statsStep,
  summarizeStats,
} from "./session.ts";
export { type LoginStep, loginStep, logoutRequest } from "./login.ts";

/** Everything a probe saw; `ok` when the path through to stats (or the awaited timeout) worked. */
export interface ProbeReport {
  target: Target;
  steps: Step[];
  ok: boolean;
}

/**
 * TCP, TLS and the upgrade in one go, without reporting: the socket, or the
 * first step that failed. For scenarios, which open many.
 */
export async function openSocket(
  target: Target,
  options: ProbeOptions = {},
): Promise<{ socket: FrameSocket; upgrade: UpgradeStep } | { failed: Step }> {
  const tcp = await connectStep(target, options);
  if (!tcp.conn) return { failed: tcp.step };
  let conn: Deno.Conn = tcp.conn;
  if (target.secure) {
    const tls = await tlsStep(conn, target, options);
    if (!tls.conn) return { failed: tls.step };
    conn = tls.conn;
  }
  const up = await upgradeStep(conn, target, options);
  return up.socket ? { socket: up.socket, upgrade: up.step } : { failed: up.step };
}

/** Runs every step in order, stopping at the first failure. */
export async function probe(
  target: Target | string,
  options: ProbeOptions = {},
): Promise<ProbeReport> {
  const t = typeof target === "string" ? parseTarget(target) : target;
  const steps: Step[] = [];
  const note = <S extends Step>(s: S): S => {
    steps.push(s);
    options.onStep?.(s);
    return s;
  };
  const report = (ok: boolean): ProbeReport => ({ target: t, steps, ok });
  note(await lookupStep(t, options));
  const tcp = await connectStep(t, options);
  note(tcp.step);
  if (!tcp.conn) return report(false);
  let conn: Deno.Conn = tcp.conn;
  if (t.secure) {
    const tls = await tlsStep(conn, t, options);
    note(tls.step);
    if (!tls.conn) return report(false);
    conn = tls.conn;
  } else {
    note(step({ name: "tls", result: "skip", summary: "not used (ws://)" }));
  }
  const up = await upgradeStep(conn, t, options);
  note(up.step);
  if (!up.socket) return report(false);
  const socket = up.socket;
  try {
    const auth = note(await authStep(socket, { ...options, clocks: up.step.clocks }));
    if (options.waitAuth || auth.result !== "ok") return report(auth.result === "ok");
    const stats = note(await statsStep(socket, options));
    if (stats.result === "ok" && (options.holdMs ?? 0) > 0) {
      note(await holdStep(socket, { ...options, clocks: up.step.clocks }));
    }
    return report(steps.at(-1)!.result === "ok" && steps.every((s) => s.result !== "fail"));
  } finally {
    await socket.close();
  }
}
